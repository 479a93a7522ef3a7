import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Duplex, PassThrough } from 'node:stream';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Client } from 'ssh2';
import { ensureRemoteRuntime } from '../../src/client/bootstrap';
import { OutrunError } from '../../src/client/errors';
import { defaultRuntimeDir, LocalRuntime, loadLocalRuntime, manifestId, RuntimeFile } from '../../src/client/runtime';

type Reply = { stdout?: string; stderr?: string; code?: number };

/** A stand-in for an ssh2 Client whose exec answers from a script (or runs sh locally). */
class FakeConn {
  readonly commands: string[] = [];
  constructor(private readonly answer: (cmd: string) => Reply | 'local') {}

  exec(cmd: string, cb: (err: Error | undefined, ch: Duplex) => void): this {
    this.commands.push(cmd);
    const a = this.answer(cmd);
    const stderr = new PassThrough();
    const ch = new Duplex({
      read() {},
      write(_c, _e, done) {
        done();
      },
    }) as Duplex & { stderr: PassThrough; close(): void };
    ch.stderr = stderr;
    ch.close = () => undefined;
    ch.on('error', () => undefined);
    if (a === 'local') {
      const p = spawn('/bin/sh', ['-c', cmd], { stdio: ['pipe', 'pipe', 'pipe'] });
      ch._write = (c, _e, done) => {
        p.stdin.write(c, () => done());
      };
      ch._final = (done) => {
        p.stdin.end();
        done();
      };
      p.stdin.on('error', () => undefined);
      p.stdout.on('data', (d) => ch.push(d));
      p.stderr.on('data', (d) => stderr.write(d));
      p.on('close', (code, sig) => {
        ch.emit('exit', code, sig ?? undefined);
        ch.push(null);
        ch.emit('close');
      });
      setImmediate(() => cb(undefined, ch));
    } else {
      setImmediate(() => {
        cb(undefined, ch);
        setImmediate(() => {
          if (a.stdout) ch.push(a.stdout);
          if (a.stderr) stderr.write(a.stderr);
          setImmediate(() => {
            ch.emit('exit', a.code ?? 0);
            ch.push(null);
            ch.emit('close');
          });
        });
      });
    }
    return this;
  }

  sftp(cb: (err: Error | undefined) => void): void {
    setImmediate(() => cb(new Error('Unable to start subsystem: sftp')));
  }
}

const asClient = (f: FakeConn) => f as unknown as Client;

const H = (c: string) => c.repeat(64);
const files: Record<string, RuntimeFile> = {
  node: { sha256: H('a'), size: 1, mode: 0o755 },
  'lib/ld-linux-x86-64.so.2': { sha256: H('c'), size: 1, mode: 0o755 },
};
const fakeRuntime: LocalRuntime = { dir: '/nonexistent', id: manifestId(files), machine: 'x86_64', files, loader: 'ld-linux-x86-64.so.2' };

function probe(o: { machine?: string; uid?: string; fuse?: boolean; complete?: boolean; noise?: string; extra?: Record<string, string> }): Reply {
  return {
    stdout:
      (o.noise ?? '') +
      `outrun-probe:os=Linux\noutrun-probe:machine=${o.machine ?? 'x86_64'}\noutrun-probe:uid=${o.uid ?? '0'}\n` +
      Object.entries(o.extra ?? {}).map(([k, v]) => `outrun-probe:${k}=${v}\n`).join('') +
      `outrun-probe:fuse=${o.fuse === false ? 0 : 1}\noutrun-probe:complete=${o.complete ? 1 : 0}\n`,
  };
}

async function rejectsWith(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof OutrunError, String(e));
    assert.equal(e.code, code);
    assert.match(e.oneLine(), re);
    return true;
  });
}

test('warm path: one exec, nothing uploaded; login noise on stdout is ignored', async () => {
  const conn = new FakeConn(() => probe({ complete: true, noise: 'Welcome!\nuid=1000\n' }));
  const r = await ensureRemoteRuntime(asClient(conn), fakeRuntime, () => undefined, { host: 'box' });
  assert.deepEqual(r, { remoteDir: `/var/cache/outrun/runtime/${fakeRuntime.id}`, uploaded: false });
  assert.equal(conn.commands.length, 1);
  assert.match(conn.commands[0]!, /^sh -c '/);
});

test('architecture mismatch is refused before anything is uploaded', async () => {
  const conn = new FakeConn(() => probe({ machine: 'aarch64' }));
  await rejectsWith(ensureRemoteRuntime(asClient(conn), fakeRuntime, () => undefined, { host: 'box' }), 'ARCH_MISMATCH', /remote box is aarch64 but this outrun runtime is x86_64/);
  assert.equal(conn.commands.length, 1);
});

const rootless = { user: 'ann', home: '/home/ann', fuseaccess: '1', fusefs: '1', kernel: '6.1.0', fusemode: 'crw-rw-rw- root:root' };

test('a non-root login is a rootless run: runtime and sessions in ~/.cache/outrun', async () => {
  const conn = new FakeConn(() => probe({ uid: '1000', complete: true, extra: rootless }));
  const r = await ensureRemoteRuntime(asClient(conn), fakeRuntime, () => undefined, { host: 'box' });
  assert.deepEqual(r, {
    remoteDir: `/home/ann/.cache/outrun/runtime/${fakeRuntime.id}`,
    uploaded: false,
    rootless: { sessionParent: '/home/ann/.cache/outrun/run' },
  });
  assert.match(conn.commands[0]!, /\$HOME\/\.cache\/outrun\/runtime/);
});

test('rootless refusals name the cause and the fix: each sysctl, AppArmor, a seccomp filter, /dev/fuse', async () => {
  const refused = (extra: Record<string, string>, code: string, re: RegExp) =>
    rejectsWith(
      ensureRemoteRuntime(asClient(new FakeConn(() => probe({ uid: '1000', extra: { ...rootless, ...extra } }))), fakeRuntime, () => undefined, { host: 'box' }),
      code,
      re,
    );
  await refused({ usernsclone: '0' }, 'REMOTE_NO_USERNS', /^outrun: unprivileged user namespaces are disabled on box \(kernel\.unprivileged_userns_clone=0\); have its admin run sysctl -w kernel\.unprivileged_userns_clone=1, or log in as root$/);
  await refused({ maxuserns: '0' }, 'REMOTE_NO_USERNS', /\(user\.max_user_namespaces=0\); have its admin run sysctl -w user\.max_user_namespaces=15000/);
  await refused({ apparmoruserns: '1' }, 'REMOTE_NO_USERNS', /AppArmor restricts unprivileged user namespaces on box \(kernel\.apparmor_restrict_unprivileged_userns=1\)/);
  await refused({ usernstry: '0', seccomp: '2' }, 'REMOTE_NO_USERNS', /unshare -U fails; a seccomp filter is in place/);
  await refused({ fuseaccess: '0' }, 'REMOTE_NO_FUSE', /\/dev\/fuse on box is not readable and writable by ann \(crw-rw-rw- root:root\)/);
  await refused({ fusefs: '0' }, 'REMOTE_NO_FUSE', /fuse is not in \/proc\/filesystems on box/);
  await refused({ kernel: '4.15.0' }, 'REMOTE_NO_FUSE', /Linux 4\.15\.0 is older than 4\.18/);
  await refused({ home: '' }, 'UPLOAD_FAILED', /no absolute HOME/);
});

test('missing /dev/fuse is refused', async () => {
  await rejectsWith(
    ensureRemoteRuntime(asClient(new FakeConn(() => probe({ fuse: false }))), fakeRuntime, () => undefined, { host: 'box' }),
    'REMOTE_NO_FUSE',
    /no \/dev\/fuse/,
  );
});

test('a shell that does not run the probe is reported', async () => {
  const conn = new FakeConn(() => ({ stderr: 'This account is currently not available.\n', code: 1 }));
  await rejectsWith(ensureRemoteRuntime(asClient(conn), fakeRuntime, () => undefined, { host: 'box' }), 'UPLOAD_FAILED', /not available/);
});

test('a failing upload removes the temp dir and says so', async () => {
  const conn = new FakeConn((cmd) => (cmd.includes('outrun-probe') ? probe({}) : cmd.includes('cat >') ? { stderr: 'cat: write error: No space left on device\n', code: 1 } : {}));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outrun-rt-'));
  try {
    fs.mkdirSync(path.join(dir, 'lib'));
    for (const rel of Object.keys(files)) fs.writeFileSync(path.join(dir, rel), 'x');
    await rejectsWith(
      ensureRemoteRuntime(asClient(conn), { ...fakeRuntime, dir }, () => undefined, { host: 'box', transfer: 'exec' }),
      'UPLOAD_FAILED',
      /the remote disk is full; free space in \/var\/cache/,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(conn.commands.some((c) => /^rm -rf -- \/var\/cache\/outrun\/runtime\/\.tmp-/.test(c)), conn.commands.join('\n'));
});

const canRunLocally =
  process.getuid?.() === 0 && fs.existsSync('/dev/fuse') && fs.existsSync(path.join(defaultRuntimeDir(), 'manifest.json'));

test('cold then warm install of the built runtime into a local directory', { skip: !canRunLocally && 'needs root, /dev/fuse and dist/runtime' }, async () => {
  const rt = loadLocalRuntime();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'outrun-cache-'));
  try {
    const cacheRoot = path.join(root, 'runtime');
    const logs: string[] = [];
    const cold = await ensureRemoteRuntime(asClient(new FakeConn(() => 'local')), rt, (s) => logs.push(s), { cacheRoot });
    assert.deepEqual(cold, { remoteDir: `${cacheRoot}/${rt.id}`, uploaded: true });
    assert.equal(fs.statSync(cacheRoot).mode & 0o777, 0o700);
    assert.ok(fs.existsSync(path.join(cold.remoteDir, '.complete')));
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(cold.remoteDir, 'manifest.json'), 'utf8')).id, rt.id);
    for (const [rel, f] of Object.entries(rt.files)) {
      const st = fs.statSync(path.join(cold.remoteDir, rel));
      assert.equal(st.size, f.size, rel);
      assert.equal(st.mode & 0o7777, f.mode, rel);
    }
    assert.deepEqual(fs.readdirSync(cacheRoot), [rt.id]);
    const conn = new FakeConn(() => 'local');
    const warm = await ensureRemoteRuntime(asClient(conn), rt, () => undefined, { cacheRoot });
    assert.deepEqual(warm, { remoteDir: cold.remoteDir, uploaded: false });
    assert.equal(conn.commands.length, 1);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
