import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { cacheTagOf, discoverCacheTags, pycacheCandidates } from '../../src/fs/local/pycache';

test('candidates: plain, opt-1, opt-2 for each tag, in __pycache__ next to the source', () => {
  assert.deepEqual(pycacheCandidates('/usr/lib/python3.11/os.py', ['cpython-311', 'pypy39']), [
    '/usr/lib/python3.11/__pycache__/os.cpython-311.pyc',
    '/usr/lib/python3.11/__pycache__/os.cpython-311.opt-1.pyc',
    '/usr/lib/python3.11/__pycache__/os.cpython-311.opt-2.pyc',
    '/usr/lib/python3.11/__pycache__/os.pypy39.pyc',
    '/usr/lib/python3.11/__pycache__/os.pypy39.opt-1.pyc',
    '/usr/lib/python3.11/__pycache__/os.pypy39.opt-2.pyc',
  ]);
  // The stem keeps inner dots, as Python's rpartition does.
  assert.equal(pycacheCandidates('/a/b.c.py', ['cpython-311'])[0], '/a/__pycache__/b.c.cpython-311.pyc');
  assert.equal(pycacheCandidates('/a/x.py', ['cpython-311'], { pycachePrefix: '/tmp/pyc' })[0], '/tmp/pyc/a/x.cpython-311.pyc');
  assert.deepEqual(pycacheCandidates('/a/x.pyc', ['cpython-311']), []);
  assert.deepEqual(pycacheCandidates('/a/x.py', ['../evil', 'a/b', '']), []);
});

test('candidates match what the local Python computes (oracle run only in this test)', (t) => {
  if (!existsSync('/usr/bin/python3')) {
    t.skip('no python3 here');
    return;
  }
  const src = '/usr/lib/python3/dist-packages/some.module.py';
  const script = [
    'import importlib.util, sys',
    'p = sys.argv[1]',
    "print(sys.implementation.cache_tag)",
    "for o in ('', 1, 2): print(importlib.util.cache_from_source(p, optimization=o))",
  ].join('\n');
  const [tag, ...paths] = execFileSync('/usr/bin/python3', ['-I', '-c', script, src], { encoding: 'utf8' }).trim().split('\n');
  assert.deepEqual(pycacheCandidates(src, [tag!]), paths);
});

test('tags are discovered from the __pycache__ entries of that module only', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'outrun-pycache-'));
  try {
    const cache = path.join(dir, '__pycache__');
    mkdirSync(cache);
    for (const f of [
      'mod.cpython-311.pyc',
      'mod.cpython-311.opt-1.pyc',
      'mod.cpython-312.opt-2.pyc',
      'mod.pypy39.pyc',
      'module.cpython-310.pyc', // another module sharing the prefix
      'other.cpython-39.pyc',
      'mod.cpython-311.pyc.tmp',
      'mod..pyc',
      'mod.a.b.pyc',
    ]) {
      writeFileSync(path.join(cache, f), '');
    }
    const py = path.join(dir, 'mod.py');
    assert.deepEqual(await discoverCacheTags(py), ['cpython-311', 'cpython-312', 'pypy39']);
    assert.deepEqual(await discoverCacheTags(path.join(dir, 'absent', 'x.py')), []);
    assert.deepEqual(await discoverCacheTags(path.join(dir, 'mod.txt')), []);
    assert.equal(cacheTagOf('mod.cpython-311.opt-1.pyc', 'mod'), 'cpython-311');
    assert.equal(cacheTagOf('mod.cpython-311.opt-3.pyc', 'mod'), null);
    const all = pycacheCandidates(py, await discoverCacheTags(py));
    assert.ok(all.includes(path.join(cache, 'mod.cpython-312.opt-2.pyc')));
    assert.equal(all.length, 9);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
