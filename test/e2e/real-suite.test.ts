// A real project's own test suite through outrun: CPython's test modules for files, paths,
// temp files, stat, locks and mmap (Debian's libpython3.11-testsuite), run once locally and
// once through outrun, each in a fresh directory, outcome by outcome. Chosen because it is
// a large, independent, file-heavy suite that CI gets from apt, runs in about a minute
// through outrun, and needs only the local python3, which the box does not have.
// Every outcome must match, except the known differences listed (each also in the README).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ROOT, onBox, waitBoxClean } from './harness';

const PYTHON = '/usr/bin/python3';
const RUNNER = path.join(ROOT, 'test/e2e/fixtures/py-suite.py');
const MODULES = [
  'test.test_tempfile',
  'test.test_glob',
  'test.test_posixpath',
  'test.test_genericpath',
  'test.test_fileio',
  'test.test_stat',
  'test.test_fcntl',
  'test.test_mmap',
  'test.test_fnmatch',
  'test.test_pathlib',
  // They import only where os_helper.can_xattr() can probe extended attributes.
  'test.test_os',
  'test.test_shutil',
];

/** test id -> [outcome locally, outcome through outrun], and why. */
const KNOWN: Record<string, [string, string, string]> = {};
function outcomes(stdout: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const r = /^(test\.\S+) (ok|FAIL|ERROR|skipped|expected-failure|unexpected-success)$/.exec(line);
    if (r) m.set(r[1], r[2]);
  }
  return m;
}

describe("CPython's own file tests, locally and through outrun", { timeout: 10 * 60_000 }, () => {
  let work: string;
  let local: Map<string, string>;
  let remote: Map<string, string>;

  before(async () => {
    assert.ok(existsSync('/usr/lib/python3.11/test/test_tempfile.py'), 'libpython3.11-testsuite is installed (.ci/run)');
    work = mkdtempSync(path.join(tmpdir(), 'outrun-pysuite-'));
    chmodSync(work, 0o755);
    const localDir = mkdtempSync(path.join(work, 'l-'));
    const remoteDir = mkdtempSync(path.join(work, 'r-'));
    const l = spawnSync(PYTHON, [RUNNER, ...MODULES], { cwd: localDir, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 300_000 });
    assert.equal(l.status, 0, l.stderr);
    local = outcomes(l.stdout);
    const r = await onBox([PYTHON, RUNNER, ...MODULES], { cwd: remoteDir, timeoutMs: 8 * 60_000 });
    assert.equal(r.status, 0, r.stderr);
    remote = outcomes(r.stdout.toString('utf8'));
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  test('the suite ran: hundreds of tests, almost all passing locally', () => {
    assert.ok(local.size > 500, `only ${local.size} outcomes`);
    assert.ok([...local.values()].filter((o) => o === 'ok').length > 400);
  });

  test('every test has the same outcome through outrun as locally, but the known differences', () => {
    assert.deepEqual([...remote.keys()].sort(), [...local.keys()].sort(), 'the same tests ran');
    const differ: string[] = [];
    for (const [id, want] of local) {
      const got = remote.get(id);
      const known = KNOWN[id];
      if (known) continue;
      if (got !== want) differ.push(`${id}: local ${want}, through outrun ${got}`);
    }
    assert.deepEqual(differ, []);
  });

  for (const [id, [localOutcome, remoteOutcome, why]] of Object.entries(KNOWN)) {
    test(`known difference: ${id} (${why})`, () => {
      assert.equal(local.get(id), localOutcome);
      const got = remote.get(id);
      if (remoteOutcome === '?') assert.ok(got === 'FAIL' || got === 'ERROR', `through outrun: ${got}`);
      else assert.equal(got, remoteOutcome);
    });
  }

  test('the box is clean afterwards', async () => {
    assert.equal(await waitBoxClean(), '');
  });
});
