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
import { defaultRuntimeDir, LocalRuntime, loadLocalRuntime, manifestId, RuntimeFile, runtimeSetOf } from '../../src/client/runtime';
import { emulatorFor, parseBinfmtEntry, parseProbe, probeScript } from '../../src/client/remote-probe';

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
  assert.deepEqual(r, { remoteDir: `/var/cache/outrun/runtime/${fakeRuntime.id}`, uploaded: false, runtime: fakeRuntime, chroot: { native: true } });
  assert.equal(conn.commands.length, 1);
  assert.match(conn.commands[0]!, /^sh -c '/);
});

test('architecture without a runtime is refused before anything is uploaded', async () => {
  const conn = new FakeConn(() => probe({ machine: 'aarch64' }));
  await rejectsWith(
    ensureRemoteRuntime(asClient(conn), fakeRuntime, () => undefined, { host: 'box' }),
    'ARCH_MISMATCH',
    /^outrun: remote box is aarch64 and this outrun has a runtime for x86_64 only; build outrun from a clone with npm run build, which cross-builds the aarch64 runtime/,
  );
  await rejectsWith(
    ensureRemoteRuntime(asClient(new FakeConn(() => probe({ machine: 'riscv64' }))), fakeRuntime, () => undefined, { host: 'box' }),
    'ARCH_MISMATCH',
    /^outrun: remote box is riscv64 and this outrun has a runtime for x86_64 only; use an x86_64 remote$/,
  );
  assert.equal(conn.commands.length, 1);
});

// Another architecture: the aarch64 runtime beside the local x86_64 one.
const armFiles: Record<string, RuntimeFile> = {
  node: { sha256: H('b'), size: 1, mode: 0o755 },
  'lib/ld-linux-aarch64.so.1': { sha256: H('d'), size: 1, mode: 0o755 },
};
const armRuntime: LocalRuntime = { dir: '/nonexistent-arm', id: manifestId(armFiles), machine: 'aarch64', files: armFiles, loader: 'ld-linux-aarch64.so.1' };
const both = runtimeSetOf(fakeRuntime, [armRuntime]);
// qemu-user-static's x86_64 handler, as /proc/sys/fs/binfmt_misc/qemu-x86_64 shows it.
const QEMU_MAGIC = '7f454c4602010100000000000000000002003e00';
const QEMU_MASK = 'fffffffffffefe00fffffffffffffffffeffffff';
const handler = (flags: string, state = 'enabled', magic = QEMU_MAGIC) =>
  `qemu-x86_64|${state}|interpreter /usr/libexec/qemu-binfmt/x86_64-binfmt-P|flags: ${flags}|offset 0|magic ${magic}|mask ${QEMU_MASK}|`;
const armProbe = (extra: Record<string, string> = {}, handlers: string[] = []) => {
  const r = probe({ machine: 'aarch64', complete: true, extra });
  return { stdout: r.stdout + handlers.map((h) => `outrun-probe:binfmt=${h}\n`).join('') };
};

test('another architecture: the probe picks the runtime id by uname -m and lists binfmt handlers there', async () => {
  const script = probeScript({ x86_64: fakeRuntime.id, aarch64: armRuntime.id }, 'x86_64');
  assert.ok(script.includes(`case $(uname -m) in x86_64|amd64) id=${fakeRuntime.id};; aarch64|arm64) id=${armRuntime.id};; *) id=;; esac`), script);
  assert.ok(script.includes('case $(uname -m) in x86_64|amd64) ;; *) if [ -r /proc/sys/fs/binfmt_misc/status ]'), script);
  // It is valid sh, here (x86_64: no binfmt section) and as if this machine were aarch64.
  for (const local of ['x86_64', 'aarch64']) {
    const out = await new Promise<string>((resolve) => {
      const p = spawn('/bin/sh', ['-c', probeScript({ x86_64: fakeRuntime.id, aarch64: armRuntime.id }, local, '/nonexistent/runtime')]);
      let text = '';
      p.stdout.on('data', (d) => (text += d));
      p.on('close', () => resolve(text));
    });
    const parsed = parseProbe(out);
    assert.ok(parsed, out);
    assert.equal(parsed.complete, false);
  }
});

test('another architecture, --no-chroot: the runtime built for it, no emulation needed', async () => {
  const conn = new FakeConn(() => armProbe());
  const r = await ensureRemoteRuntime(asClient(conn), both, () => undefined, { host: 'box', mode: 'host' });
  assert.equal(r.runtime, armRuntime);
  assert.equal(r.remoteDir, `/var/cache/outrun/runtime/${armRuntime.id}`);
  assert.equal(r.chroot, undefined);
  assert.match(r.chrootRefusal!.oneLine(), /cannot run this machine's x86_64 programs \(it has no binfmt_misc handler for x86_64 programs\)/);
});

test('another architecture, chroot: refused without a usable binfmt handler, each reason named', async () => {
  const refused = (extra: Record<string, string>, handlers: string[], re: RegExp) =>
    rejectsWith(ensureRemoteRuntime(asClient(new FakeConn(() => armProbe(extra, handlers))), both, () => undefined, { host: 'box' }), 'ARCH_MISMATCH', re);
  await refused({}, [], /^outrun: remote box is aarch64 and cannot run this machine's x86_64 programs \(it has no binfmt_misc handler for x86_64 programs\); run the remote's own programs with --no-chroot, or have its admin register qemu-user-static's x86_64 handler with the F flag/);
  await refused({ binfmtstatus: 'enabled' }, [], /\(it has no binfmt_misc handler for x86_64 programs\)/);
  await refused({ binfmtstatus: 'enabled' }, [handler('POC')], /\(its binfmt_misc handler qemu-x86_64 lacks the F flag/);
  await refused({ binfmtstatus: 'enabled' }, [handler('POCF', 'disabled')], /\(its binfmt_misc handler qemu-x86_64 is disabled\)/);
  await refused({ binfmtstatus: 'disabled' }, [handler('POCF')], /\(binfmt_misc is disabled there\)/);
  // An aarch64 handler (e_machine 183) does not run x86_64 programs.
  await refused({ binfmtstatus: 'enabled' }, [handler('F', 'enabled', '7f454c460201010000000000000000000200b700')], /no binfmt_misc handler for x86_64/);
});

test('another architecture, chroot: an F handler for x86_64 ELF runs the local programs (emulated)', async () => {
  const r = await ensureRemoteRuntime(asClient(new FakeConn(() => armProbe({ binfmtstatus: 'enabled' }, [handler('POCF')]))), both, () => undefined, { host: 'box' });
  assert.equal(r.runtime, armRuntime);
  assert.deepEqual(r.chroot, { native: false, handler: 'qemu-x86_64', interpreter: '/usr/libexec/qemu-binfmt/x86_64-binfmt-P', machine: 'aarch64' });
  assert.equal(r.chrootRefusal, undefined);
});

test('binfmt entries: parsed strictly; magic and mask matched byte by byte', () => {
  const e = parseBinfmtEntry(handler('POCF'))!;
  assert.deepEqual({ ...e, magic: e.magic?.toString('hex'), mask: e.mask?.toString('hex') }, {
    name: 'qemu-x86_64',
    enabled: true,
    interpreter: '/usr/libexec/qemu-binfmt/x86_64-binfmt-P',
    flags: 'POCF',
    offset: 0,
    magic: QEMU_MAGIC,
    mask: QEMU_MASK,
  });
  assert.equal(parseBinfmtEntry('bad/name|enabled|'), undefined);
  assert.equal(parseBinfmtEntry('x|maybe|'), undefined);
  assert.equal(parseBinfmtEntry('x|enabled|magic zz|')?.magic, undefined);
  const p = (h: string) => parseProbe(`outrun-probe:binfmtstatus=enabled\noutrun-probe:binfmt=${h}\noutrun-probe:complete=0\n`)!;
  assert.equal(emulatorFor(p(handler('F')), 'x86_64').handler?.name, 'qemu-x86_64');
  assert.equal(emulatorFor(p(handler('F')), 'aarch64').handler, undefined);
  // A magic that only takes ET_EXEC (no mask on e_type) misses PIE programs: not enough.
  assert.equal(emulatorFor(p(handler('F').replace(`mask ${QEMU_MASK}`, 'mask ffffffffffffff00ffffffffffffffffffffffff')), 'x86_64').handler, undefined);
  // An extension handler never matches an ELF file.
  assert.equal(emulatorFor(p('py|enabled|interpreter /usr/bin/python3|flags: F|extension .py|'), 'x86_64').handler, undefined);
});

const rootless = { user: 'ann', home: '/home/ann', fuseaccess: '1', fusefs: '1', kernel: '6.1.0', fusemode: 'crw-rw-rw- root:root' };

test('a non-root login is a rootless run: runtime and sessions in ~/.cache/outrun', async () => {
  const conn = new FakeConn(() => probe({ uid: '1000', complete: true, extra: rootless }));
  const r = await ensureRemoteRuntime(asClient(conn), fakeRuntime, () => undefined, { host: 'box' });
  assert.deepEqual(r, {
    remoteDir: `/home/ann/.cache/outrun/runtime/${fakeRuntime.id}`,
    uploaded: false,
    runtime: fakeRuntime,
    chroot: { native: true },
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
    // The probe also read this machine's load (for a pool's placement).
    assert.equal(cold.load?.cpus, os.availableParallelism());
    assert.ok(cold.load!.load1 >= 0);
    const { load: _load, ...rest } = cold;
    assert.deepEqual(rest, { remoteDir: `${cacheRoot}/${rt.id}`, uploaded: true, runtime: rt, chroot: { native: true } });
    assert.equal(fs.statSync(cacheRoot).mode & 0o777, 0o700);
    assert.ok(fs.existsSync(path.join(cold.remoteDir, '.complete')));
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(cold.remoteDir, 'manifest.json'), 'utf8')).id, rt.id);
    for (const [rel, f] of Object.entries(rt.files)) {
      const st: fs.Stats = fs.statSync(path.join(cold.remoteDir, rel));
      assert.equal(st.size, f.size, rel);
      assert.equal(st.mode & 0o7777, f.mode, rel);
    }
    assert.deepEqual(fs.readdirSync(cacheRoot), [rt.id]);
    const conn = new FakeConn(() => 'local');
    const warm = await ensureRemoteRuntime(asClient(conn), rt, () => undefined, { cacheRoot });
    assert.deepEqual({ ...warm, load: undefined }, { remoteDir: cold.remoteDir, uploaded: false, runtime: rt, chroot: { native: true }, load: undefined });
    assert.equal(conn.commands.length, 1);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
