// Fuzzes the local file server with random and mutated requests (fuzz-worker.ts) inside a
// sandbox: a private mount namespace whose root is this machine's / bind-mounted read-only,
// with a scratch tmpfs at /tmp. The requests are hostile on purpose (chmod of /, writes to
// /etc or /proc, opens of devices): the sandbox is what keeps the machine intact while the
// server answers them for real. Bounded in time: OUTRUN_FUZZ_MS (default 24 s).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmdirSync } from 'node:fs';
import * as path from 'node:path';

const WORKER = path.join(__dirname, 'fuzz-worker.js');
/** The checkout's root (dist/test/fuzz/ is three levels down): the worker loads from it. */
const CHECKOUT = path.resolve(__dirname, '../../..');

// Runs as root in a new mount namespace; everything mounted here vanishes with it.
const SANDBOX = `
set -eu
new="$1"; checkout="$2"; shift 2
mount --bind / "$new"
mount -o remount,bind,ro "$new"
mount -t tmpfs -o size=256m,mode=1777 fuzz-tmp "$new/tmp"
mount -t tmpfs -o size=1m fuzz-dev "$new/dev"
# A checkout under /tmp (where people try things) would be hidden by the scratch /tmp: bind it
# back, read-only, so the worker and its modules are still there.
case "$checkout" in
  /tmp/*) mkdir -p "$new$checkout"; mount --bind "$checkout" "$new$checkout"; mount -o remount,bind,ro "$new$checkout" ;;
esac
# Device nodes of our own on the scratch /dev: a bind mount of the machine's /dev/null would
# let a hostile chmod, chown or utimens change the real one (seen: mode 7515, owner 56806).
mknod -m 666 "$new/dev/null" c 1 3
mknod -m 666 "$new/dev/zero" c 1 5
mknod -m 666 "$new/dev/urandom" c 1 9
mount -t proc -o ro proc "$new/proc"
exec chroot "$new" "$@"
`;

test('the file server answers random and hostile requests with errnos, within bounds', { timeout: 180_000 }, () => {
  const root = mkdtempSync('/tmp/outrun-fuzz-root-');
  try {
    const r = spawnSync(
      'unshare',
      ['--mount', '--propagation', 'private', '--', 'sh', '-c', SANDBOX, 'sandbox', root, CHECKOUT, process.execPath, WORKER],
      // A hung server (its thread pool stuck) cannot end the worker by itself: kill it.
      { encoding: 'utf8', env: { ...process.env }, maxBuffer: 64 * 1024 * 1024, timeout: 150_000, killSignal: 'SIGKILL' },
    );
    assert.equal(r.signal, null, `fuzz worker hung and was killed:\n${r.stderr}\n${r.stdout}`);
    assert.equal(r.status, 0, `fuzz worker failed:\n${r.stderr}\n${r.stdout}`);
    const report = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    console.log('fuzz:', JSON.stringify(report));
    // It did real work: many sequences, many successful operations, decoding and gRPC rounds.
    assert.ok(report.sequences >= 50, `only ${report.sequences} sequences ran`);
    assert.ok(report.ok >= 100, `only ${report.ok} operations succeeded`);
    assert.ok(report.decoded >= 100 && report.undecodable >= 1, JSON.stringify(report));
    assert.ok(report.grpcCalls >= 50 && report.grpcErrors >= 1, JSON.stringify(report));
  } finally {
    rmdirSync(root);
  }
});
