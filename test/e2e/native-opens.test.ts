// End to end: read-only opens of files passed through to their blob, answered by the agent's
// addon without JS (src/remote/fuse-addon/native-opens.c). Each case runs the same shell
// script locally and through outrun over a tree that is the only cached one besides the
// system trees, and compares the bytes, the exit status and what is left on the local disk.
// The addon answers only opens of nodes JS passed through before in the session, so each
// script opens its files once before the opens that are checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DEFAULT_CACHED_TREES } from '../../src/fs/shared/cache-scope';
import { SSH_CONFIG, outrun, waitBoxClean, type RunResult } from './harness';

function agentCounters(r: RunResult): Record<string, number> {
  const line = r.stderr.split('\n').find((l) => l.startsWith('outrun: stats: agent: ')) ?? '';
  const out: Record<string, number> = {};
  for (const m of line.matchAll(/([a-z.-]+) (\d+)/g)) out[m[1]!] = Number(m[2]);
  return out;
}

/** Two copies of one tree (local run, remote run): sizes around a page and 1 MiB requests. */
function trees(): { base: string; local: string; remote: string } {
  const base = mkdtempSync(path.join(tmpdir(), 'outrun-native-opens-'));
  const local = path.join(base, 'local');
  const remote = path.join(base, 'remote');
  const sizes = [0, 1, 4095, 4096, 4097, 65_536, 1_048_575, 1_048_577, 3_000_001];
  mkdirSync(local);
  sizes.forEach((n, i) => writeFileSync(path.join(local, `f${i}`), randomBytes(n)));
  cpSync(local, remote, { recursive: true });
  return { base, local, remote };
}

/** Runs SCRIPT (with $D the tree) locally and through outrun; both must agree. */
async function differential(script: string, dirs: { local: string; remote: string }, extra: string[] = []) {
  const here = spawnSync('sh', ['-c', script], { env: { ...process.env, D: dirs.local } });
  const there = await outrun(
    ['-F', SSH_CONFIG, '--stats', ...extra, '--cache-paths', [...DEFAULT_CACHED_TREES, dirs.remote].join(','), 'box', 'sh', '-c', script.replaceAll('$D', dirs.remote)],
    { cwd: '/' },
  );
  assert.equal(there.stdout.toString().replaceAll(dirs.remote, 'D'), here.stdout.toString().replaceAll(dirs.local, 'D'), there.stderr);
  assert.equal(there.status, here.status, there.stderr);
  assert.deepEqual(readdirSync(dirs.remote).sort(), readdirSync(dirs.local).sort(), 'the same files are left');
  return there;
}

const HASH_ALL = 'for f in $D/f*; do sha256sum < $f; done';

test('repeated read-only opens of cached files are answered natively, byte for byte', { timeout: 180_000 }, async () => {
  const t = trees();
  try {
    await differential(HASH_ALL, t); // fills the store
    // Warm: the first pass is JS's (it passes each file through), the next ten the addon's.
    const script = `${HASH_ALL}; for i in 1 2 3 4 5 6 7 8 9 10; do ${HASH_ALL}; done | sort | uniq -c; cat $D/f4 $D/f7 $D/f3 | sha256sum; head -c 5000 $D/f8 | sha256sum`;
    const r = await differential(script, t);
    const c = agentCounters(r);
    assert.ok((c['fuse.open-native'] ?? 0) >= 80, `opens answered natively: ${JSON.stringify(c)}`);
    assert.equal(await waitBoxClean(), '');
  } finally {
    rmSync(t.base, { recursive: true, force: true });
  }
});

test('a cached file removed or replaced while natively open stays readable, and nothing is left behind', { timeout: 180_000 }, async () => {
  const t = trees();
  try {
    await differential(HASH_ALL, t);
    // Opened by JS once (passed through), then held open on fd 3 by an open the addon
    // answers; removed; then read and stat-ed through the fd. f7 is replaced by a rename.
    const script = [
      'sha256sum < $D/f6; sha256sum < $D/f7',
      'exec 3< $D/f6 4< $D/f7',
      'rm $D/f6; printf new > $D/new; mv $D/new $D/f7',
      'sha256sum <&3; stat -L -c %s /dev/fd/3',
      'sha256sum <&4; cat $D/f7; echo',
      'exec 3<&- 4<&-',
      'ls $D; cat $D/f6 2>/dev/null || echo "no f6"',
    ].join('\n');
    const r = await differential(script, t);
    assert.ok((agentCounters(r)['fuse.open-native'] ?? 0) >= 2, r.stderr);
    assert.ok(!existsSync(path.join(t.remote, 'f6')));
    // The hidden names of files unlinked while open live at the mount's root: none is left.
    assert.deepEqual(readdirSync('/').filter((n) => n.startsWith('.fuse_hidden')), []);
    assert.equal(await waitBoxClean(), '');
  } finally {
    rmSync(t.base, { recursive: true, force: true });
  }
});

test('a cached file changed locally between two runs of one master is read changed', { timeout: 180_000 }, async () => {
  const t = trees();
  const sockDir = mkdtempSync(path.join(tmpdir(), 'outrun-master-'));
  const sock = path.join(sockDir, 'm.sock');
  const master = ['-S', sock, '-o', 'ControlPersist=60'];
  try {
    await differential(HASH_ALL, t, master);
    await differential(`${HASH_ALL}; ${HASH_ALL}`, t, master); // passed through, then natively
    // The same size, new bytes: the next run must not get the old blob natively.
    for (const dir of [t.local, t.remote]) writeFileSync(path.join(dir, 'f5'), Buffer.alloc(65_536, 7));
    await differential(`${HASH_ALL}; ${HASH_ALL}`, t, master);
    const exit = await outrun(['-F', SSH_CONFIG, '-S', sock, '-O', 'exit', 'box']);
    assert.equal(exit.status, 0, exit.stderr);
    assert.equal(await waitBoxClean(), '');
  } finally {
    await outrun(['-F', SSH_CONFIG, '-S', sock, '-O', 'exit', 'box']);
    rmSync(sockDir, { recursive: true, force: true });
    rmSync(t.base, { recursive: true, force: true });
  }
});
