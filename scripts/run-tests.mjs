#!/usr/bin/env node
// Runs the compiled tests with node's test runner: unit tests first, then the end-to-end
// suite against the project's test boxes, the three native ones (box, box2 and box3, for the host
// pool's tests) and the arm64 one, and the Slurm test cluster (all started here and always
// stopped again).
//   node scripts/run-tests.mjs [unit|e2e|all]   (unit includes the fuzz run)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const which = process.argv[2] ?? 'all';

function testFiles(dir) {
  const abs = path.join(ROOT, dir);
  if (!fs.existsSync(abs)) return [];
  return fs
    .readdirSync(abs, { recursive: true })
    .filter((f) => String(f).endsWith('.test.js'))
    .map((f) => path.join(abs, String(f)))
    .sort();
}

function nodeTest(files, extra = []) {
  if (files.length === 0) return 0;
  const r = spawnSync(process.execPath, ['--test', ...extra, ...files], { cwd: ROOT, stdio: 'inherit' });
  return r.status ?? 1;
}

function testbox(verb, ...options) {
  return spawnSync('bash', [path.join(ROOT, 'scripts/testbox'), verb, ...options], { cwd: ROOT, stdio: 'inherit' }).status ?? 1;
}

function testcluster(verb) {
  return spawnSync('bash', [path.join(ROOT, 'scripts/testcluster'), verb], { cwd: ROOT, stdio: 'inherit' }).status ?? 1;
}

/** The fuzz sandbox, the helper's test and the test box need root: say so, and count it as a failure. */
const isRoot = process.getuid?.() === 0;
function needsRoot(what) {
  if (isRoot) return true;
  console.error(`run-tests: ${what} needs root (mount namespaces, FUSE, network namespaces): not run, counted as failed; run npm test as root`);
  return false;
}

let failed = 0;
if (which === 'unit' || which === 'all') {
  failed |= nodeTest(testFiles('dist/test/unit'));
  // The fuzz run of the file server (bounded in time, sandboxed: see test/fuzz).
  if (needsRoot('the fuzz run of the file server')) failed |= nodeTest(testFiles('dist/test/fuzz'));
  else failed = 1;
  const helperTest = path.join(ROOT, 'test/helper/helper.test.sh');
  if (fs.existsSync(helperTest)) {
    if (needsRoot("outrun-helper's own test")) failed |= spawnSync('bash', [helperTest], { cwd: ROOT, stdio: 'inherit' }).status ?? 1;
    else failed = 1;
  }
}
if (which === 'e2e' || which === 'all') {
  const files = testFiles('dist/test/e2e');
  if (!needsRoot('the end-to-end suite')) {
    failed = 1;
  } else {
    try {
      if (testbox('up', '--boxes', '3') !== 0) {
        console.error('run-tests: the test boxes did not start; end-to-end tests not run');
        failed = 1;
      } else if (testbox('up', '--arch', 'arm64') !== 0) {
        console.error('run-tests: the arm64 test box did not start; end-to-end tests not run');
        failed = 1;
      } else if (testcluster('up') !== 0) {
        console.error('run-tests: the Slurm test cluster did not start; end-to-end tests not run');
        failed = 1;
      } else {
        // One file at a time: they share the boxes.
        failed |= nodeTest(files, ['--test-concurrency=1']);
      }
    } finally {
      testcluster('down');
      testbox('down', '--arch', 'arm64');
      testbox('down'); // every native box: box, box2, box3
    }
  }
}
process.exit(failed ? 1 : 0);
