// End to end: a remote of another CPU architecture, the arm64 test box (Debian arm64 run
// through qemu-user in a user namespace of its own; scripts/testbox up --arch arm64). outrun
// ships the aarch64 runtime there (the agent runs as an aarch64 program); --no-chroot runs the
// box's own aarch64 programs on local files, as root and rootless; a chroot run (this
// machine's x86_64 programs) is refused with its line until the box's root registers an
// x86_64 binfmt_misc handler with the F flag, and then works, emulated, and --stats says so.
// Bytes are compared with the local files (random data).
//
// What the emulated box cannot show: its kernel is this machine's, so x86_64 programs run there
// even without a handler (the refusal is outrun's judgement of the probe, checked as such), and
// qemu-user is multithreaded, so the kernel refuses its programs a user namespace of their own:
// a rootless login there is refused (asserted below), as on any remote that forbids them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ROOT, SSH_CONFIG, boxShell, outrun, waitBoxClean } from './harness';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const ARM = 'box-arm64';
const ARM_USER = 'box-arm64-user';
const ARM_ID = JSON.parse(readFileSync(path.join(ROOT, 'dist/runtime-aarch64/manifest.json'), 'utf8')).id as string;
const REFUSAL = new RegExp(
  String.raw`^outrun: remote \S+ is aarch64 and cannot run this machine's x86_64 programs \(it has no binfmt_misc handler for x86_64 programs\); ` +
    String.raw`run the remote's own programs with --no-chroot, or have its admin register qemu-user-static's x86_64 handler with the F flag \(Debian: apt-get install qemu-user-static binfmt-support\)\n$`,
);
const BINFMT = '/proc/sys/fs/binfmt_misc';
// An x86_64 handler as qemu-user-static's (static and PIE executables: e_type 2 and 3), but for
// OS ABI 0 only: the box's own qemu-aarch64-static is an x86_64 program too (OS ABI 3), and a
// handler that caught it would leave no aarch64 program runnable there (scripts/testbox-arm64).
const X86_HANDLER =
  String.raw`:qemu-x86_64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00:` +
  String.raw`\xff\xff\xff\xff\xff\xfe\xfe\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/local/libexec/qemu-x86_64-static:F`;
const removeHandler = () => boxShell(`[ ! -e ${BINFMT}/qemu-x86_64 ] || echo -1 > ${BINFMT}/qemu-x86_64`, ARM);

describe('a remote of another architecture (aarch64)', { timeout: 900_000 }, () => {
  let work: string;
  before(() => {
    assert.match(boxShell('uname -m', ARM), /^aarch64$/m, 'the arm64 box must be up (scripts/testbox up --arch arm64)');
    removeHandler();
    work = mkdtempSync(path.join(tmpdir(), 'outrun-arch-'));
    chmodSync(work, 0o755);
    // Around a page and a MiB (the FUSE request size).
    for (const size of [4097, (1 << 20) + 1]) writeFileSync(path.join(work, `r${size}`), randomBytes(size));
  });
  after(() => {
    rmSync(work, { recursive: true, force: true });
    removeHandler();
  });

  test('--no-chroot as root: the box\'s own aarch64 programs read and write local files', async () => {
    const out = 'w-root.bin';
    const r = await outrun(
      ['-F', SSH_CONFIG, '--no-chroot', ARM, 'sh', '-c', `uname -m; sha256sum r*; head -c 300001 /dev/urandom > ${out}; sha256sum ${out}; od -An -tx1 -j18 -N2 /bin/sh`],
      { cwd: work },
    );
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.toString().trim().split('\n');
    assert.equal(lines[0], 'aarch64');
    const sums = lines.slice(1, 3).map((l) => l.split(/\s+/));
    for (const [sum, name] of sums) assert.equal(sum, sha256(readFileSync(path.join(work, name!))), name);
    // What the box wrote is on the local disk, byte for byte.
    const [wsum, wname] = lines[3]!.split(/\s+/);
    assert.equal(wname, out);
    const written = readFileSync(path.join(work, out));
    assert.equal(written.length, 300001);
    assert.equal(sha256(written), wsum);
    // The box's /bin/sh is an aarch64 program (e_machine 0xb7), not a local one.
    assert.equal(lines[4]!.trim(), 'b7 00');
    assert.equal(await waitBoxClean(5000, ARM), '');
  });

  test('a rootless login there: refused, user namespaces named (qemu-user cannot have one)', async () => {
    const r = await outrun(['-F', SSH_CONFIG, '--no-chroot', ARM_USER, 'id', '-u'], { cwd: work });
    assert.equal(r.status, 254, r.stderr);
    assert.match(r.stderr, /^outrun: unprivileged user namespaces are refused on \S+ \(unshare -U fails\); log in as root, or have its admin \(or container runtime\) allow unshare\(CLONE_NEWUSER\)\n$/);
    assert.equal(r.stdout.length, 0);
  });

  test('the aarch64 runtime is what was installed (the agent runs natively there)', () => {
    const id = boxShell(`cat /var/cache/outrun/runtime/${ARM_ID}/manifest.json`, ARM);
    assert.equal(JSON.parse(id).machine, 'aarch64');
    assert.equal(boxShell(`od -An -tx1 -j18 -N2 /var/cache/outrun/runtime/${ARM_ID}/node`, ARM).trim(), 'b7 00');
  });

  test('a chroot run is refused with its line, exit 254, nothing uploaded or left', async () => {
    const before = boxShell('ls -A /var/cache/outrun/runtime', ARM);
    const r = await outrun(['-F', SSH_CONFIG, ARM, 'true'], { cwd: work });
    assert.equal(r.status, 254, r.stderr);
    assert.match(r.stderr, REFUSAL);
    assert.equal(boxShell('ls -A /var/cache/outrun/runtime', ARM), before);
    assert.equal(await waitBoxClean(5000, ARM), '');
  });

  test('--check: a chroot run would not work (exit 1), a --no-chroot run would (exit 0)', async () => {
    const chroot = await outrun(['-F', SSH_CONFIG, '--check', ARM]);
    assert.equal(chroot.status, 1, chroot.stderr);
    assert.match(
      chroot.stdout.toString(),
      /^architecture: MISSING: remote \S+ is aarch64 and cannot run this machine's x86_64 programs \(it has no binfmt_misc handler for x86_64 programs\); run the remote's own programs with --no-chroot, /m,
    );
    assert.match(chroot.stdout.toString(), new RegExp(`^runtime: ok: installed \\(/var/cache/outrun/runtime/${ARM_ID}\\)$`, 'm'));
    assert.match(chroot.stdout.toString(), /\noutrun: a run would not work \(1 missing\)\n$/);
    const host = await outrun(['-F', SSH_CONFIG, '--check', '--no-chroot', ARM]);
    assert.equal(host.status, 0, host.stdout.toString());
    assert.match(host.stdout.toString(), /^architecture: ok: aarch64, this machine is x86_64: the aarch64 runtime, and the remote's own programs \(--no-chroot\)$/m);
    assert.match(host.stdout.toString(), /\noutrun: a run would work\n$/);
  });

  test('through a master: --no-chroot runs go, chroot runs get the same refusal', async () => {
    // The socket's directory must be private (the work directory is open to the box's users).
    const ctl = mkdtempSync(path.join(tmpdir(), 'outrun-arch-ctl-'));
    const sock = path.join(ctl, 's');
    const base = ['-F', SSH_CONFIG, '-S', sock, '-o', 'ControlPersist=60'];
    try {
      const a = await outrun([...base, '--no-chroot', ARM, 'sh', '-c', 'uname -m; sha256sum r4097'], { cwd: work });
      assert.equal(a.status, 0, a.stderr);
      assert.equal(a.stdout.toString(), `aarch64\n${sha256(readFileSync(path.join(work, 'r4097')))}  r4097\n`);
      assert.equal((await outrun([...base, '-O', 'check', ARM])).status, 0, 'the master runs');
      const b = await outrun([...base, ARM, 'true'], { cwd: work });
      assert.equal(b.status, 254, b.stderr);
      assert.match(b.stderr, REFUSAL);
    } finally {
      await outrun([...base, '-O', 'exit', ARM]);
    }
    assert.equal(await waitBoxClean(10_000, ARM), '');
    assert.ok(!existsSync(sock));
    rmSync(ctl, { recursive: true, force: true });
  });

  test('with an x86_64 handler (F) registered there, a chroot run runs the local programs, emulated; --stats says so', async () => {
    boxShell(`printf '%s' '${X86_HANDLER}' > ${BINFMT}/register`, ARM);
    try {
      assert.match(boxShell(`cat ${BINFMT}/qemu-x86_64`, ARM), /^flags: .*F/m);
      const script = 'uname -m; sha256sum r*; head -c 70001 /dev/urandom > chroot-w.bin; sha256sum chroot-w.bin; python3 -c "import platform; print(platform.machine())"; readlink /proc/$$/exe';
      const r = await outrun(['-F', SSH_CONFIG, '--stats', ARM, 'sh', '-c', script], { cwd: work });
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stdout.toString().trim().split('\n');
      // Local programs, run by qemu-x86_64: they see an x86_64 machine (the local python3,
      // which the box does not have, runs too).
      assert.equal(lines[0], 'x86_64');
      for (const l of lines.slice(1, 3)) {
        const [sum, name] = l.split(/\s+/);
        assert.equal(sum, sha256(readFileSync(path.join(work, name!))), name);
      }
      const [wsum] = lines[3]!.split(/\s+/);
      assert.equal(sha256(readFileSync(path.join(work, 'chroot-w.bin'))), wsum);
      assert.equal(statSync(path.join(work, 'chroot-w.bin')).size, 70001);
      assert.equal(lines[4], 'x86_64');
      // The local sh ran through the handler: its process is the emulator's.
      assert.match(lines[5]!, /qemu-x86_64-static$/);
      assert.match(
        r.stderr,
        /^outrun: stats: emulated: the remote is aarch64; the command's x86_64 programs ran through its binfmt_misc handler qemu-x86_64 \(\/usr\/local\/libexec\/qemu-x86_64-static\)$/m,
      );
      const check = await outrun(['-F', SSH_CONFIG, '--check', ARM]);
      assert.equal(check.status, 0, check.stdout.toString());
      assert.match(check.stdout.toString(), /^architecture: ok: aarch64, this machine is x86_64: the aarch64 runtime; local programs run through \S+'s binfmt_misc handler qemu-x86_64 \(\/usr\/local\/libexec\/qemu-x86_64-static\), emulated$/m);
      // Exit statuses pass through the emulation as they are.
      const s = await outrun(['-F', SSH_CONFIG, ARM, 'sh', '-c', 'exit 42'], { cwd: work });
      assert.equal(s.status, 42, s.stderr);
    } finally {
      removeHandler();
    }
    assert.equal(await waitBoxClean(5000, ARM), '');
  });
});
