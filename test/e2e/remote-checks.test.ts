// End to end: a remote that cannot host a session is refused before anything is uploaded,
// with one line and status 254, and nothing is left on it.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SSH_CONFIG, boxShell, onBox, outrun, waitBoxClean } from './harness';

describe('remotes that cannot host a session', { timeout: 120_000 }, () => {
  after(() => {
    boxShell('[ -e /dev/fuse.outrun-test ] && mv /dev/fuse.outrun-test /dev/fuse; userdel -r plain 2>/dev/null; true');
  });

  test('no /dev/fuse: refused with 254, nothing uploaded', async () => {
    boxShell('rm -rf /var/cache/outrun && mv /dev/fuse /dev/fuse.outrun-test');
    try {
      const r = await onBox(['true']);
      assert.equal(r.status, 254);
      assert.match(r.stderr, /^outrun: remote .* has no \/dev\/fuse/);
      assert.equal(r.stderr.trim().split('\n').length, 1);
      assert.equal(boxShell('ls -A /var/cache/outrun/runtime 2>/dev/null | grep -v "^\\.tmp" | wc -l').trim(), '0');
    } finally {
      boxShell('mv /dev/fuse.outrun-test /dev/fuse');
    }
    assert.equal(await waitBoxClean(), '');
  });

  // A login that is not root runs rootless (rootless.test.ts); this one is not in the box's
  // fuse group, so /dev/fuse (0660 root:fuse) is what it lacks.
  test('logged in as a user who is not root and may not open /dev/fuse: refused with 254', async () => {
    boxShell(
      '(id plain >/dev/null 2>&1 || useradd -m -p "*" plain) && usermod -p "*" plain && mkdir -p ~plain/.ssh && cp /root/.ssh/authorized_keys ~plain/.ssh/ && chown -R plain: ~plain/.ssh && chmod 700 ~plain/.ssh',
    );
    const p = await outrun(['-F', SSH_CONFIG, '-l', 'plain', 'box', 'true']);
    assert.equal(p.status, 254, p.stderr);
    assert.match(p.stderr, /^outrun: \/dev\/fuse on .* is not readable and writable by plain \(crw-rw---- root:fuse\); .* or log in as root$/m);
    assert.equal(p.stderr.trim().split('\n').length, 1);
  });
});
