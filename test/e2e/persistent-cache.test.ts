// End to end: the remote's persistent cache of local trees. A temporary local tree is made
// the only cached tree (--cache-paths), so these tests own their store on the box. They
// check that the cache is used (the agent's counters), that it never serves a stale entry
// (a file changed locally between runs, even with its size and mtime put back), that
// writes to a cached path reach the local disk, and that concurrent sessions keep both the
// bytes and the store intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DEFAULT_CACHED_TREES } from '../../src/fs/shared/cache-scope';
import { SSH_CONFIG, boxShell, outrun, waitBoxClean, type RunResult } from './harness';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The agent's counters from --stats output ("persist.content-hit 3, ..."). */
function agentCounters(r: RunResult): Record<string, number> {
  const line = r.stderr.split('\n').find((l) => l.startsWith('outrun: stats: agent: ')) ?? '';
  const out: Record<string, number> = {};
  for (const m of line.matchAll(/([a-z.-]+) (\d+)/g)) out[m[1]!] = Number(m[2]);
  return out;
}
/** RPC counts by kind from --stats output. */
function rpcs(r: RunResult): Record<string, number> {
  const line = r.stderr.split('\n').find((l) => l.startsWith('outrun: stats: RPCs by kind: ')) ?? '';
  const out: Record<string, number> = {};
  for (const m of line.matchAll(/([A-Za-z]+) (\d+)/g)) out[m[1]!] = Number(m[2]);
  return out;
}

function tree(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'outrun-pcache-'));
  writeFileSync(path.join(dir, 'a'), 'first version\n');
  writeFileSync(path.join(dir, 'b'), randomBytes(300_000)); // larger than one inline open
  return dir;
}

/** outrun [options] box command... */
const withOptions = (options: string[], command: string[]) => outrun(['-F', SSH_CONFIG, ...options, 'box', ...command], { cwd: '/' });
// The default trees too, so that the programs themselves (sh, cat, ls) come from the cache.
const cached = (dir: string, command: string[], extra: string[] = []) =>
  withOptions(['--stats', ...extra, '--cache-paths', [...DEFAULT_CACHED_TREES, dir].join(',')], command);

test('a warm run is served from the cache, and a file changed locally between runs is seen changed', { timeout: 120_000 }, async () => {
  const dir = tree();
  try {
    const cmd = ['sh', '-c', `cat ${dir}/a; sha256sum ${dir}/b | cut -c1-64; ls ${dir}`];
    const cold = await cached(dir, cmd);
    assert.equal(cold.status, 0, cold.stderr);
    const expected = `first version\n${sha(readFileSync(path.join(dir, 'b')))}\na\nb\n`;
    assert.equal(cold.stdout.toString(), expected);

    const warm = await cached(dir, cmd, ['-vvv']);
    assert.equal(warm.status, 0, warm.stderr);
    assert.equal(warm.stdout.toString(), expected);
    const c = agentCounters(warm);
    assert.ok((c['persist.content-hit'] ?? 0) >= 2, `contents from the cache: ${warm.stderr}`);
    assert.equal(rpcs(warm).Open ?? 0, 0, `no open went to the local side (the programs are cached too)`);
    // -vvv traces every RPC with its path: none may concern the cached tree.
    const traced = warm.stderr.split('\n').filter((l) => l.startsWith('outrun: rpc ') && l.includes(dir));
    assert.deepEqual(traced, [], 'no RPC for a path in the cached tree');

    // Same size, and the old mtime put back: only ctime (which nobody can set) tells.
    const a = path.join(dir, 'a');
    const before = statSync(a);
    writeFileSync(a, 'other version\n');
    utimesSync(a, before.atime, before.mtime);
    unlinkSync(path.join(dir, 'b'));
    writeFileSync(path.join(dir, 'c'), 'new file\n');
    const after = await cached(dir, ['sh', '-c', `cat ${dir}/a; ls ${dir}; cat ${dir}/b 2>/dev/null || echo no b`]);
    assert.equal(after.status, 0, after.stderr);
    assert.equal(after.stdout.toString(), 'other version\na\nc\nno b\n');
    assert.ok((agentCounters(after)['persist.stale'] ?? 0) >= 1, after.stderr);
    assert.equal(await waitBoxClean(), '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('writes to a cached path go to the local disk and are seen by the next run', { timeout: 120_000 }, async () => {
  const dir = tree();
  try {
    const a = path.join(dir, 'a');
    assert.equal((await cached(dir, ['cat', a])).stdout.toString(), 'first version\n');
    assert.equal((await cached(dir, ['cat', a])).stdout.toString(), 'first version\n'); // now cached

    // Read (from the cache), overwrite, append and read back within one run.
    const r = await cached(dir, ['sh', '-c', `cat ${a} >/dev/null && printf 'written remotely\\n' > ${a} && echo more >> ${a} && cat ${a}`]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'written remotely\nmore\n');
    assert.equal(readFileSync(a, 'utf8'), 'written remotely\nmore\n', 'the local file holds what the remote wrote');

    const next = await cached(dir, ['cat', a]);
    assert.equal(next.stdout.toString(), 'written remotely\nmore\n');
    // A file created and removed remotely in a cached directory.
    const made = await cached(dir, ['sh', '-c', `echo hi > ${dir}/made && rm ${dir}/b && ls ${dir}`]);
    assert.equal(made.stdout.toString(), 'a\nmade\n');
    assert.equal(readFileSync(path.join(dir, 'made'), 'utf8'), 'hi\n');
    assert.equal((await cached(dir, ['ls', dir])).stdout.toString(), 'a\nmade\n');
    assert.equal(await waitBoxClean(), '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('concurrent sessions sharing one cache keep every byte and the store intact', { timeout: 180_000 }, async () => {
  const dir = tree();
  try {
    const shared = randomBytes(2 * 1024 * 1024 + 5);
    writeFileSync(path.join(dir, 'shared'), shared);
    const round = () =>
      Promise.all(
        [0, 1, 2, 3].map((i) =>
          cached(dir, ['sh', '-c', `sha256sum < ${dir}/shared | cut -c1-64; head -c ${500_000 + i} /dev/urandom > ${dir}/own-${i}; sha256sum < ${dir}/own-${i} | cut -c1-64`]),
        ),
      );
    for (let n = 0; n < 2; n++) {
      (await round()).forEach((r, i) => {
        assert.equal(r.status, 0, r.stderr);
        const [sharedSum, ownSum] = r.stdout.toString().trim().split('\n');
        assert.equal(sharedSum, sha(shared));
        const own = readFileSync(path.join(dir, `own-${i}`));
        assert.equal(own.length, 500_000 + i);
        assert.equal(ownSum, sha(own), 'the remote read back what it wrote');
      });
    }
    // The store: an index that loads (the next run uses it), root-only permissions, no
    // temporary files or locks left behind.
    const again = await cached(dir, ['sh', '-c', `sha256sum < ${dir}/shared | cut -c1-64; cat ${dir}/own-3 | sha256sum | cut -c1-64`]);
    assert.equal(again.stdout.toString(), `${sha(shared)}\n${sha(readFileSync(path.join(dir, 'own-3')))}\n`);
    assert.ok((agentCounters(again)['persist.loaded'] ?? 0) > 0, again.stderr);
    const store = boxShell(
      'cd /var/cache/outrun/fs && stat -c "%a %n" . */ && find . -name "*.tmp-*" -o -name index.lock | sed "s/^/leftover: /"; ' +
        'find . -type f ! -perm 600 | sed "s/^/not 600: /"; true',
    );
    assert.doesNotMatch(store, /leftover:|not 600:/, store);
    for (const line of store.trim().split('\n')) assert.match(line, /^700 /, store);
    assert.equal(await waitBoxClean(), '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--no-cache keeps nothing and still runs; a bad --cache-paths is a usage error', { timeout: 60_000 }, async () => {
  const r = await withOptions(['--stats', '--no-cache'], ['cat', '/etc/hostname']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.toString(), readFileSync('/etc/hostname', 'utf8'));
  assert.equal(agentCounters(r)['persist.loaded'], undefined, r.stderr);
  const bad = await withOptions(['--cache-paths', 'usr'], ['true']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^outrun: .*absolute path/m);
});

test('a program with ~200 libraries runs cold (empty store) and warm, byte for byte as locally', { timeout: 180_000 }, async () => {
  // Cold, every library is fetched whole into the store, far past the agent's 128 MiB of
  // read-ahead windows: files opened from memory must stay readable after their window is
  // dropped (a short read there is SIGBUS for a program that mmaps its libraries).
  const dir = tree();
  try {
    const local = spawnSync('ffmpeg', ['-hide_banner', '-version'], { encoding: 'utf8' });
    assert.equal(local.status, 0);
    for (const run of ['cold', 'warm']) {
      const r = await cached(dir, ['ffmpeg', '-hide_banner', '-version']);
      assert.equal(r.status, 0, `${run}: ${r.stderr}`);
      assert.equal(r.stdout.toString(), local.stdout, run);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
