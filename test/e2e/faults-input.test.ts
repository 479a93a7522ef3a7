// End to end: bad input and hostile conditions not covered elsewhere (session.test.ts has
// host keys, wrong key, refused port, command not found; remote-checks.test.ts has no FUSE
// and a non-root login). Each ends with one line on stderr, the documented status, and
// nothing left on the box; what must pass through exactly does.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import * as net from 'node:net';
import { CLI, SSH_CONFIG, boxShell, onBox, outrun, waitBoxClean } from './harness';

const oneLine = (stderr: string) => assert.equal(stderr.trim().split('\n').length, 1, stderr);
/** Nothing but finished runtimes in the remote cache: no half-uploaded temp directories. */
const cacheTemps = () => boxShell('ls -A /var/cache/outrun/runtime 2>/dev/null | grep "^\\." | wc -l').trim();

describe('bad input ends with one line, its status, and nothing left behind', { timeout: 5 * 60_000 }, () => {
  after(() => {
    boxShell('rm -f /usr/local/bin/uname; umount /var/cache/outrun 2>/dev/null; true');
  });

  test('unknown host: 255 (resolved with no network at all, so nothing leaves this machine)', () => {
    const r = spawnSync('unshare', ['--net', process.execPath, CLI, '-F', SSH_CONFIG, 'nosuchhost.invalid', 'true'], { encoding: 'utf8' });
    assert.equal(r.status, 255, r.stderr);
    assert.match(r.stderr, /^outrun: cannot resolve host name nosuchhost\.invalid; /);
    oneLine(r.stderr);
  });

  test('connection timeout (a server that accepts and then says nothing): 255 after ConnectTimeout', async () => {
    // A local tarpit: the TCP connection opens, the SSH banner never comes.
    const held: net.Socket[] = [];
    const tarpit = net.createServer((c) => held.push(c.on('error', () => undefined)));
    await new Promise<void>((r) => tarpit.listen(0, '127.0.0.1', r));
    const port = (tarpit.address() as net.AddressInfo).port;
    try {
      const r = await outrun(['-F', SSH_CONFIG, '-o', 'ConnectTimeout=2', '-o', 'HostName=127.0.0.1', '-p', String(port), 'box', 'true']);
      assert.equal(r.status, 255, r.stderr);
      assert.match(r.stderr, /^outrun: timed out connecting to .* after 2 s; /);
      oneLine(r.stderr);
    } finally {
      held.forEach((c) => c.destroy());
      tarpit.close();
    }
  });

  test('a remote of another CPU architecture: 254 before any upload (no emulation there; no runtime for it)', async () => {
    const fake = (m: string) =>
      boxShell(
        `rm -rf /var/cache/outrun && printf '#!/bin/sh\\n[ "$1" = -m ] && { echo ${m}; exit 0; }\\nexec /bin/uname "$@"\\n' > /usr/local/bin/uname && chmod 755 /usr/local/bin/uname`,
      );
    try {
      fake('aarch64');
      let r = await onBox(['true']);
      assert.equal(r.status, 254, r.stderr);
      assert.match(r.stderr, /^outrun: remote \S+ is aarch64 and cannot run this machine's x86_64 programs \(it has no binfmt_misc handler for x86_64 programs\); run the remote's own programs with --no-chroot, or /);
      oneLine(r.stderr);
      assert.equal(boxShell('ls -A /var/cache/outrun/runtime 2>/dev/null | wc -l').trim(), '0');
      fake('riscv64');
      r = await onBox(['true']);
      assert.equal(r.status, 254, r.stderr);
      assert.match(r.stderr, /^outrun: remote \S+ is riscv64 and this outrun has a runtime for aarch64 and x86_64 only; use an aarch64 or x86_64 remote\n$/);
      assert.equal(boxShell('ls -A /var/cache/outrun/runtime 2>/dev/null | wc -l').trim(), '0');
    } finally {
      boxShell('rm -f /usr/local/bin/uname');
    }
    assert.equal(await waitBoxClean(), '');
  });

  test('the remote disk fills up during the upload: 254, no partial runtime left', async () => {
    boxShell('rm -rf /var/cache/outrun && mkdir -p /var/cache/outrun && mount -t tmpfs -o size=16m outrun-full /var/cache/outrun');
    try {
      const r = await onBox(['true']);
      assert.equal(r.status, 254, r.stderr);
      assert.match(r.stderr, /^outrun: cannot install the outrun runtime on .*: the remote disk is full/);
      oneLine(r.stderr);
      assert.equal(cacheTemps(), '0');
      assert.equal(boxShell('ls -A /var/cache/outrun/runtime 2>/dev/null | wc -l').trim(), '0');
    } finally {
      boxShell('umount /var/cache/outrun; true');
    }
    assert.equal(await waitBoxClean(), '');
    // And the next run, with room again, installs and runs.
    const ok = await onBox(['echo', 'room again']);
    assert.equal(ok.stdout.toString(), 'room again\n', ok.stderr);
  });

  test('a local cwd the remote cannot reach (/dev is the remote\'s own): 254', async () => {
    const dir = `/dev/shm/outrun-cwd-${process.pid}`;
    mkdirSync(dir);
    try {
      const r = await onBox(['pwd'], { cwd: dir });
      assert.equal(r.status, 254, r.stderr);
      assert.match(r.stderr, new RegExp(`^outrun: cannot enter the working directory ${dir} on the remote: No such file or directory`));
      oneLine(r.stderr);
      assert.equal(r.stdout.length, 0);
    } finally {
      rmdirSync(dir);
    }
    assert.equal(await waitBoxClean(), '');
  });

  // Linux caps one argv or environment string at 128 KiB (MAX_ARG_STRLEN) and all of them
  // together at a quarter of the stack limit (2 MiB here): 1 MiB goes as eight strings of
  // 128 KiB minus one byte, once as arguments and once as environment.
  const piece = (c: string, prefix = 0) => c.repeat(128 * 1024 - 1 - prefix);
  const script = 'for a; do printf "%s %s\\n" "${#a}" "$(printf %s "$a" | cksum)"; done; env | grep ^BIG_ | cksum';

  test('1 MiB of arguments passes through whole', async () => {
    const args = 'abcdefgh'.split('').map((c) => piece(c));
    const env = { PATH: process.env.PATH, LANG: 'C' };
    const r = await onBox(['sh', '-c', script, 'sh', ...args], { env });
    assert.equal(r.status, 0, r.stderr);
    const local = spawnSync('sh', ['-c', script, 'sh', ...args], { env, encoding: 'utf8' });
    assert.equal(r.stdout.toString(), local.stdout);
    assert.equal(r.stdout.toString().split('\n').length, 10);
    assert.match(r.stdout.toString(), /^131071 /);
  });

  test('1 MiB of environment passes through whole', async () => {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, LANG: 'C' };
    for (const c of 'ABCDEFGH') env[`BIG_${c}`] = piece(c.toLowerCase(), 'BIG_X='.length);
    const r = await onBox(['sh', '-c', script, 'sh'], { env });
    assert.equal(r.status, 0, r.stderr);
    const local = spawnSync('sh', ['-c', script, 'sh'], { env, encoding: 'utf8' });
    assert.equal(r.stdout.toString(), local.stdout);
    assert.notEqual(local.stdout, spawnSync('sh', ['-c', script, 'sh'], { env: { PATH: process.env.PATH }, encoding: 'utf8' }).stdout);
  });

  test('argv with quotes, newlines, spaces, globs and shell syntax passes through exactly', async () => {
    const args = [`it's "quoted"`, 'two\nlines', '  spaces  ', '*', '$(touch /tmp/pwned)', '`id`', ';|&<>', '', '-n', 'ünïcödé ✓'];
    const r = await onBox(['printf', '%s\\0', ...args]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.toString('utf8').split('\0').slice(0, -1), args);
    assert.equal(boxShell('ls /tmp/pwned 2>/dev/null | wc -l').trim(), '0');
  });

  // Node decodes its argv as UTF-8; outrun reads its own argv from /proc/self/cmdline
  // instead (exec-spec.ts), so the bytes arrive as given.
  test('argv with non-UTF-8 bytes passes through exactly', () => {
    const r = spawnSync(
      'sh',
      ['-c', `exec "$0" "$1" -F "$2" box printf '%s' "$(printf 'a\\377b\\376c')"`, process.execPath, CLI, SSH_CONFIG],
      { encoding: 'buffer' },
    );
    assert.equal(r.status, 0, r.stderr.toString());
    assert.deepEqual([...r.stdout], [0x61, 0xff, 0x62, 0xfe, 0x63]);
  });

  test('the box is clean after all of them', async () => {
    assert.equal(await waitBoxClean(), '');
  });
});
