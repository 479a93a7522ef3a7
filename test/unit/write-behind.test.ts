// Write-behind on its own, against a fake local side: runs are gathered and sent in order,
// errors come back at flush, the pending bytes stay bounded, and draining waits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WriteBehind } from '../../src/fs/write-behind';

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
