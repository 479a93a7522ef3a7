// End to end: every filesystem operation through the FUSE mount behaves as on the local
// disk. One script (fixtures/fs-ops.sh) runs locally and through outrun, in two fresh
// directories; the outputs must be the same, byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ROOT, SSH_CONFIG, onBox, outrun } from './harness';

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

test('--kernel-cache 0: a stat during a run sees a local change and a new name at once; by default the kernel keeps its answers', { timeout: 90_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'outrun-kernel-cache-'));
  const f = path.join(dir, 'f');
  // stat (no open) before and after the local change; `test -e` of a name made meanwhile.
  const script = `stat -c %s '${f}'; test -e '${f}.new' || echo absent; touch '${f}.read'; sleep 3; stat -c %s '${f}'; test -e '${f}.new' && echo present || echo absent`;
  const during = async (options: string[]) => {
    writeFileSync(f, 'v1');
    rmSync(`${f}.read`, { force: true });
    rmSync(`${f}.new`, { force: true });
    const run = outrun(['-F', SSH_CONFIG, ...options, 'box', 'sh', '-c', script]);
    const deadline = Date.now() + 30_000;
    while (!existsSync(`${f}.read`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    writeFileSync(f, 'version two, longer');
    writeFileSync(`${f}.new`, '');
    const r = await run;
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.toString();
  };
  try {
    assert.equal(await during(['--kernel-cache', '0']), '2\nabsent\n19\npresent\n');
    // The default (10 s): within it the kernel answers from what it held, as documented.
    assert.equal(await during([]), '2\nabsent\n2\nabsent\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
