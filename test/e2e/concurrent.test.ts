// End to end: several sessions against one box at once stay apart: each writes its own
// file and reads a shared one, and every byte is right.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { onBox, waitBoxClean } from './harness';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('four concurrent sessions write and read correctly', { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'outrun-concurrent-'));
  try {
    const shared = randomBytes(3 * 1024 * 1024 + 17);
    writeFileSync(path.join(dir, 'shared'), shared);
    const runs = [0, 1, 2, 3].map((i) =>
      onBox(['sh', '-c', `sha256sum < shared | cut -d" " -f1; head -c ${1_000_000 + i} /dev/urandom > own-${i}; sha256sum < own-${i} | cut -d" " -f1`], {
        cwd: dir,
      }),
    );
    const results = await Promise.all(runs);
    results.forEach((r, i) => {
      assert.equal(r.status, 0, r.stderr);
      const [sharedSum, ownSum] = r.stdout.toString().trim().split('\n');
      assert.equal(sharedSum, sha(shared));
      const own = readFileSync(path.join(dir, `own-${i}`));
      assert.equal(own.length, 1_000_000 + i);
      assert.equal(ownSum, sha(own));
    });
    assert.equal(await waitBoxClean(), '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
