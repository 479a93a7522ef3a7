// Layouts of the FUSE kernel protocol's structs (little-endian, as every Linux FUSE host
// the runtime targets): decoding requests, encoding replies and notifications. Names are
// bytes here: a file name need not be UTF-8.
import type { pb } from '../../wire/schema';
import { IN_HEADER_SIZE, OUT_HEADER_SIZE } from './protocol';

export type Attr = pb.Attr.$Properties;

export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
}

export function decodeInHeader(b: Buffer): InHeader {
  return {
    len: b.readUInt32LE(0),
    opcode: b.readUInt32LE(4),
    unique: b.readBigUInt64LE(8),
    nodeid: Number(b.readBigUInt64LE(16)),
    uid: b.readUInt32LE(24),
    gid: b.readUInt32LE(28),
    pid: b.readUInt32LE(32),
  };
}

/** The NUL-terminated names that end a request, as bytes. */
export function names(b: Buffer, count: number): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    const end = b.indexOf(0, at);
    const stop = end < 0 ? b.length : end;
    out.push(b.subarray(at, stop));
    at = stop + 1;
  }
  return out;
}

export const u64 = (b: Buffer, off: number) => Number(b.readBigUInt64LE(off));

export function outHeader(len: number, error: number, unique: bigint): Buffer {
  const h = Buffer.allocUnsafe(OUT_HEADER_SIZE);
  h.writeUInt32LE(len, 0);
  h.writeInt32LE(error, 4);
  h.writeBigUInt64LE(unique, 8);
  return h;
}

export const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 40 + ATTR_SIZE;
export const ATTR_OUT_SIZE = 16 + ATTR_SIZE;
export const OPEN_OUT_SIZE = 16;

const TWO32 = 2 ** 32;

/**
 * A 64-bit field from a JS number, as two 32-bit halves (BigInt conversions cost more than
 * the rest of a READDIRPLUS entry). Negative values (times before 1970) in two's complement.
 */
function write64(b: Buffer, off: number, n: number): void {
  if (n >= 0) {
    b.writeUInt32LE(n % TWO32, off);
    b.writeUInt32LE(Math.floor(n / TWO32) >>> 0, off + 4);
  } else {
    b.writeBigInt64LE(BigInt(Math.trunc(n)), off);
  }
}

const num = (v: number | Long | null | undefined) => Number(v ?? 0);
type Long = { toNumber(): number };

/** struct fuse_attr. Times are signed (before 1970 works); rdev is the kernel's new encoding. */
export function writeAttr(b: Buffer, off: number, a: Attr): void {
  write64(b, off, num(a.ino));
  write64(b, off + 8, num(a.size));
  write64(b, off + 16, num(a.blocks));
  write64(b, off + 24, Math.trunc(num(a.atime?.sec)));
  write64(b, off + 32, Math.trunc(num(a.mtime?.sec)));
  write64(b, off + 40, Math.trunc(num(a.ctime?.sec)));
  b.writeUInt32LE(num(a.atime?.nsec) >>> 0, off + 48);
  b.writeUInt32LE(num(a.mtime?.nsec) >>> 0, off + 52);
  b.writeUInt32LE(num(a.ctime?.nsec) >>> 0, off + 56);
  b.writeUInt32LE((a.mode ?? 0) >>> 0, off + 60);
  b.writeUInt32LE((a.nlink ?? 1) >>> 0, off + 64);
  b.writeUInt32LE((a.uid ?? 0) >>> 0, off + 68);
  b.writeUInt32LE((a.gid ?? 0) >>> 0, off + 72);
  b.writeUInt32LE(num(a.rdev) % TWO32, off + 76);
  b.writeUInt32LE((a.blksize ?? 4096) >>> 0, off + 80);
  b.writeUInt32LE(0, off + 84); // flags
}

/** Seconds as the (u64 seconds, u32 nanoseconds) pair of a validity field. */
function writeValid(b: Buffer, secOff: number, nsecOff: number, seconds: number): void {
  const whole = Math.floor(seconds);
  write64(b, secOff, whole);
  b.writeUInt32LE(Math.round((seconds - whole) * 1e9), nsecOff);
}

/** struct fuse_entry_out: nodeid 0 with an entry timeout is a cached "no such name". */
export function writeEntryOut(b: Buffer, off: number, nodeid: number, attr: Attr | undefined, entryS: number, attrS: number): void {
  write64(b, off, nodeid);
  write64(b, off + 8, 0); // generation: node ids are never reused
  writeValid(b, off + 16, off + 32, entryS);
  writeValid(b, off + 24, off + 36, attrS);
  if (attr) writeAttr(b, off + 40, attr);
  else b.fill(0, off + 40, off + 40 + ATTR_SIZE);
}

export function entryOut(nodeid: number, attr: Attr | undefined, entryS: number, attrS: number): Buffer {
  const b = Buffer.allocUnsafe(ENTRY_OUT_SIZE);
  writeEntryOut(b, 0, nodeid, attr, entryS, attrS);
  return b;
}

export function attrOut(attr: Attr, attrS: number): Buffer {
  const b = Buffer.allocUnsafe(ATTR_OUT_SIZE);
  writeValid(b, 0, 8, attrS);
  b.writeUInt32LE(0, 12);
  writeAttr(b, 16, attr);
  return b;
}

/** The fuse_attr_out that repeats what an entry (a fuse_entry_out at `off` in `entry`) said. */
export function attrOutOfEntry(entry: Buffer, off = 0): Buffer {
  const b = Buffer.allocUnsafe(ATTR_OUT_SIZE);
  entry.copy(b, 0, off + 24, off + 32); // attr_valid
  entry.copy(b, 8, off + 36, off + 40); // attr_valid_nsec
  b.writeUInt32LE(0, 12);
  entry.copy(b, 16, off + 40, off + 40 + ATTR_SIZE);
  return b;
}

export function openOut(fh: number, openFlags: number, backingId = 0): Buffer {
  const b = Buffer.allocUnsafe(OPEN_OUT_SIZE);
  b.writeBigUInt64LE(BigInt(fh), 0);
  b.writeUInt32LE(openFlags >>> 0, 8);
  b.writeInt32LE(backingId, 12);
  return b;
}

export function writeOut(size: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(size >>> 0, 0);
  return b;
}

export interface Statfs {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

export function statfsOut(s: Statfs): Buffer {
  const b = Buffer.alloc(80);
  b.writeBigUInt64LE(BigInt(s.blocks), 0);
  b.writeBigUInt64LE(BigInt(s.bfree), 8);
  b.writeBigUInt64LE(BigInt(s.bavail), 16);
  b.writeBigUInt64LE(BigInt(s.files), 24);
  b.writeBigUInt64LE(BigInt(s.ffree), 32);
  b.writeUInt32LE(s.bsize >>> 0, 40);
  b.writeUInt32LE(s.namelen >>> 0, 44);
  b.writeUInt32LE(s.frsize >>> 0, 48);
  return b;
}

const align8 = (n: number) => (n + 7) & ~7;
const DIRENT_HEADER = 24;

export interface DirEntryOut {
  name: Buffer;
  /** st_ino as readdir shows it (d_ino). */
  ino: number;
  mode: number;
  /** The offset of the entry after this one. */
  nextOffset: number;
  /** READDIRPLUS: the node the kernel then knows (0: none, no lookup counted). */
  nodeid?: number;
  attr?: Attr;
}

/** Bytes one entry takes in a READDIR (plus: READDIRPLUS) reply. */
export function direntSize(nameLen: number, plus: boolean): number {
  return (plus ? ENTRY_OUT_SIZE : 0) + align8(DIRENT_HEADER + nameLen);
}

export function writeDirent(b: Buffer, off: number, e: DirEntryOut, plus: boolean, entryS: number, attrS: number): number {
  const start = off;
  if (plus) {
    writeEntryOut(b, off, e.nodeid ?? 0, e.attr, e.nodeid ? entryS : 0, e.nodeid ? attrS : 0);
    off += ENTRY_OUT_SIZE;
  }
  write64(b, off, e.ino || 1); // d_ino 0 hides an entry from readdir(3)
  write64(b, off + 8, e.nextOffset);
  b.writeUInt32LE(e.name.length, off + 16);
  b.writeUInt32LE(((e.mode >>> 12) & 0o17) >>> 0, off + 20);
  e.name.copy(b, off + DIRENT_HEADER);
  const end = off + align8(DIRENT_HEADER + e.name.length);
  b.fill(0, off + DIRENT_HEADER + e.name.length, end);
  return end - start;
}

export function notifyInvalInode(nodeid: number, offset = 0, length = 0): Buffer {
  const b = Buffer.alloc(OUT_HEADER_SIZE + 24);
  outHeader(b.length, 2, 0n).copy(b, 0);
  b.writeBigUInt64LE(BigInt(nodeid), 16);
  b.writeBigInt64LE(BigInt(offset), 24);
  b.writeBigInt64LE(BigInt(length), 32);
  return b;
}

export function notifyInvalEntry(parent: number, name: Buffer): Buffer {
  const b = Buffer.alloc(OUT_HEADER_SIZE + 16 + name.length + 1);
  outHeader(b.length, 3, 0n).copy(b, 0);
  b.writeBigUInt64LE(BigInt(parent), 16);
  b.writeUInt32LE(name.length, 24);
  b.writeUInt32LE(0, 28);
  name.copy(b, 32);
  return b;
}

export const body = (req: Buffer) => req.subarray(IN_HEADER_SIZE);
