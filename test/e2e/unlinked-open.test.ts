// End to end: a file unlinked while open (Python's TemporaryFile, compilers' temporaries)
// keeps working through its fd, and what is read through the fd after writes is what was
// written: the handle follows the file to the hidden name libfuse gives it, so its
// read-ahead is dropped by those writes (a stale window once cut reads short: 8192 of
// 11000 bytes, and CPython's zipfile tests on temporary files failed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { onBox, waitBoxClean } from './harness';

const SCRIPT = `
import os, sys, tempfile
with tempfile.TemporaryFile(dir=sys.argv[1]) as f:
    f.write(b'a' * 1000)
    f.seek(0)
    first = f.read(500)
    f.seek(0, 2)
    f.write(b'b' * 10000)
    f.seek(0)
    whole = f.read()
    f.seek(600)
    f.write(b'c' * 100)
    f.seek(590)
    middle = f.read(120)
print(len(first), len(whole), whole == b'a' * 1000 + b'b' * 10000, middle == b'a' * 10 + b'c' * 100 + b'a' * 10)
print(sorted(os.listdir(sys.argv[1])))
`;

test('an unlinked open file reads back what was written through it', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'outrun-unlinked-'));
  try {
    const script = path.join(dir, 't.py');
    writeFileSync(script, SCRIPT);
    const work = path.join(dir, 'work');
    spawnSync('mkdir', [work]);
    const local = spawnSync('python3', [script, work], { encoding: 'utf8' });
    assert.equal(local.status, 0, local.stderr);
    assert.equal(local.stdout, '500 11000 True True\n[]\n');
    const r = await onBox(['python3', script, work]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.toString(), local.stdout, 'the same as locally, and no .fuse_hidden file is left in the listing');
    assert.equal(await waitBoxClean(), '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
