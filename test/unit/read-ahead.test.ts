import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FIRST_WINDOW, FileReadAhead, MAX_WINDOW, WindowBudget } from '../../src/fs/agent/read-ahead';

/** A file in memory behind a fetch function that records every call. */
function fakeFile(size: number) {
  const content = randomBytes(size);
  const calls: { offset: number; size: number }[] = [];
  const fetch = async (offset: number, n: number) => {
    calls.push({ offset, size: n });
    await new Promise((r) => setTimeout(r, 2));
    return content.subarray(offset, Math.min(offset + n, content.length));
  };
  return { content, calls, fetch };
}

const K128 = 128 * 1024;

test('a sequential read of 8 MiB in 128 KiB pieces takes few, growing fetches and returns every byte', async () => {
  const f = fakeFile(8 * 1024 * 1024);
  const ra = new FileReadAhead(f.fetch, new WindowBudget());
  const parts: Buffer[] = [];
  for (let off = 0; off < f.content.length; off += K128) parts.push(await ra.read(off, K128));
  assert.ok(Buffer.concat(parts).equals(f.content));
  assert.ok(f.calls.length <= 8, `${f.calls.length} fetches`);
  assert.equal(f.calls[0]!.size, FIRST_WINDOW);
  assert.ok(f.calls.every((c) => c.size <= MAX_WINDOW));
  // No byte fetched twice.
  const sorted = [...f.calls].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i]!.offset >= sorted[i - 1]!.offset + sorted[i - 1]!.size);
});

test('reads past the end return what is there, then nothing', async () => {
  const f = fakeFile(300_000);
  const ra = new FileReadAhead(f.fetch, new WindowBudget());
  const a = await ra.read(0, K128);
  const b = await ra.read(K128, K128);
  const c = await ra.read(2 * K128, K128);
  const d = await ra.read(3 * K128, K128);
  assert.ok(Buffer.concat([a, b, c]).equals(f.content));
  assert.equal(d.length, 0);
});

test('concurrent reads inside a window being fetched wait for it instead of fetching again', async () => {
  const f = fakeFile(100_000); // smaller than a window: nothing further to read ahead
  const ra = new FileReadAhead(f.fetch, new WindowBudget());
  const [x, y] = await Promise.all([ra.read(0, 4096), ra.read(4096, 4096)]);
  assert.ok(x.equals(f.content.subarray(0, 4096)));
  assert.ok(y.equals(f.content.subarray(4096, 8192)));
  assert.equal(f.calls.length, 1);
});

test('a seeded whole file is served without any fetch, end of file included', async () => {
  const f = fakeFile(1000);
  const ra = new FileReadAhead(f.fetch, new WindowBudget());
  ra.seed(f.content, true);
  assert.ok((await ra.read(0, 4096)).equals(f.content));
  assert.ok((await ra.read(500, 10)).equals(f.content.subarray(500, 510)));
  assert.equal((await ra.read(4096, 4096)).length, 0);
  assert.equal(f.calls.length, 0);
});

test('clear() drops what was read ahead: the next read fetches fresh bytes', async () => {
  const f = fakeFile(100_000);
  const ra = new FileReadAhead(f.fetch, new WindowBudget());
  ra.seed(f.content, true);
  f.content.fill(7); // the file changes (through a write on the mount)
  ra.clear();
  const got = await ra.read(0, 10);
  assert.deepEqual([...got], Array(10).fill(7));
  assert.equal(f.calls.length, 1);
});

test('a failed fetch is an error for its readers and is not kept as known bytes', async () => {
  let fail = true;
  const ra = new FileReadAhead(async (o, n) => {
    if (fail) throw new Error('link down');
    return Buffer.alloc(n, 1);
  }, new WindowBudget());
  await assert.rejects(ra.read(0, 10), /link down/);
  fail = false;
  assert.equal((await ra.read(0, 10)).length, 10);
});

test('the budget bounds bytes held across files', async () => {
  const budget = new WindowBudget(1024 * 1024);
  const files = Array.from({ length: 8 }, () => fakeFile(2 * 1024 * 1024));
  for (const f of files) {
    const ra = new FileReadAhead(f.fetch, budget);
    await ra.read(0, K128);
    await ra.read(K128, K128);
  }
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(budget.bytesHeld <= 1024 * 1024 + MAX_WINDOW, `${budget.bytesHeld} bytes held`);
});

test('reads that jump around fetch only what they ask; reading on from a jump grows windows again', async () => {
  const f = fakeFile(8 * 1024 * 1024);
  const ra = new FileReadAhead(f.fetch, new WindowBudget());
  const pages = [37, 5, 1900, 640, 1200, 3, 77].map((p) => p * 4096);
  for (const at of pages) assert.ok((await ra.read(at, 4096)).equals(f.content.subarray(at, at + 4096)));
  const fetched = f.calls.reduce((n, c) => n + c.size, 0);
  assert.equal(fetched, pages.length * 4096, `${fetched} bytes fetched for ${pages.length} pages`);
  // Sequential from a jump: windows again, every byte right.
  f.calls.length = 0;
  const from = 3 * 1024 * 1024 + 4096;
  const parts: Buffer[] = [];
  for (let off = from; off < from + 2 * 1024 * 1024; off += K128) parts.push(await ra.read(off, K128));
  assert.ok(Buffer.concat(parts).equals(f.content.subarray(from, from + 2 * 1024 * 1024)));
  assert.ok(f.calls.length <= 8, `${f.calls.length} fetches for 2 MiB read on`);
});
