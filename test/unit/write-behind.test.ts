// Write-behind on its own, against a fake local side: runs are gathered and sent in order,
// errors come back at flush, the pending bytes stay bounded, and draining waits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WriteBehind } from '../../src/fs/agent/write-behind';

interface Sent {
  handle: number;
  offset: number;
  data: Buffer;
}

function fakeSide(opts: { failAt?: number; delayMs?: number } = {}) {
  const sent: Sent[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const wb = new WriteBehind(
    async (handle, _path, offset, data) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, opts.delayMs ?? 1));
      inFlight--;
      sent.push({ handle, offset, data });
      return opts.failAt !== undefined && offset === opts.failAt ? 28 /* ENOSPC */ : 0;
    },
    1024 * 1024,
    256 * 1024,
  );
  return { wb, sent, maxInFlight: () => maxInFlight };
}

test('consecutive writes are gathered into runs and a file comes out whole and in order', async () => {
  const { wb, sent, maxInFlight } = fakeSide();
  const file = Buffer.alloc(1_000_000);
  for (let i = 0; i < file.length; i++) file[i] = (i * 7) & 0xff;
  for (let at = 0; at < file.length; at += 4096) assert.equal(await wb.write(1, '/f', at, file.subarray(at, at + 4096)), 0);
  assert.equal(await wb.flush(1), 0);
  assert.ok(sent.length <= 5, `${sent.length} runs for 1 MB in 4 KiB writes`);
  const out = Buffer.alloc(file.length);
  for (const s of sent) s.data.copy(out, s.offset);
  assert.ok(out.equals(file));
  assert.ok(maxInFlight() > 1 && maxInFlight() <= 4, `disjoint runs travel together, at most four (${maxInFlight()})`);
  assert.equal(wb.bytesPending, 0);
});

test('a write that is not contiguous starts a new run; overlapping writes keep their order, across handles too', async () => {
  const { wb, sent } = fakeSide({ delayMs: 5 });
  await wb.write(1, '/f', 0, Buffer.from('aaaa'));
  await wb.write(1, '/f', 2, Buffer.from('bb'));
  await wb.flush(1);
  // Two handles of one file: the later overlapping run lands last even though both travel.
  const slow = new WriteBehind(
    async (handle, _p, offset, data) => {
      await new Promise((r) => setTimeout(r, handle === 7 ? 30 : 1));
      sent.push({ handle, offset, data });
      return 0;
    },
    1 << 20,
    4,
  );
  await slow.write(7, '/g', 0, Buffer.from('1111'));
  await slow.write(8, '/g', 0, Buffer.from('22'));
  await Promise.all([slow.flush(7), slow.flush(8)]);
  const g = sent.filter((x) => x.handle >= 7).map((x) => x.handle);
  assert.deepEqual(g, [7, 8], 'the overlapping run of handle 8 waited for handle 7');
  const out = Buffer.alloc(4);
  for (const s of sent.filter((x) => x.handle === 1)) s.data.copy(out, s.offset);
  assert.equal(out.toString(), 'aabb');
  assert.equal(sent.filter((x) => x.handle === 1).length, 2);
});

test('a write over another handle\'s run still gathering sends that run first (model fuzz: an append lost to a later pwrite)', async () => {
  const { wb, sent } = fakeSide();
  await wb.write(1, '/f', 0, Buffer.from('aaaa')); // gathering, not yet sent
  await wb.write(2, '/f', 0, Buffer.from('bb')); // later, over it
  await wb.flush(2); // closed first: its run must still land after handle 1's
  await wb.flush(1);
  const out = Buffer.alloc(4);
  for (const s of sent) s.data.copy(out, s.offset);
  assert.equal(out.toString(), 'bbaa');
  // Disjoint runs of two handles do not push each other out.
  await wb.write(1, '/f', 0, Buffer.from('cc'));
  await wb.write(2, '/f', 2, Buffer.from('dd'));
  await wb.write(1, '/f', 2, Buffer.from('ee')); // over handle 2's: that one goes first
  await wb.flush(1);
  await wb.flush(2);
  for (const s of sent) s.data.copy(out, s.offset);
  assert.equal(out.toString(), 'ccee');
});

test('an error met behind the command comes back at flush (close), once', async () => {
  const { wb } = fakeSide({ failAt: 0 });
  assert.equal(await wb.write(3, '/f', 0, Buffer.from('x')), 0, 'accepted at once');
  assert.equal(await wb.flush(3), 28);
  assert.equal(await wb.flush(3), 0);
});

test('a transport failure is EIO; the pending bytes stay under the bound', async () => {
  const wb = new WriteBehind(async () => {
    throw new Error('link down');
  }, 64 * 1024, 16 * 1024);
  for (let i = 0; i < 20; i++) {
    await wb.write(1, '/g', i * 8192, Buffer.alloc(8192));
    assert.ok(wb.bytesPending <= 64 * 1024);
  }
  assert.equal(await wb.release(1), 5 /* EIO */);
});

test('busy and drain: a path has writes on the way until they are on the local side', async () => {
  const { wb } = fakeSide({ delayMs: 20 });
  await wb.write(1, '/d/f', 0, Buffer.from('hello'));
  assert.ok(wb.busy('/d/f'));
  await wb.drainDir('/d');
  assert.ok(!wb.busy('/d/f'));
  await wb.write(1, '/d/f', 5, Buffer.from('!'));
  wb.renamed('/d', '/e');
  await wb.drainTree('/e');
  assert.ok(!wb.busy('/e/f') && !wb.busy('/d/f'));
  assert.equal(wb.bytesPending, 0);
});

/** A fake local file that applies positional writes and appends as a kernel would. */
function fakeFile(opts: { appendErrno?: number } = {}) {
  let file = Buffer.alloc(0);
  const batches: number[] = [];
  const put = (offset: number, data: Buffer) => {
    if (file.length < offset + data.length) file = Buffer.concat([file, Buffer.alloc(offset + data.length - file.length)]);
    data.copy(file, offset);
  };
  const wb = new WriteBehind(
    async (_handle, _path, offset, data) => {
      await new Promise((r) => setTimeout(r, 2));
      put(offset, data);
      return 0;
    },
    1024 * 1024,
    64 * 1024,
    async (writes) => {
      batches.push(writes.length);
      await new Promise((r) => setTimeout(r, 2));
      for (const w of writes) put(file.length, w.data);
      return writes.map(() => opts.appendErrno ?? 0);
    },
  );
  return { wb, batches, content: () => file };
}

test('appends of several handles land in the order they were taken, many to a request', async () => {
  const { wb, batches, content } = fakeFile();
  const expected: Buffer[] = [];
  for (let i = 0; i < 400; i++) {
    const line = Buffer.from(`h${i % 4} line ${i}\n`);
    expected.push(line);
    assert.equal(await wb.append(1 + (i % 4), '/log', line), 0);
  }
  for (const h of [1, 2, 3, 4]) assert.equal(await wb.flush(h), 0);
  assert.equal(content().toString(), Buffer.concat(expected).toString());
  assert.ok(batches.length < 50, `${batches.length} requests for 400 appends`);
  assert.equal(wb.bytesPending, 0);
});

test('a positional write between appends waits for the appends before it and before the ones after it (no deadlock)', async () => {
  const { wb, content } = fakeFile();
  assert.equal(await wb.append(1, '/f', Buffer.from('aaaa')), 0);
  assert.equal(await wb.append(1, '/f', Buffer.from('bbbb')), 0);
  // Overwrites what the two appends wrote: it must come after them.
  assert.equal(await wb.write(2, '/f', 2, Buffer.from('XXXX')), 0);
  await wb.flush(2);
  assert.equal(await wb.append(3, '/f', Buffer.from('cc')), 0);
  const flushed = await Promise.race([
    Promise.all([1, 2, 3].map((h) => wb.flush(h))),
    new Promise((r) => setTimeout(() => r('stuck'), 2000)),
  ]);
  assert.notEqual(flushed, 'stuck');
  assert.equal(content().toString(), 'aaXXXXbbcc');
});

test('an append after a positional write of another handle lands after it (the file grew behind its back)', async () => {
  const { wb, content } = fakeFile();
  assert.equal(await wb.append(1, '/f', Buffer.from('abc')), 0);
  await wb.flush(1);
  assert.equal(await wb.write(2, '/f', 0, Buffer.from('0123456789')), 0); // still gathering
  assert.equal(await wb.append(1, '/f', Buffer.from('!')), 0);
  await Promise.all([wb.flush(1), wb.flush(2)]);
  assert.equal(content().toString(), '0123456789!');
});

test("an append that failed is reported at the handle's flush, once", async () => {
  const { wb } = fakeFile({ appendErrno: 28 });
  assert.equal(await wb.append(1, '/f', Buffer.from('x')), 0);
  assert.equal(await wb.flush(1), 28);
  assert.equal(await wb.flush(1), 0);
});

test('fsync sends the last gathered writes with the sync in one request; with runs in flight it only flushes', async () => {
  const sent: { offset: number; sync?: string }[] = [];
  const wb = new WriteBehind(async (_h, _p, offset, _data, sync) => {
    await new Promise((r) => setTimeout(r, 5));
    sent.push({ offset, sync });
    return 0;
  });
  assert.equal(await wb.write(1, '/db', 0, Buffer.alloc(4096, 1)), 0);
  assert.deepEqual(await wb.flushAndSync(1, true), { errno: 0, synced: true });
  assert.deepEqual(sent, [{ offset: 0, sync: 'datasync' }]);
  // Nothing gathered: the caller syncs on its own.
  assert.deepEqual(await wb.flushAndSync(1, false), { errno: 0, synced: false });
  assert.equal(sent.length, 1);
});

test('appends landing are reported as runs landing are (the caches drop what a reply crossing them said)', async () => {
  const { wb } = fakeFile();
  const landed: string[] = [];
  wb.onLanded((p) => landed.push(p));
  assert.equal(await wb.append(1, '/log', Buffer.from('a\n')), 0);
  assert.equal(await wb.write(2, '/other', 0, Buffer.from('b')), 0);
  await Promise.all([wb.flush(1), wb.flush(2)]);
  assert.deepEqual(landed.sort(), ['/log', '/other']);
});

test("a run's attributes are told only when they are the file's after every write: the last run, nothing else travelling", async () => {
  // The fake local side answers each run with the file's size once applied, after a delay
  // chosen per offset, so replies can come back in another order than they were applied.
  const delays = new Map<number, number>();
  let size = 0;
  const wb = new WriteBehind(
    async (_h, _p, offset, data) => {
      size = Math.max(size, offset + data.length);
      const attr = { size };
      await new Promise((r) => setTimeout(r, delays.get(offset) ?? 1));
      return { errno: 0, attr };
    },
    1 << 20,
    1024,
  );
  const told: [string, unknown][] = [];
  wb.onAttrKnown((p, a) => told.push([p, a]));

  await wb.write(1, '/one', 0, Buffer.alloc(100));
  await wb.flush(1);
  assert.deepEqual(told, [['/one', { size: 100 }]], 'one run: its reply is the file');

  // Two disjoint runs in flight at once, the earlier one answering last: neither is told
  // (the earlier one's attributes may predate the later one's write).
  told.length = 0;
  size = 0;
  delays.set(0, 40);
  await wb.write(2, '/two', 0, Buffer.alloc(1024)); // a whole run: dispatched at once
  await wb.write(2, '/two', 1024, Buffer.alloc(1024));
  await wb.flush(2);
  assert.equal(told.length, 0, 'replies out of order: nothing told');

  // A run that fails tells nothing either.
  told.length = 0;
  const failing = new WriteBehind(async () => ({ errno: 28, attr: { size: 1 } }), 1 << 20, 1024);
  failing.onAttrKnown((p, a) => told.push([p, a]));
  await failing.write(3, '/three', 0, Buffer.alloc(10));
  assert.equal(await failing.flush(3), 28);
  assert.equal(told.length, 0);
});
