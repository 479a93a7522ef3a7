// Unit: the pieces of connection reuse: -o ControlPersist, -S and -O on the command line,
// mux frames, the uid of an encoded spec, and the master's private directory check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseArgs, parseControlPersist } from '../../src/client/cli-args';
import { Frame, FrameReader, dataFrames, frame, MAX_FRAME, parseRunFrame, runFrame } from '../../src/client/mux-frames';
import { uidOfSpec } from '../../src/client/exec-spec-uid';
import { encodeExecSpec } from '../../src/client/exec-spec';
import { controlSocketPath, privateDir } from '../../src/client/control-path';

test('ControlPersist values as ssh reads them', () => {
  assert.equal(parseControlPersist('yes'), 'forever');
  assert.equal(parseControlPersist('0'), 'forever');
  assert.equal(parseControlPersist('no'), 'no');
  assert.equal(parseControlPersist('30'), 30_000);
  assert.equal(parseControlPersist('2m'), 120_000);
  assert.equal(parseControlPersist('soon'), undefined);
});

test('-o ControlPersist, -S and -O on the command line', () => {
  const r = parseArgs(['-o', 'ControlPersist=10', '-S', '/tmp/x.sock', 'box', 'true']);
  assert.equal(r.action, 'run');
  assert.equal(r.options.controlPersist, 10_000);
  assert.equal(r.options.controlPath, '/tmp/x.sock');
  assert.ok(!('controlpersist' in r.options.sshOptions), 'not passed on as an ssh_config option');
  // First value wins, as for every -o.
  assert.equal(parseArgs(['-o', 'ControlPersist=no', '-o', 'ControlPersist=yes', 'box', 'true']).options.controlPersist, undefined);
  const c = parseArgs(['-O', 'check', 'box']);
  assert.equal(c.action, 'control');
  assert.equal(c.options.controlCommand, 'check');
  assert.throws(() => parseArgs(['-O', 'stop', 'box']), /expected check or exit/);
  assert.throws(() => parseArgs(['-O', 'exit', 'box', 'ls']), /takes no command/);
  assert.throws(() => parseArgs(['-O', 'exit']), /needs a destination/);
  assert.throws(() => parseArgs(['-o', 'ControlPersist=later', 'box', 'true']), /ControlPersist/);
});

test('frames survive any split, in order; an oversized one is refused', () => {
  const big = Buffer.alloc(MAX_FRAME * 2 + 5, 7);
  const stream = Buffer.concat([frame(Frame.HELLO, '{"a":1}'), ...dataFrames(Frame.STDOUT, big), frame(Frame.STDIN_END), runFrame({ rows: 3 }, Buffer.from('spec'))]);
  for (const step of [1, 7, 4096, stream.length]) {
    const got: [number, Buffer][] = [];
    const reader = new FrameReader((t, p) => got.push([t, Buffer.from(p)]));
    for (let at = 0; at < stream.length; at += step) assert.equal(reader.push(stream.subarray(at, at + step)), undefined);
    assert.deepEqual(got.map(([t]) => t), [Frame.HELLO, Frame.STDOUT, Frame.STDOUT, Frame.STDOUT, Frame.STDIN_END, Frame.RUN]);
    assert.ok(Buffer.concat(got.slice(1, 4).map(([, p]) => p)).equals(big));
    const run = parseRunFrame(got[5]![1]);
    assert.ok(!(run instanceof Error));
    assert.deepEqual(run.pty, { rows: 3 });
    assert.equal(run.spec.toString(), 'spec');
  }
  const huge = Buffer.alloc(5);
  huge.writeUInt8(Frame.STDIN, 0);
  huge.writeUInt32BE(0xffffffff, 1);
  assert.ok(new FrameReader(() => undefined).push(huge) instanceof Error);
});

test('the uid of an encoded spec; anything else has none', () => {
  const spec = encodeExecSpec({ uid: 1234, gid: 5, groups: [], umask: 0o22, cwd: '/', rlimits: [], argv: ['true'], env: [] });
  assert.equal(uidOfSpec(spec), 1234);
  assert.equal(uidOfSpec(spec.subarray(0, spec.length - 1)), undefined);
  assert.equal(uidOfSpec(Buffer.from('nonsense')), undefined);
});

test('the master directory must be ours, 0700, not a symlink', () => {
  const base = mkdtempSync(path.join(tmpdir(), 'outrun-privdir-'));
  try {
    const fresh = path.join(base, 'fresh');
    assert.equal(privateDir(fresh, true), undefined);
    assert.equal(privateDir(path.join(base, 'absent'), false)?.code, 'CONTROL_PATH_UNSAFE');
    const open = path.join(base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o755);
    assert.match(privateDir(open, true)?.message ?? '', /open to others/);
    const link = path.join(base, 'link');
    symlinkSync(fresh, link);
    assert.match(privateDir(link, true)?.message ?? '', /symbolic link/);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('one socket per destination; -S wins', () => {
  const a = controlSocketPath({ user: 'root', hostName: 'h', port: 22 });
  assert.equal(a, controlSocketPath({ user: 'root', hostName: 'h', port: 22 }));
  assert.notEqual(a, controlSocketPath({ user: 'root', hostName: 'h', port: 2222 }));
  assert.notEqual(a, controlSocketPath({ user: 'root', hostName: 'h', port: 22, via: 'jump' }));
  assert.equal(controlSocketPath({ user: 'root', hostName: 'h', port: 22 }, '/x/y.sock'), '/x/y.sock');
});
