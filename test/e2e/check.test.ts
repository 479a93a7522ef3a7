// End to end: outrun --check (the doctor) on the box as root, as rootless logins, and on logins
// a run refuses (box-nofuse: /dev/fuse unusable; box-nouserns: user namespaces refused by a
// seccomp filter). Exact lines (the kernel is this machine's, the box shares it; free space
// varies and is matched), and exit 0 exactly when a run works: checked by running one.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import * as path from 'node:path';
import { ROOT, SSH_CONFIG, outrun } from './harness';

const ADDR = /^\s*HostName\s+(\S+)/m.exec(readFileSync(SSH_CONFIG, 'utf8'))![1]!;
const ID = JSON.parse(readFileSync(path.join(ROOT, 'dist/runtime/manifest.json'), 'utf8')).id as string;
const K = release();
const FREE = String.raw`\d+\.\d GB free there`;
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Lines: a string must be equal; a RegExp must match the whole line. */
function assertLines(got: string, want: (string | RegExp)[]): void {
  const lines = got.split('\n');
  assert.equal(lines.pop(), '', 'ends with a newline');
  assert.equal(lines.length, want.length, got);
  lines.forEach((l, i) => {
    const w = want[i]!;
    if (typeof w === 'string') assert.equal(l, w);
    else assert.match(l, w);
  });
}

const check = (host: string) => outrun(['-F', SSH_CONFIG, '--check', host]);
const run = (host: string) => outrun(['-F', SSH_CONFIG, host, 'true']);

const NO_SUBIDS =
  'subordinate ids: ok: no /etc/subuid or /etc/subgid range for the login: only the local uid and gid map ' +
  '(files of other owners show as 65534, setuid gains nothing, groups cannot change)';
const TAIL_ROOTLESS = [
  'architecture: ok: x86_64, as this machine',
];
const KERNEL_ROOTLESS = `kernel: ok: Linux ${K}: FUSE max_pages and cached listings yes, passthrough not used (root only)`;
const UPLOAD = 'upload: ok: SFTP (uncompressed: no decompressor needed)';
const notInstalled = (home: string) => new RegExp(`^runtime: ok: not installed: a run uploads \\d+ MB to ${esc(home)}/\\.cache/outrun/runtime, ${FREE}$`);

describe('outrun --check', { timeout: 300_000 }, () => {
  before(async () => {
    // Installed where a run works, so that the lines do not depend on the order of the tests.
    for (const host of ['box', 'box-user']) assert.equal((await run(host)).status, 0);
  });

  test('box (root): every item there, exit 0', async () => {
    const r = await check('box');
    assertLines(r.stdout.toString(), [
      'login: ok: root (uid 0): root mode',
      'user namespaces: ok: not needed (root)',
      '/dev/fuse: ok: present (crw-rw---- root:fuse)',
      ...TAIL_ROOTLESS,
      `runtime: ok: installed (/var/cache/outrun/runtime/${ID})`,
      `kernel: ok: Linux ${K}: FUSE max_pages and cached listings yes, passthrough yes`,
      UPLOAD,
      'outrun: a run would work',
    ]);
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
  });

  test('box-user (rootless): FUSE in a user namespace tried for real, exit 0', async () => {
    const r = await check('box-user');
    assertLines(r.stdout.toString(), [
      'login: ok: outrun-user (uid 1001): rootless mode (a user namespace of its own)',
      'user namespaces: ok: allowed for outrun-user',
      '/dev/fuse: ok: present (crw-rw---- root:fuse), usable by outrun-user',
      `FUSE in a user namespace: ok: tried: mounted in a user namespace on Linux ${K}`,
      NO_SUBIDS,
      ...TAIL_ROOTLESS,
      `runtime: ok: installed (/home/outrun-user/.cache/outrun/runtime/${ID})`,
      KERNEL_ROOTLESS,
      UPLOAD,
      'outrun: a run would work',
    ]);
    assert.equal(r.status, 0);
  });

  test('box-subuid: the ranges are named', async () => {
    const r = await check('box-subuid');
    assert.equal(r.status, 0, r.stdout.toString());
    assert.ok(
      r.stdout.toString().includes(
        '\nsubordinate ids: ok: newuidmap, newgidmap and /etc/subuid, /etc/subgid ranges: local root and other owners map, groups apply\n',
      ),
    );
  });

  test('box-nofuse: /dev/fuse missing with what to do, exit 1; a run is refused (254)', async () => {
    const r = await check('box-nofuse');
    assertLines(r.stdout.toString(), [
      'login: ok: outrun-nofuse (uid 1003): rootless mode (a user namespace of its own)',
      'user namespaces: ok: allowed for outrun-nofuse',
      `/dev/fuse: MISSING: /dev/fuse on ${ADDR} is not readable and writable by outrun-nofuse (crw-rw---- root:fuse); ` +
        "have its admin make it 0666 (chmod 666 /dev/fuse; Debian's udev rule does) or add the login to its group, or log in as root",
      `FUSE in a user namespace: ok: Linux ${K} allows it (4.18+) (not tried: the runtime is not installed yet)`,
      NO_SUBIDS,
      ...TAIL_ROOTLESS,
      notInstalled('/home/outrun-nofuse'),
      KERNEL_ROOTLESS,
      UPLOAD,
      'outrun: a run would not work (1 missing)',
    ]);
    assert.equal(r.status, 1);
    assert.equal((await run('box-nofuse')).status, 254);
  });

  test('box-nouserns: user namespaces refused (the seccomp filter named), exit 1; a run is refused (254)', async () => {
    const r = await check('box-nouserns');
    assertLines(r.stdout.toString(), [
      'login: ok: outrun-nouserns (uid 1004): rootless mode (a user namespace of its own)',
      `user namespaces: MISSING: unprivileged user namespaces are refused on ${ADDR} (unshare -U fails; a seccomp filter is in place ` +
        '(Seccomp: 2 in /proc/self/status)); log in as root, or have its admin (or container runtime) allow unshare(CLONE_NEWUSER)',
      '/dev/fuse: ok: present (crw-rw---- root:fuse), usable by outrun-nouserns',
      'FUSE in a user namespace: MISSING: impossible without user namespaces (see above)',
      NO_SUBIDS,
      ...TAIL_ROOTLESS,
      notInstalled('/home/outrun-nouserns'),
      KERNEL_ROOTLESS,
      UPLOAD,
      'outrun: a run would not work (2 missing)',
    ]);
    assert.equal(r.status, 1);
    const refused = await run('box-nouserns');
    assert.equal(refused.status, 254);
    assert.equal(
      refused.stderr,
      `outrun: unprivileged user namespaces are refused on ${ADDR} (unshare -U fails; a seccomp filter is in place (Seccomp: 2 in /proc/self/status)); ` +
        'log in as root, or have its admin (or container runtime) allow unshare(CLONE_NEWUSER)\n',
    );
  });

  test('usage: --check takes a destination and no command (exit 2)', async () => {
    const r = await outrun(['--check', 'box', 'true']);
    assert.equal(r.stderr, 'outrun: --check takes no command; see outrun --help\n');
    assert.equal(r.status, 2);
  });
});
