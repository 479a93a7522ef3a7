// End to end: --no-chroot. The box's own programs run on local files: the local working
// directory and the --mount paths appear at the same paths over the box's tree (which lacks
// them: they are made on a tmpfs, never on the box's disk), the environment is the box
// login's plus what SendEnv names. As root and rootless (box-user). Bytes are compared with
// the local files (random data, sizes around a page and a MiB).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { SSH_CONFIG, boxShell, outrun, waitBoxClean } from './harness';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const HOMES = { box: '/root', 'box-user': '/home/outrun-user' } as const;
type Login = keyof typeof HOMES;
/** $PATH of a plain `ssh LOGIN cmd` on the box. */
const loginPath = (login: Login) => spawnSync('ssh', ['-F', SSH_CONFIG, '-o', 'BatchMode=yes', login, 'echo $PATH'], { encoding: 'utf8' }).stdout.trim();

describe('--no-chroot: the remote\'s own programs on local files', { timeout: 300_000 }, () => {
  let work: string;
  let other: string;
  let single: string;
  let boxOnly: string;
  before(() => {
    work = mkdtempSync(path.join(tmpdir(), 'outrun-nochroot-'));
    other = mkdtempSync(path.join(tmpdir(), 'outrun-nochroot-other-'));
    single = path.join(mkdtempSync(path.join(tmpdir(), 'outrun-nochroot-file-')), 'one.bin');
    for (const d of [work, other, path.dirname(single)]) chmodSync(d, 0o755);
    mkdirSync(path.join(work, 'sub dir'));
    for (const size of [4095, 4097, 1 << 20, (1 << 20) + 1]) writeFileSync(path.join(work, 'sub dir', `r${size}`), randomBytes(size));
    writeFileSync(path.join(other, 'o.bin'), randomBytes(65537));
    writeFileSync(single, randomBytes(12345));
    boxOnly = `/var/tmp/outrun-nochroot-only-${randomBytes(4).toString('hex')}`;
    boxShell(`echo only-on-the-box > ${boxOnly}; chmod 644 ${boxOnly}`);
  });
  after(() => {
    for (const d of [work, other, path.dirname(single)]) rmSync(d, { recursive: true, force: true });
    boxShell(`rm -f ${boxOnly}`);
  });

  for (const login of Object.keys(HOMES) as Login[]) {
    describe(`as ${login}`, () => {
      const run = (args: string[], env?: NodeJS.ProcessEnv) =>
        outrun(['-F', SSH_CONFIG, '--no-chroot', ...args.slice(0, -1), login, ...JSON.parse(args.at(-1)!)], { cwd: work, env });

      test('the box\'s files and programs; the local working directory at its own path', async () => {
        const r = await run([JSON.stringify(['sh', '-c', `pwd; cat /etc/hostname; cat ${boxOnly}; command -v python3 || echo no-python3; cd "sub dir" && sha256sum r*`])]);
        assert.equal(r.status, 0, r.stderr);
        const lines = r.stdout.toString().split('\n');
        assert.equal(lines[0], work);
        assert.equal(lines[1], boxShell('cat /etc/hostname').trim());
        assert.notEqual(lines[1], readFileSync('/etc/hostname', 'utf8').trim(), 'the local host name must differ for this check');
        assert.equal(lines[2], 'only-on-the-box');
        // The box has no python3 (the local machine has): the box's own programs run.
        assert.equal(lines[3], 'no-python3');
        const sums = lines.slice(4).filter(Boolean).map((l) => l.split(/\s+/));
        assert.equal(sums.length, 4);
        for (const [sum, name] of sums) assert.equal(sum, sha256(readFileSync(path.join(work, 'sub dir', name!))), name);
        // Nothing was made on the box's disk for the local paths.
        assert.equal(boxShell(`test -e ${work} && echo there || echo absent`).trim(), 'absent');
      });

      test('files written land locally, byte for byte, with the local umask', async () => {
        const before = readFileSync(path.join(work, 'sub dir', 'r4095'));
        const r = await run([JSON.stringify(['sh', '-c', 'umask 022; head -c 1048577 /dev/urandom > "sub dir/new.bin" && sha256sum "sub dir/new.bin" && echo appended >> "sub dir/r4095"'])]);
        assert.equal(r.status, 0, r.stderr);
        const written = readFileSync(path.join(work, 'sub dir', 'new.bin'));
        assert.equal(written.length, 1048577);
        assert.equal(r.stdout.toString().split(/\s+/)[0], sha256(written));
        assert.equal(statSync(path.join(work, 'sub dir', 'new.bin')).mode & 0o777, 0o644);
        const appended = readFileSync(path.join(work, 'sub dir', 'r4095'));
        assert.deepEqual(appended, Buffer.concat([before, Buffer.from('appended\n')]));
        rmSync(path.join(work, 'sub dir', 'new.bin'));
      });

      test('--mount: a directory and a single file elsewhere, read and written', async () => {
        const r = await run([
          '--mount',
          `${other},${single}`,
          JSON.stringify(['sh', '-c', `sha256sum ${other}/o.bin ${single}; echo from-box > ${other}/w.txt; ls ${path.dirname(single)}`]),
        ]);
        assert.equal(r.status, 0, r.stderr);
        const lines = r.stdout.toString().trim().split('\n');
        assert.equal(lines[0]!.split(/\s+/)[0], sha256(readFileSync(path.join(other, 'o.bin'))));
        assert.equal(lines[1]!.split(/\s+/)[0], sha256(readFileSync(single)));
        // Only the file was put there, not its directory's other entries.
        assert.equal(lines[2], 'one.bin');
        assert.equal(readFileSync(path.join(other, 'w.txt'), 'utf8'), 'from-box\n');
      });

      test('the environment: the login\'s, plus what SendEnv names; PWD the working directory', async () => {
        const env = { ...process.env, NCTEST_SENT: 'yes sent', NCTEST_OTHER: 'not sent', HOME: '/nonexistent-local-home' };
        const r = await run(
          ['-o', 'SendEnv=NCTEST_S*', JSON.stringify(['sh', '-c', 'echo "$NCTEST_SENT|${NCTEST_OTHER-unset}|$HOME|$PWD|$PATH|$(id -u)"'])],
          env,
        );
        assert.equal(r.status, 0, r.stderr);
        const uid = login === 'box' ? 0 : process.getuid!();
        assert.equal(r.stdout.toString(), `yes sent|unset|${HOMES[login]}|${work}|${loginPath(login)}|${uid}\n`);
      });

      test('exit statuses: the command\'s own, 127 for a program the box lacks', async () => {
        assert.equal((await run([JSON.stringify(['sh', '-c', 'exit 7'])])).status, 7);
        const missing = await run([JSON.stringify(['python3', '-c', 'print(1)'])]);
        assert.equal(missing.status, 127);
        assert.match(missing.stderr, /^outrun: python3: command not found$/m);
      });
    });
  }

  test('a path under a top-level directory the box lacks: / itself is stood in for, the box\'s entries still there', async () => {
    // The suite runs as root: a top-level directory of its own, removed after.
    const top = mkdtempSync('/outrun-nochroot-top-');
    const file = path.join(top, 'deep', 'f.bin');
    mkdirSync(path.dirname(file));
    writeFileSync(file, randomBytes(70000));
    try {
      const r = await outrun(['-F', SSH_CONFIG, '--no-chroot', '--mount', file, 'box', 'sh', '-c', `sha256sum ${file}; ls /; cat /etc/hostname; grep -c outrun-view /proc/self/mountinfo`], { cwd: work });
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stdout.toString().trim().split('\n');
      assert.equal(lines[0]!.split(/\s+/)[0], sha256(readFileSync(file)));
      const boxRoot = boxShell('ls /').trim().split('\n');
      assert.deepEqual(lines.slice(1, -2), [...boxRoot, top.slice(1)].sort());
      assert.equal(lines.at(-2), boxShell('cat /etc/hostname').trim());
      // One stand-in for / (the copy of the stage's own mount it brought along is gone), one for /tmp (the cwd).
      assert.equal(lines.at(-1), '2');
      assert.equal(boxShell(`test -e ${top} && echo there || echo absent`).trim(), 'absent');
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });

  test('through a master: a --no-chroot run and a chroot run, one after the other, each sees its own tree', async () => {
    const socket = path.join(mkdtempSync(path.join(tmpdir(), 'outrun-nochroot-sock-')), 'm');
    const via = ['-F', SSH_CONFIG, '-S', socket, '-o', 'ControlPersist=60'];
    try {
      const host = await outrun([...via, '--no-chroot', 'box', 'sh', '-c', `cat /etc/hostname; cat ${boxOnly}; sha256sum "sub dir/r4097"`], { cwd: work });
      assert.equal(host.status, 0, host.stderr);
      const [name, only, sum] = host.stdout.toString().trim().split('\n');
      assert.equal(name, boxShell('cat /etc/hostname').trim());
      assert.equal(only, 'only-on-the-box');
      assert.equal(sum!.split(/\s+/)[0], sha256(readFileSync(path.join(work, 'sub dir', 'r4097'))));
      const local = await outrun([...via, 'box', 'sh', '-c', `cat /etc/hostname; test -e ${boxOnly} && echo box-file || echo no-box-file`], { cwd: work });
      assert.equal(local.status, 0, local.stderr);
      assert.equal(local.stdout.toString(), `${readFileSync('/etc/hostname', 'utf8').trim()}\nno-box-file\n`);
    } finally {
      await outrun(['-F', SSH_CONFIG, '-S', socket, '-O', 'exit', 'box']);
      rmSync(path.dirname(socket), { recursive: true, force: true });
    }
  });

  test('bad --mount and --no-chroot lines: one line each, exit 2, nothing run', async () => {
    const cases: [string[], RegExp][] = [
      [['--mount', other, 'box', 'true'], /--mount needs --no-chroot/],
      [['--no-chroot', '--mount', '/nonexistent-outrun-path', 'box', 'true'], /--mount \/nonexistent-outrun-path: no such local file or directory/],
      [['--no-chroot', '--mount', '/', 'box', 'true'], /--mount \/: the whole local tree/],
      [['--no-chroot', '--mount', `${other},`, 'box', 'true'], /--mount '.*': empty path/],
    ];
    for (const [args, line] of cases) {
      const r = await outrun(['-F', SSH_CONFIG, ...args], { cwd: work });
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, line);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });

  test('a local directory where the box has a file: one line, 254, the box\'s file untouched', async () => {
    const clash = mkdtempSync(path.join(tmpdir(), 'outrun-nochroot-clash-'));
    boxShell(`echo box-file > ${clash}`);
    try {
      const r = await outrun(['-F', SSH_CONFIG, '--no-chroot', '--mount', clash, 'box', 'true'], { cwd: work });
      assert.equal(r.status, 254);
      assert.equal(r.stderr, `outrun: cannot put the local ${clash} at the same path on the remote (--no-chroot): Not a directory\n`);
      assert.equal(boxShell(`cat ${clash}`), 'box-file\n');
    } finally {
      boxShell(`rm -f ${clash}`);
      rmSync(clash, { recursive: true, force: true });
    }
  });

  test('nothing is left on the box', async () => {
    assert.equal(await waitBoxClean(), '');
    assert.equal(boxShell('ls -A /home/outrun-user/.cache/outrun/run 2>/dev/null; true').trim(), '');
  });
});
