// What says "this file is still the one we cached": a 64-bit hash of the attributes that any
// change to a file's content, name binding or metadata alters. ctime is in it, and the kernel
// sets ctime (to the nanosecond) on every write, truncate, chmod, chown, link and rename, and
// nobody can set it back; ino and size catch a file replaced by another. atime is left out
// (reading must not invalidate). Both sides compute it the same way: the agent from the wire
// Attr it cached, the client from lstat at revalidation, tens of thousands at a time, so it
// is a fast non-cryptographic mix of the numbers, not a digest of a string.
import type { BigIntStats } from 'node:fs';
import type { pb } from '../../wire/schema';

export const FINGERPRINT_BYTES = 8;
const MISSING = Buffer.from('missing\0');

/** Mixes 32-bit words into two independent 32-bit lanes (murmur3's finalizer per word). */
function mix(words: number[]): Buffer {
  let h1 = 0x9e3779b9;
  let h2 = 0x85ebca6b;
  for (const w of words) {
    let k = Math.imul(w >>> 0, 0xcc9e2d51);
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593);
    h1 = Math.imul(((h1 ^ k) << 13) | ((h1 ^ k) >>> 19), 5) + 0xe6546b64;
    let j = Math.imul((w >>> 0) ^ 0x5bd1e995, 0x27d4eb2f);
    j = Math.imul((j << 13) | (j >>> 19), 0x165667b1);
    h2 = Math.imul(((h2 ^ j) << 17) | ((h2 ^ j) >>> 15), 9) + 0x7feb352d;
  }
  for (const f of [0x85ebca6b, 0xc2b2ae35]) {
    h1 = Math.imul(h1 ^ (h1 >>> 16), f);
    h2 = Math.imul(h2 ^ (h2 >>> 13), f);
  }
  const out = Buffer.allocUnsafe(FINGERPRINT_BYTES);
  out.writeUInt32BE((h1 ^ (h1 >>> 16)) >>> 0, 0);
  out.writeUInt32BE((h2 ^ (h2 >>> 16)) >>> 0, 4);
  return out;
}

/** An integer of up to 64 bits (two's complement if negative) as two 32-bit words. */
const split = (n: number | bigint): [number, number] => {
  const b = BigInt(n);
  return [Number((b >> 32n) & 0xffffffffn), Number(b & 0xffffffffn)];
};

function fromNumbers(ino: number | bigint, mode: number, nlink: number, uid: number, gid: number, rdev: number | bigint, size: number | bigint, mtime: [number | bigint, number], ctime: [number | bigint, number]): Buffer {
  return mix([...split(ino), mode, nlink, uid, gid, ...split(rdev), ...split(size), ...split(mtime[0]), mtime[1], ...split(ctime[0]), ctime[1]]);
}

/** The fingerprint of a path's attributes, or of its absence (`undefined`). */
export function fingerprint(attr: pb.Attr.$Properties | null | undefined): Buffer {
  if (!attr) return MISSING;
  const ts = (t: pb.Timespec.$Properties | null | undefined): [number, number] => [Number(t?.sec ?? 0), t?.nsec ?? 0];
  return fromNumbers(attr.ino ?? 0, attr.mode ?? 0, attr.nlink ?? 0, attr.uid ?? 0, attr.gid ?? 0, attr.rdev ?? 0, attr.size ?? 0, ts(attr.mtime), ts(attr.ctime));
}

/** The same, straight from lstat (no wire Attr in between): what revalidation computes. */
export function fingerprintOfStats(st: BigIntStats): Buffer {
  const NS = 1_000_000_000n;
  // As attrFromStats: a time before 1970 has a negative second and a non-negative nsec.
  const ts = (ns: bigint): [bigint, number] => {
    const sec = ns / NS;
    const nsec = ns % NS;
    return nsec < 0n ? [sec - 1n, Number(nsec + NS)] : [sec, Number(nsec)];
  };
  return fromNumbers(st.ino, Number(st.mode), Number(st.nlink), Number(st.uid), Number(st.gid), st.rdev, st.size, ts(st.mtimeNs), ts(st.ctimeNs));
}

/** Whether two attribute sets describe the same version of a file. */
export const sameVersion = (a: pb.Attr.$Properties | null | undefined, b: pb.Attr.$Properties | null | undefined) =>
  fingerprint(a).equals(fingerprint(b));
