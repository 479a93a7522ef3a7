// The FUSE structs as the kernel reads them: 64-bit fields past 2^32, times before 1970,
// nanoseconds, and an entry's attributes repeated as a fuse_attr_out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attrOut, attrOutOfEntry, entryOut, notifyInvalEntry } from '../../src/remote/fuse/wire-types';

const attr = {
  ino: 2 ** 40 + 5,
  size: 5 * 2 ** 32 + 7,
  blocks: 2 ** 33,
  atime: { sec: -1000, nsec: 5 },
  mtime: { sec: 1_234_567_890, nsec: 987_654_321 },
  ctime: { sec: 2 ** 34, nsec: 0 },
  mode: 0o100644,
  nlink: 3,
  uid: 65534,
  gid: 4294967294,
  rdev: 0x0801,
  blksize: 4096,
};

test('fuse_attr: every field where the kernel reads it', () => {
  const b = attrOut(attr, 10.5);
  assert.equal(b.readBigUInt64LE(0), 10n, 'attr_valid seconds');
  assert.equal(b.readUInt32LE(8), 500_000_000, 'attr_valid_nsec');
  const a = 16;
  assert.equal(b.readBigUInt64LE(a), BigInt(attr.ino));
  assert.equal(b.readBigUInt64LE(a + 8), BigInt(attr.size));
  assert.equal(b.readBigUInt64LE(a + 16), BigInt(attr.blocks));
  assert.equal(b.readBigInt64LE(a + 24), -1000n, 'a time before 1970');
  assert.equal(b.readBigInt64LE(a + 32), 1_234_567_890n);
  assert.equal(b.readBigInt64LE(a + 40), BigInt(2 ** 34));
  assert.deepEqual([b.readUInt32LE(a + 48), b.readUInt32LE(a + 52), b.readUInt32LE(a + 56)], [5, 987_654_321, 0]);
  assert.deepEqual(
    [b.readUInt32LE(a + 60), b.readUInt32LE(a + 64), b.readUInt32LE(a + 68), b.readUInt32LE(a + 72), b.readUInt32LE(a + 76), b.readUInt32LE(a + 80)],
    [attr.mode, 3, 65534, 4294967294, 0x0801, 4096],
  );
});

test('an entry and its attributes repeated from it are the same bytes', () => {
  const e = entryOut(2 ** 35 + 1, attr, 10, 10.5);
  assert.equal(e.readBigUInt64LE(0), BigInt(2 ** 35 + 1), 'node id');
  assert.deepEqual(attrOutOfEntry(e), attrOut(attr, 10.5));
  const neg = entryOut(0, undefined, 3, 0);
  assert.equal(neg.readBigUInt64LE(0), 0n, 'a negative entry');
  assert.equal(neg.readBigUInt64LE(16), 3n, 'kept for the negative timeout');
});

test('inval_entry carries the name as bytes, NUL-terminated', () => {
  const m = notifyInvalEntry(7, Buffer.from([0x66, 0xff, 0x80]));
  assert.equal(m.readUInt32LE(0), m.length);
  assert.equal(m.readInt32LE(4), 3, 'FUSE_NOTIFY_INVAL_ENTRY');
  assert.equal(m.readBigUInt64LE(16), 7n);
  assert.equal(m.readUInt32LE(24), 3);
  assert.deepEqual([...m.subarray(32)], [0x66, 0xff, 0x80, 0]);
});
