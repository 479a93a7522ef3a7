import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  commandEnvironment,
  encodeExecSpec,
  localCwd,
  localExecSpec,
  rawCommand,
  rawEnvironment,
  localRlimits,
  localUmask,
  type ExecSpec,
} from '../../src/client/exec-spec';

const spec = (over: Partial<ExecSpec> = {}): ExecSpec => ({
  uid: 1000,
  gid: 100,
  groups: [100, 27],
  umask: 0o022,
  cwd: '/home/u/dir with space',
  rlimits: [
    { resource: 7, soft: 1024, hard: 'inf' },
    { resource: 0, soft: 'inf', hard: 'inf' },
  ],
  argv: ['make', '-j8', 'a b', '', 'é'],
  env: ['A=1', 'B=x\ny', 'C=a=b'],
  ...over,
});

/** Splits an encoded spec back into its length and fields (checking the framing). */
function decode(buf: Buffer): string[] {
  const len = buf.readUInt32BE(0);
  assert.equal(len, buf.length - 4, 'the prefix is the body length');
  const body = buf.subarray(4);
  assert.equal(body[body.length - 1], 0, 'every field ends with NUL, the last one too');
  const fields: string[] = [];
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    if (body[i] === 0) {
      fields.push(body.subarray(start, i).toString('utf8'));
      start = i + 1;
    }
  }
  return fields;
}

test('encodeExecSpec: length prefix, then NUL-terminated fields in the documented order', () => {
  const enc = encodeExecSpec(spec());
  assert.deepEqual(decode(enc), [
    'OUTRUN-SPEC-2',
    '1000',
    '100',
    '22',
    '/home/u/dir with space',
    'chroot',
    '0',
    '2',
    '100',
    '27',
    '2',
    '7:1024:inf',
    '0:inf:inf',
    '5',
    'make',
    '-j8',
    'a b',
    '',
    'é',
    '3',
    'A=1',
    'B=x\ny',
    'C=a=b',
  ]);
});

test('encodeExecSpec: exact bytes for a minimal spec', () => {
  const enc = encodeExecSpec({ uid: 0, gid: 0, groups: [], umask: 0, cwd: '/', rlimits: [], argv: ['true'], env: [] });
  const body = Buffer.from('OUTRUN-SPEC-2\x000\x000\x000\x00/\x00chroot\x000\x000\x000\x001\x00true\x000\x00', 'latin1');
  assert.deepEqual([...enc], [0, 0, 0, body.length, ...body]);
  assert.equal(body.length, 44);
});

test('encodeExecSpec: umask is octal, UTF-8 arguments are their bytes', () => {
  const enc = encodeExecSpec(spec({ umask: 0o027, argv: ['ü'] }));
  const f = decode(enc);
  assert.equal(f[3], '27');
  assert.equal(encodeExecSpec(spec({ umask: 0o777 })).subarray(4).toString('latin1').split('\0')[3], '777');
  assert.ok(enc.includes(Buffer.from([0x00, 0xc3, 0xbc, 0x00])), 'ü as C3 BC between NULs');
});

test('encodeExecSpec: a NUL in an argument, the environment or the cwd throws', () => {
  assert.throws(() => encodeExecSpec(spec({ argv: ['echo', 'a\0b'] })), /NUL/);
  assert.throws(() => encodeExecSpec(spec({ env: ['A=\0'] })), /NUL/);
  assert.throws(() => encodeExecSpec(spec({ cwd: '/a\0' })), /NUL/);
});

test('encodeExecSpec: an empty argv throws', () => {
  assert.throws(() => encodeExecSpec(spec({ argv: [] })), { message: 'empty command' });
});

const SAMPLE_LIMITS = [
  'Limit                     Soft Limit           Hard Limit           Units     ',
  'Max cpu time              unlimited            unlimited            seconds   ',
  'Max file size             unlimited            unlimited            bytes     ',
  'Max data size             unlimited            unlimited            bytes     ',
  'Max stack size            8388608              unlimited            bytes     ',
  'Max core file size        0                    unlimited            bytes     ',
  'Max resident set          unlimited            unlimited            bytes     ',
  'Max processes             63704                63704                processes ',
  'Max open files            1024                 1048576              files     ',
  'Max locked memory         8388608              8388608              bytes     ',
  'Max address space         unlimited            unlimited            bytes     ',
  'Max file locks            unlimited            unlimited            locks     ',
  'Max pending signals       63704                63704                signals   ',
  'Max msgqueue size         819200               819200               bytes     ',
  'Max nice priority         0                    0                    ',
  'Max realtime priority     0                    0                    ',
  'Max realtime timeout      unlimited            unlimited            us        ',
  '',
].join('\n');

test('localRlimits parses /proc/self/limits text: the seven limits, unlimited as inf', () => {
  assert.deepEqual(localRlimits(SAMPLE_LIMITS), [
    { resource: 0, soft: 'inf', hard: 'inf' },
    { resource: 1, soft: 'inf', hard: 'inf' },
    { resource: 2, soft: 'inf', hard: 'inf' },
    { resource: 3, soft: 8388608, hard: 'inf' },
    { resource: 4, soft: 0, hard: 'inf' },
    { resource: 7, soft: 1024, hard: 1048576 },
    { resource: 9, soft: 'inf', hard: 'inf' },
  ]);
});

test('localRlimits skips lines it cannot read', () => {
  const text = ['Max open files            lots                 1048576              files', 'Max stack size            8388608              unlimited            bytes'].join('\n');
  assert.deepEqual(localRlimits(text), [{ resource: 3, soft: 8388608, hard: 'inf' }]);
  assert.deepEqual(localRlimits(''), []);
});

test('localRlimits without an argument reads this process', () => {
  const got = localRlimits();
  const nofile = got.find((r) => r.resource === 7);
  assert.ok(nofile, 'Max open files is there');
  assert.equal(typeof nofile.soft, 'number');
  assert.ok(got.every((r) => [0, 1, 2, 3, 4, 7, 9].includes(r.resource)));
  assert.equal(new Set(got.map((r) => r.resource)).size, got.length, 'each once');
});

test('localUmask parses the Umask line (octal), 0o022 when there is none', () => {
  assert.equal(localUmask('Name:\tnode\nUmask:\t0027\nState:\tR (running)\n'), 0o027);
  assert.equal(localUmask('Umask:\t0000\n'), 0);
  assert.equal(localUmask('Umask:\t0777'), 0o777);
  assert.equal(localUmask('Name:\tnode\n'), 0o022);
});

test('localUmask without an argument reads this process, without changing it', () => {
  const old = process.umask(0o037);
  try {
    assert.equal(localUmask(), 0o037);
    assert.equal(process.umask(0o037), 0o037);
  } finally {
    process.umask(old);
  }
});

test('commandEnvironment drops OUTRUN_* and keeps the rest byte-exact, in order', () => {
  const env = {
    PATH: '/usr/bin:/bin',
    OUTRUN_PASSWORD: 'hunter2',
    MULTI: 'line1\nline2\n',
    EQ: 'a=b==c',
    OUTRUN_: 'x',
    EMPTY: '',
    outrun_lower: 'kept',
    XOUTRUN_Y: 'kept',
    UNI: 'é😀\t',
    UNSET: undefined,
  };
  assert.deepEqual(commandEnvironment(env), [
    'PATH=/usr/bin:/bin',
    'MULTI=line1\nline2\n',
    'EQ=a=b==c',
    'EMPTY=',
    'outrun_lower=kept',
    'XOUTRUN_Y=kept',
    'UNI=é😀\t',
  ]);
});

test('localExecSpec: this process, and no OUTRUN_* variable', () => {
  process.env.OUTRUN_TEST_SECRET = 'secret';
  try {
    const s = localExecSpec(['ls', '-l']);
    assert.equal(s.uid, process.getuid!());
    assert.equal(s.gid, process.getgid!());
    assert.deepEqual(s.argv, ['ls', '-l']);
    const env = s.env.map(String);
    assert.ok(!env.some((e) => e.startsWith('OUTRUN_')));
    assert.ok(env.includes(`PATH=${process.env.PATH}`));
    assert.equal(decode(encodeExecSpec(s))[0], 'OUTRUN-SPEC-2');
  } finally {
    delete process.env.OUTRUN_TEST_SECRET;
  }
});

// localCwd works on the real process cwd: chdir into a temp dir, and always back.
const origCwd = process.cwd();
const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'outrun-exec-spec-')));
after(() => {
  process.chdir(origCwd);
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('localCwd prefers $PWD when it is a symlink to the cwd, and ignores it otherwise', () => {
  const real = path.join(tmp, 'real');
  const other = path.join(tmp, 'other');
  const link = path.join(tmp, 'link');
  fs.mkdirSync(real);
  fs.mkdirSync(other);
  fs.symlinkSync(real, link);
  process.chdir(link); // the kernel resolves it: process.cwd() is the real path
  try {
    assert.equal(process.cwd(), real);
    assert.equal(localCwd({ PWD: link }), link, 'a symlink naming the cwd');
    assert.equal(localCwd({ PWD: real }), real);
    assert.equal(localCwd({ PWD: other }), real, 'another directory');
    assert.equal(localCwd({ PWD: path.join(tmp, 'missing') }), real, 'a missing path');
    assert.equal(localCwd({ PWD: 'link' }), real, 'a relative $PWD');
    assert.equal(localCwd({ PWD: '' }), real);
    assert.equal(localCwd({}), real, 'no $PWD');
  } finally {
    process.chdir(origCwd);
  }
});

test('rawEnvironment: exact bytes (not UTF-8, newlines), OUTRUN_* and entries without = left out', () => {
  const entries = [Buffer.from('A=1'), Buffer.from([0x42, 0x3d, 0xff, 0x0a, 0x41]), Buffer.from('OUTRUN_X=1'), Buffer.from('junk'), Buffer.from('=v')];
  assert.deepEqual(rawEnvironment(entries), [entries[0], entries[1], entries[4]]);
});

test('rawCommand: the tail of the command line as bytes, when it is what node decoded', () => {
  const cmdline = [Buffer.from('node'), Buffer.from('cli.js'), Buffer.from('box'), Buffer.from('printf'), Buffer.from([0x61, 0xff])];
  const decoded = ['printf', Buffer.from([0x61, 0xff]).toString('utf8')];
  assert.deepEqual(rawCommand(decoded, cmdline), [cmdline[3], cmdline[4]]);
  assert.deepEqual(rawCommand(['other', 'words'], cmdline), ['other', 'words']);
  assert.deepEqual(rawCommand([], cmdline), []);
});

test('encodeExecSpec: Buffer fields go out byte for byte', () => {
  const enc = encodeExecSpec({ ...spec(), argv: [Buffer.from([0x61, 0xff])], env: [Buffer.from([0x45, 0x3d, 0xfe])] });
  assert.ok(enc.includes(Buffer.from([0, 0x61, 0xff, 0])));
  assert.ok(enc.includes(Buffer.from([0, 0x45, 0x3d, 0xfe, 0])));
});
