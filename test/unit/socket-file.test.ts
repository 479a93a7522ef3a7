// makeSocketFile: a socket file at the path, with the mode asked for, and nothing else left.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { makeSocketFile } from '../../src/fs/local/socket-file';

test('creates a socket file with the given mode and leaves no temporary name', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'outrun-sockfile-'));
  try {
    await makeSocketFile(Buffer.from(path.join(dir, 'sock')), 0o751);
    const st = statSync(path.join(dir, 'sock'));
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o7777, 0o751);
    assert.deepEqual(readdirSync(dir), ['sock']);
    await assert.rejects(makeSocketFile(Buffer.from(path.join(dir, 'sock')), 0o755), { code: 'EEXIST' });
    assert.deepEqual(readdirSync(dir), ['sock']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a directory too deep for a socket address: ENAMETOOLONG', async () => {
  await assert.rejects(makeSocketFile(Buffer.from(`/${'d'.repeat(100)}/sock`), 0o755), { code: 'ENAMETOOLONG' });
});
