// POSIX conformance of the mounted filesystem: cases.c (compiled here with the local gcc)
// runs once locally and once through outrun, each time in a fresh directory on the local
// disk, and every case must print the same lines both ways. Cases where outrun is known to
// differ are not skipped: their test checks the exact current difference, so it fails both
// if things get worse and once the difference is fixed (then move the case to SAME).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ROOT, onBox, waitBoxClean } from '../harness';

/** Cases whose output must be identical locally and through outrun. */
const SAME = [
  'rename_over_existing',
  'hard_links',
  'symlinks',
  'fifo',
  'sparse_and_large',
  'o_append',
  'o_excl',
  'o_trunc',
  'truncate',
  'unlink_open_file',
  'mmap',
  'utimens_seconds',
  'chmod_chown_as_non_root',
  'rename_across_dirs',
  'deep_trees',
  'names',
  'locks',
  'unix_socket',
  'utimens_only_mtime',
  'utimens_before_1970',
  'rmdir_holding_unlinked_open_file',
  'utimens_nanoseconds',
  'rename_flags',
  'xattrs',
  'owner_after_setuid',
  'names_not_utf8',
];

interface KnownDifference {
  why: string;
  /** [line printed locally, line printed through outrun]; every pair must apply. */
  lines: [string, string][] | ((remoteDir: string) => [string, string][]);
}

/** Differences that cannot be fixed in outrun itself; each is listed in the README's Limits. */
const KNOWN: Record<string, KnownDifference> = {
  deep_paths_over_path_max: {
    why: 'the local side reaches files by their path from /, which may not pass 4095 bytes',
    lines: (remoteDir) => {
      // Levels of "/level-directory" (16 bytes) below DIR/deep_paths_over_path_max/t that
      // keep the whole path under 4096 bytes; locally the limit is on the relative path.
      const depth = Math.ceil((4096 - `${remoteDir}/deep_paths_over_path_max/t`.length) / 16) - 1;
      return [
        ['mkdir at depth 255 -> ENAMETOOLONG', `mkdir at depth ${depth} -> ENAMETOOLONG`],
        ['descended 255 levels, created 256 files', `descended ${depth} levels, created ${depth + 1} files`],
        ['mkdir at the bottom -> ok', 'mkdir at the bottom -> ENAMETOOLONG'],
      ];
    },
  },
};

/** "== name" blocks of the driver's output, by case name. */
function byCase(output: string): Map<string, string[]> {
  const cases = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of output.split('\n')) {
    const m = /^== (\S+)$/.exec(line);
    if (m) cases.set(m[1], (current = []));
    else if (current && line !== '') current.push(line);
  }
  return cases;
}

describe('POSIX conformance: each case locally and through outrun', { timeout: 10 * 60_000 }, () => {
  let work: string;
  let local: Map<string, string[]>;
  let remote: Map<string, string[]>;
  let remoteDir: string;

  before(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'outrun-conformance-'));
    chmodSync(work, 0o755);
    const driver = path.join(work, 'cases');
    const cc = spawnSync('gcc', ['-O1', '-Wall', '-Wno-unused-result', '-o', driver, path.join(ROOT, 'test/e2e/conformance/cases.c')], {
      encoding: 'utf8',
    });
    assert.equal(cc.status, 0, cc.stderr);
    // Two directories with names of the same length: one case prints how deep paths reach.
    const localDir = mkdtempSync(path.join(work, 'local-'));
    remoteDir = mkdtempSync(path.join(work, 'remot-'));
    const l = spawnSync(driver, [localDir], { encoding: 'utf8', maxBuffer: 64 << 20 });
    assert.equal(l.status, 0, l.stderr);
    assert.equal(l.stderr, '');
    const r = await onBox([driver, remoteDir], { timeoutMs: 8 * 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    local = byCase(l.stdout);
    remote = byCase(r.stdout.toString('utf8'));
  });

  // rm(1), not fs.rmSync: one case leaves a tree deeper than node's rimraf can walk.
  after(() => spawnSync('rm', ['-rf', work]));

  test('every case of the driver is checked, and ran both ways', () => {
    assert.deepEqual([...local.keys()].sort(), [...SAME, ...Object.keys(KNOWN)].sort());
    assert.deepEqual([...remote.keys()].sort(), [...local.keys()].sort());
  });

  for (const name of SAME) {
    test(`${name}: same as local`, () => {
      const want = local.get(name) ?? [];
      assert.ok(want.length > 0, 'the case printed something locally');
      assert.ok(!want.some((l) => l.startsWith('case ended')), `the case crashed locally: ${want.join('\n')}`);
      assert.deepEqual(remote.get(name), want);
    });
  }

  for (const [name, known] of Object.entries(KNOWN)) {
    test(`known difference: ${name} (${known.why})`, () => {
      const want = [...(local.get(name) ?? [])];
      const pairs = typeof known.lines === 'function' ? known.lines(remoteDir) : known.lines;
      for (const [localLine, remoteLine] of pairs) {
        const i = want.indexOf(localLine);
        assert.ok(i >= 0, `locally the case no longer prints: ${localLine}\n${want.join('\n')}`);
        want[i] = remoteLine;
      }
      assert.deepEqual(remote.get(name), want, 'through outrun: exactly the documented difference, nothing more (fixed? move it to SAME)');
    });
  }

  test('the box is clean afterwards', async () => {
    assert.equal(await waitBoxClean(), '');
  });
});
