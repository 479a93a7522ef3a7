// What an ELF file needs from the dynamic loader: its interpreter (PT_INTERP) and the
// DT_NEEDED/DT_RPATH/DT_RUNPATH/DT_SONAME entries of its dynamic section. The local file
// can be anything (a truncated download, a crafted file), so every offset, size and count
// read from it is checked before use, every read is bounded, and a problem becomes an
// error value, never an exception or a loop.
import { promises as fsp } from 'node:fs';
import { readFully } from '../shared/read-fully';

/** Reads up to `length` bytes at `offset`; fewer bytes back means end of file. */
export type ReadAt = (offset: number, length: number) => Buffer | Promise<Buffer>;

export type ElfErrorCode = 'NOT_ELF' | 'TRUNCATED' | 'MALFORMED' | 'UNSUPPORTED' | 'READ_FAILED';

export interface ElfError {
  code: ElfErrorCode;
  message: string;
  cause?: unknown;
}

export interface ElfDeps {
  elfClass: 32 | 64;
  endian: 'little' | 'big';
  /** e_machine (EM_X86_64 = 62, EM_386 = 3, EM_AARCH64 = 183, ...). */
  machine: number;
  /** e_type (ET_EXEC = 2, ET_DYN = 3). */
  type: number;
  osabi: number;
  /** e_flags: carries the ABI variant on some machines (ARM hard float). */
  flags: number;
  /** PT_INTERP: the program interpreter path, null for libraries and static programs. */
  interp: string | null;
  /** DT_NEEDED names, in file order (the loader's order). */
  needed: string[];
  /** Raw DT_RPATH / DT_RUNPATH strings (colon separated, tokens not expanded). */
  rpath: string | null;
  runpath: string | null;
  soname: string | null;
  /** DT_FLAGS_1 (DF_1_NODEFLIB = 0x800 turns off the cache and default directories). */
  flags1: number;
  /** Whether the file has a PT_DYNAMIC segment at all. */
  dynamic: boolean;
}

export type ElfResult = { ok: true; value: ElfDeps } | { ok: false; error: ElfError };

export const EM_386 = 3;
export const EM_ARM = 40;
export const EM_X86_64 = 62;
export const EM_AARCH64 = 183;
export const DF_1_NODEFLIB = 0x800;

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_SONAME = 14;
const DT_RPATH = 15;
const DT_RUNPATH = 29;
const DT_FLAGS_1 = 0x6ffffffb;

/** Bounds that no real file comes near; they keep hostile input cheap. */
export const ELF_LIMITS = {
  /** The loader's own limit on path strings (PATH_MAX). */
  maxString: 4096,
  /** Dynamic entries read before giving up (libLLVM has under 100). */
  maxDynamicEntries: 16384,
  maxNeeded: 1024,
  /** Program headers: e_phnum is 16 bits; PN_XNUM (0xffff) is refused. */
  maxProgramHeaders: 0xfffe,
} as const;

/** No single read asked of `read` exceeds this (the largest legal program header table is 3.6 MB). */
const MAX_SINGLE_READ = 4 * 1024 * 1024;

/** Bytes read from the start of a file in one go: headers of nearly all programs fit. */
export const ELF_HEAD_BYTES = 64 * 1024;

class ElfFailure {
  constructor(readonly error: ElfError) {}
}

function fail(code: ElfErrorCode, message: string, cause?: unknown): never {
  throw new ElfFailure({ code, message, cause });
}

/** Reads through `read`, answering from a cached head so headers cost one read. */
class BoundedReader {
  private head: Buffer | null = null;

  constructor(
    private readonly read: ReadAt,
    private readonly headBytes: number,
  ) {}

  async bytes(offset: number, length: number, what: string): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      fail('MALFORMED', `${what}: offset ${offset} or size ${length} out of range`);
    }
    if (length > MAX_SINGLE_READ) fail('MALFORMED', `${what}: ${length} bytes is more than any real header needs`);
    if (length === 0) return Buffer.alloc(0);
    if (this.head === null) this.head = await this.call(0, this.headBytes);
    if (offset + length <= this.head.length) return this.head.subarray(offset, offset + length);
    if (this.head.length < this.headBytes && offset + length > this.head.length) {
      // The head read hit end of file: nothing lies beyond it.
      fail('TRUNCATED', `${what} at ${offset}+${length} lies past the end of the file (${this.head.length} bytes)`);
    }
    const got = await this.call(offset, length);
    if (got.length < length) fail('TRUNCATED', `${what} at ${offset}+${length}: only ${got.length} bytes in the file`);
    return got.subarray(0, length);
  }

  /** A NUL-terminated string at `offset`, at most `max` bytes, not past `limit` (exclusive). */
  async cString(offset: number, limit: number, what: string): Promise<string> {
    const max = ELF_LIMITS.maxString;
    let chunk = 256;
    for (;;) {
      const want = Math.min(chunk, limit - offset);
      if (want <= 0) fail('MALFORMED', `${what} at ${offset} has no terminating NUL`);
      const buf = await this.bytesUpTo(offset, want, what);
      const nul = buf.indexOf(0);
      if (nul >= 0) return buf.subarray(0, nul).toString('utf8');
      if (buf.length < want || want === limit - offset) fail('MALFORMED', `${what} at ${offset} has no terminating NUL`);
      if (chunk >= max) fail('MALFORMED', `${what} at ${offset} is longer than ${max} bytes`);
      chunk = Math.min(chunk * 4, max);
    }
  }

  /** Like bytes() but a short read at end of file is returned, not an error. */
  private async bytesUpTo(offset: number, length: number, what: string): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || offset < 0) fail('MALFORMED', `${what}: offset ${offset} out of range`);
    if (this.head === null) this.head = await this.call(0, this.headBytes);
    if (offset + length <= this.head.length) return this.head.subarray(offset, offset + length);
    if (this.head.length < this.headBytes) return this.head.subarray(Math.min(offset, this.head.length));
    const got = await this.call(offset, length);
    return got.subarray(0, length);
  }

  private async call(offset: number, length: number): Promise<Buffer> {
    let got: Buffer;
    try {
      got = await this.read(offset, length);
    } catch (err) {
      fail('READ_FAILED', `read of ${length} bytes at ${offset} failed: ${(err as Error)?.message ?? String(err)}`, err);
    }
    if (!Buffer.isBuffer(got)) fail('READ_FAILED', `read at ${offset} returned no buffer`);
    return got.length > length ? got.subarray(0, length) : got;
  }
}

/** Fixed-endian field access over one buffer. */
class Fields {
  constructor(
    private readonly buf: Buffer,
    private readonly little: boolean,
  ) {}
  u16(at: number): number {
    return this.little ? this.buf.readUInt16LE(at) : this.buf.readUInt16BE(at);
  }
  u32(at: number): number {
    return this.little ? this.buf.readUInt32LE(at) : this.buf.readUInt32BE(at);
  }
  u64(at: number): bigint {
    return this.little ? this.buf.readBigUInt64LE(at) : this.buf.readBigUInt64BE(at);
  }
  /** A word of the file's class, as a bigint (addresses may exceed 2^53). */
  word(at: number, is64: boolean): bigint {
    return is64 ? this.u64(at) : BigInt(this.u32(at));
  }
}

function toOffset(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('MALFORMED', `${what} ${v} is beyond any file size`);
  return Number(v);
}

interface Segment {
  type: number;
  offset: bigint;
  vaddr: bigint;
  filesz: bigint;
}

/** Parse the ELF header, program headers and dynamic section read through `read`. */
export async function parseElfDeps(read: ReadAt, headBytes = ELF_HEAD_BYTES): Promise<ElfResult> {
  try {
    return { ok: true, value: await parse(new BoundedReader(read, Math.max(64, headBytes))) };
  } catch (err) {
    if (err instanceof ElfFailure) return { ok: false, error: err.error };
    // Anything else is a bug here; still an error value, since the input is untrusted.
    return { ok: false, error: { code: 'MALFORMED', message: `unexpected parse failure: ${String(err)}`, cause: err } };
  }
}

/** Parse from bytes already in memory (the head of a file, or all of it). */
export function parseElfDepsFromBuffer(buf: Buffer): Promise<ElfResult> {
  return parseElfDeps((offset, length) => buf.subarray(Math.min(offset, buf.length), Math.min(offset + length, buf.length)), buf.length + 1);
}

/** A ReadAt over an open file: positional reads, short only at end of file. */
export function fileHandleReader(fh: fsp.FileHandle): ReadAt {
  return (offset, length) => readFully(fh, Buffer.alloc(length), offset);
}

/** Parse a local file with bounded positional reads (a 64 KiB head first). */
export async function readElfDepsFromFile(path: string): Promise<ElfResult> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, 'r');
  } catch (err) {
    return { ok: false, error: { code: 'READ_FAILED', message: `cannot open ${path}: ${(err as Error).message}`, cause: err } };
  }
  try {
    return await parseElfDeps(fileHandleReader(fh));
  } finally {
    await fh.close().catch(() => undefined);
  }
}

async function parse(r: BoundedReader): Promise<ElfDeps> {
  const ident = await r.bytes(0, 16, 'ELF identification').catch((err: unknown) => {
    if (err instanceof ElfFailure && err.error.code === 'TRUNCATED') fail('NOT_ELF', 'shorter than an ELF identification');
    throw err;
  });
  if (ident[0] !== 0x7f || ident[1] !== 0x45 || ident[2] !== 0x4c || ident[3] !== 0x46) fail('NOT_ELF', 'no ELF magic');
  const cls = ident[4];
  if (cls !== 1 && cls !== 2) fail('UNSUPPORTED', `ELF class ${cls} is neither 32 nor 64 bit`);
  const data = ident[5];
  if (data !== 1 && data !== 2) fail('UNSUPPORTED', `ELF data encoding ${data} is neither little nor big endian`);
  if (ident[6] !== 1) fail('UNSUPPORTED', `ELF version ${ident[6]}`);
  const is64 = cls === 2;
  const little = data === 1;

  const ehsize = is64 ? 64 : 52;
  const eh = new Fields(await r.bytes(0, ehsize, 'ELF header'), little);
  const type = eh.u16(16);
  const machine = eh.u16(18);
  const phoff = toOffset(eh.word(is64 ? 32 : 28, is64), 'e_phoff');
  const flags = eh.u32(is64 ? 48 : 36);
  const phentsize = eh.u16(is64 ? 54 : 42);
  const phnum = eh.u16(is64 ? 56 : 44);
  const phdrSize = is64 ? 56 : 32;

  const base = {
    elfClass: (is64 ? 64 : 32) as 32 | 64,
    endian: (little ? 'little' : 'big') as 'little' | 'big',
    machine,
    type,
    osabi: ident[7]!,
    flags,
  };
  const empty: ElfDeps = { ...base, interp: null, needed: [], rpath: null, runpath: null, soname: null, flags1: 0, dynamic: false };
  if (phnum === 0) return empty;
  if (phnum > ELF_LIMITS.maxProgramHeaders) fail('UNSUPPORTED', `e_phnum ${phnum} (extended numbering) is not supported`);
  // The loader insists on the exact size; so do we, which also bounds the table to 3.6 MB.
  if (phentsize !== phdrSize) fail('MALFORMED', `e_phentsize ${phentsize} is not the size of a program header (${phdrSize})`);
  if (phoff === 0) fail('MALFORMED', 'program headers announced at offset 0');

  const table = await r.bytes(phoff, phentsize * phnum, 'program header table');
  const ph = new Fields(table, little);
  const segments: Segment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = i * phentsize;
    const type = ph.u32(at);
    // Field order differs: ELF64 puts p_flags second, ELF32 puts it after the sizes.
    const offset = is64 ? ph.u64(at + 8) : BigInt(ph.u32(at + 4));
    const vaddr = is64 ? ph.u64(at + 16) : BigInt(ph.u32(at + 8));
    const filesz = is64 ? ph.u64(at + 32) : BigInt(ph.u32(at + 16));
    segments.push({ type, offset, vaddr, filesz });
  }

  let interp: string | null = null;
  const interpSeg = segments.find((s) => s.type === PT_INTERP);
  if (interpSeg) {
    const off = toOffset(interpSeg.offset, 'PT_INTERP offset');
    const size = toOffset(interpSeg.filesz, 'PT_INTERP size');
    if (size === 0 || size > ELF_LIMITS.maxString) fail('MALFORMED', `PT_INTERP size ${size} out of range`);
    const raw = await r.bytes(off, size, 'PT_INTERP');
    const nul = raw.indexOf(0);
    interp = (nul >= 0 ? raw.subarray(0, nul) : raw).toString('utf8');
    if (interp === '') fail('MALFORMED', 'PT_INTERP is empty');
  }

  const dynSeg = segments.find((s) => s.type === PT_DYNAMIC);
  if (!dynSeg) return { ...empty, interp };

  const entSize = is64 ? 16 : 8;
  const dynOff = toOffset(dynSeg.offset, 'PT_DYNAMIC offset');
  const dynSize = toOffset(dynSeg.filesz, 'PT_DYNAMIC size');
  const count = Math.min(Math.floor(dynSize / entSize), ELF_LIMITS.maxDynamicEntries);
  if (count === 0) fail('MALFORMED', 'PT_DYNAMIC holds no entries');
  const dynBuf = await r.bytes(dynOff, count * entSize, 'dynamic section');
  const dyn = new Fields(dynBuf, little);

  const neededOffs: bigint[] = [];
  let strtab: bigint | null = null;
  let strsz: bigint | null = null;
  let soname: bigint | null = null;
  let rpath: bigint | null = null;
  let runpath: bigint | null = null;
  let flags1 = 0;
  let terminated = false;
  for (let i = 0; i < count; i++) {
    const tag = dyn.word(i * entSize, is64);
    const val = dyn.word(i * entSize + entSize / 2, is64);
    if (tag === BigInt(DT_NULL)) {
      terminated = true;
      break;
    }
    switch (tag > 0xffffffffn ? -1 : Number(tag)) {
      case DT_NEEDED:
        if (neededOffs.length >= ELF_LIMITS.maxNeeded) fail('MALFORMED', `more than ${ELF_LIMITS.maxNeeded} DT_NEEDED entries`);
        neededOffs.push(val);
        break;
      case DT_STRTAB:
        strtab = val;
        break;
      case DT_STRSZ:
        strsz = val;
        break;
      case DT_SONAME:
        soname = val;
        break;
      case DT_RPATH:
        rpath = val;
        break;
      case DT_RUNPATH:
        runpath = val;
        break;
      case DT_FLAGS_1:
        flags1 = Number(val & 0xffffffffn);
        break;
    }
  }
  if (!terminated && count === ELF_LIMITS.maxDynamicEntries) fail('MALFORMED', `dynamic section longer than ${count} entries`);

  const wantsStrings = neededOffs.length > 0 || soname !== null || rpath !== null || runpath !== null;
  if (!wantsStrings) return { ...empty, interp, flags1, dynamic: true };
  if (strtab === null) fail('MALFORMED', 'dynamic section has names but no DT_STRTAB');

  // DT_STRTAB is an address: find the file bytes the loader maps there.
  const load = segments.find((s) => s.type === PT_LOAD && s.vaddr <= strtab! && strtab! < s.vaddr + s.filesz);
  if (!load) fail('MALFORMED', `DT_STRTAB address 0x${strtab.toString(16)} lies in no PT_LOAD segment's file bytes`);
  const tabOff = toOffset(load.offset + (strtab - load.vaddr), 'string table offset');
  const segEnd = toOffset(load.offset + load.filesz, 'PT_LOAD end');
  let tabEnd = segEnd;
  if (strsz !== null && strsz > 0n) tabEnd = Math.min(segEnd, toOffset(BigInt(tabOff) + strsz, 'string table end'));

  const str = async (v: bigint, what: string): Promise<string> => {
    const rel = toOffset(v, `${what} string offset`);
    if (tabOff + rel >= tabEnd) fail('MALFORMED', `${what} string offset ${rel} lies outside the string table`);
    return r.cString(tabOff + rel, tabEnd, what);
  };

  const needed: string[] = [];
  for (const v of neededOffs) needed.push(await str(v, 'DT_NEEDED'));
  return {
    ...base,
    interp,
    needed,
    rpath: rpath === null ? null : await str(rpath, 'DT_RPATH'),
    runpath: runpath === null ? null : await str(runpath, 'DT_RUNPATH'),
    soname: soname === null ? null : await str(soname, 'DT_SONAME'),
    flags1,
    dynamic: true,
  };
}
