// End to end: every filesystem operation through the FUSE mount behaves as on the local
// disk. One script (fixtures/fs-ops.sh) runs locally and through outrun, in two fresh
// directories; the outputs must be the same, byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ROOT, onBox } from './harness';

const SCRIPT = path.join(ROOT, 'test/e2e/fixtures/fs-ops.sh');

test('filesystem operations through outrun match the local disk', { timeout: 120_000 }, async () => {
  const localDir = mkdtempSync(path.join(tmpdir(), 'outrun-fsops-'));
  const remoteDir = mkdtempSync(path.join(tmpdir(), 'outrun-fsops-'));
  try {
    const local = spawnSync('sh', [SCRIPT, localDir], { encoding: 'utf8' });
    assert.equal(local.status, 0, local.stderr);
    const remote = await onBox(['sh', SCRIPT, remoteDir]);
    assert.equal(remote.stderr, local.stderr);
    assert.equal(remote.status, 0);
    const out = remote.stdout.toString('utf8');
    // Same lines in the same order, so a difference names the operation that differs.
    const a = local.stdout.split('\n');
    const b = out.split('\n');
    for (let i = 0; i < Math.max(a.length, b.length); i++) assert.equal(b[i], a[i], `line ${i + 1} differs`);
    assert.ok(local.stdout.includes('== readdir'), 'the script ran to the end');
  } finally {
    rmSync(localDir, { recursive: true, force: true });
    rmSync(remoteDir, { recursive: true, force: true });
  }
});

test(
  'setting only the modification time (touch -m) reaches the local file',
  { timeout: 60_000 },
  async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'outrun-touch-'));
    try {
      const r = await onBox(['sh', '-c', `echo y > '${dir}/c' && touch -m -d @1000000000 '${dir}/c' && stat -c %Y '${dir}/c'`]);
      assert.equal(r.stdout.toString(), '1000000000\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('a file changed locally during a run is seen changed by the command at its next open (close-to-open)', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'outrun-coherence-'));
  const f = path.join(dir, 'f');
  try {
    writeFileSync(f, 'v1');
    const run = onBox(['sh', '-c', `cat '${f}'; echo; cat '${f}' >/dev/null; touch '${f}.read'; sleep 3; cat '${f}'; echo`]);
    // Change the file once the command has read it (and its caches hold it).
    const deadline = Date.now() + 30_000;
    while (!existsSync(`${f}.read`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    // Longer: the remote kernel must not go by the size it held.
    writeFileSync(f, 'version two, longer');
    const r = await run;
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'v1\nversion two, longer\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
