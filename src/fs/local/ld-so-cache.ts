// /etc/ld.so.cache as glibc's dynamic loader reads it: soname -> library path, one entry
// per ABI (an x86-64 machine lists the 64-bit, x32 and i386 copies of a library side by
// side, told apart by flags). Two layouts exist: "glibc-ld.so.cache1.1" (current) and the
// old "ld.so-1.7.0" one, which older ldconfigs wrote with a new-format section after it.
// The file is checked like any untrusted input; the parse is kept per (dev, ino, size, mtime).
import { promises as fsp } from 'node:fs';
import { EM_386, EM_AARCH64, EM_ARM, EM_X86_64 } from './elf';

// Entry flags: low byte the library type, high byte the ABI it was built for.
export const FLAG_ELF = 0x0001;
export const FLAG_ELF_LIBC6 = 0x0003;
export const FLAG_SPARC_LIB64 = 0x0100;
export const FLAG_X8664_LIB64 = 0x0300;
export const FLAG_S390_LIB64 = 0x0400;
export const FLAG_POWERPC_LIB64 = 0x0500;
export const FLAG_X8664_LIBX32 = 0x0800;
export const FLAG_ARM_LIBHF = 0x0900;
export const FLAG_AARCH64_LIB64 = 0x0a00;
export const FLAG_ARM_LIBSF = 0x0b00;
export const FLAG_RISCV_FLOAT_ABI_SOFT = 0x0f00;
export const FLAG_RISCV_FLOAT_ABI_DOUBLE = 0x1000;

/** Entry hwcap bit marking a glibc-hwcaps subdirectory entry (its low 32 bits index the names). */
export const HWCAP_EXTENSION = 1n << 62n;

const MAGIC_OLD = Buffer.from('ld.so-1.7.0', 'latin1');
const MAGIC_NEW = Buffer.from('glibc-ld.so.cache1.1', 'latin1');
const OLD_HEADER = 16;
const OLD_ENTRY = 12;
const NEW_HEADER = 48;
const NEW_ENTRY = 24;
const EXTENSION_MAGIC = 0xeaa42174;
const EXT_TAG_GENERATOR = 0;
const EXT_TAG_GLIBC_HWCAPS = 1;

/** Far above any real cache (a full desktop's is under 200 KiB). */
export const MAX_CACHE_BYTES = 64 * 1024 * 1024;
const MAX_STRING = 4096;

export interface LdCacheEntry {
  soname: string;
  path: string;
  flags: number;
  hwcap: bigint;
  /** For glibc-hwcaps entries, the subdirectory name (e.g. "x86-64-v3"); else null. */
  hwcapsSubdir: string | null;
}

export interface LdSoCache {
  format: 'new' | 'old' | 'old+new';
  /** Entries in file order (the order the loader prefers among equal sonames). */
  entries: LdCacheEntry[];
  bySoname: Map<string, LdCacheEntry[]>;
  generator: string | null;
}

export type LdCacheErrorCode = 'NOT_CACHE' | 'TRUNCATED' | 'MALFORMED' | 'READ_FAILED';
export interface LdCacheError {
  code: LdCacheErrorCode;
  message: string;
  cause?: unknown;
}
export type LdCacheResult = { ok: true; value: LdSoCache } | { ok: false; error: LdCacheError };

class CacheFailure {
  constructor(readonly error: LdCacheError) {}
}
function fail(code: LdCacheErrorCode, message: string): never {
  throw new CacheFailure({ code, message });
}

function cString(buf: Buffer, at: number, what: string): string {
  if (!Number.isSafeInteger(at) || at < 0 || at >= buf.length) fail('MALFORMED', `${what} string offset ${at} outside the file`);
  // Look for the NUL only as far as a string may go: no scan of the whole file per entry.
  const len = buf.subarray(at, at + MAX_STRING + 1).indexOf(0);
  if (len < 0) fail('MALFORMED', `${what} string at ${at} is unterminated or too long`);
  return buf.toString('utf8', at, at + len);
}

/** Parse the bytes of an ld.so.cache file. */
export function parseLdSoCache(buf: Buffer): LdCacheResult {
  try {
    return { ok: true, value: parse(buf) };
  } catch (err) {
    if (err instanceof CacheFailure) return { ok: false, error: err.error };
    return { ok: false, error: { code: 'MALFORMED', message: `unexpected parse failure: ${String(err)}`, cause: err } };
  }
}

function startsWith(buf: Buffer, at: number, magic: Buffer): boolean {
  return buf.length >= at + magic.length && buf.subarray(at, at + magic.length).equals(magic);
}

function parse(buf: Buffer): LdSoCache {
  if (buf.length > MAX_CACHE_BYTES) fail('MALFORMED', `larger than ${MAX_CACHE_BYTES} bytes`);
  if (startsWith(buf, 0, MAGIC_NEW)) return parseNew(buf, 0, 'new');
  if (!startsWith(buf, 0, MAGIC_OLD)) fail('NOT_CACHE', 'no ld.so.cache magic');
  if (buf.length < OLD_HEADER) fail('TRUNCATED', 'old-format header cut short');
  // The old format has no endianness marker: it is the writer's, taken as little endian.
  const nlibs = buf.readUInt32LE(12);
  const stringsAt = OLD_HEADER + nlibs * OLD_ENTRY;
  if (stringsAt > buf.length) fail('TRUNCATED', `old-format table of ${nlibs} entries runs past the end of the file`);
  // An ldconfig of the transition era appended a new-format cache, 8-byte aligned.
  for (const at of [(stringsAt + 7) & ~7, stringsAt]) {
    if (startsWith(buf, at, MAGIC_NEW)) return parseNew(buf, at, 'old+new');
  }
  const entries: LdCacheEntry[] = [];
  for (let i = 0; i < nlibs; i++) {
    const at = OLD_HEADER + i * OLD_ENTRY;
    const flags = buf.readInt32LE(at);
    const soname = cString(buf, stringsAt + buf.readUInt32LE(at + 4), 'soname');
    const path = cString(buf, stringsAt + buf.readUInt32LE(at + 8), 'path');
    entries.push({ soname, path, flags, hwcap: 0n, hwcapsSubdir: null });
  }
  return index('old', entries, null);
}

function parseNew(buf: Buffer, base: number, format: 'new' | 'old+new'): LdSoCache {
  if (buf.length < base + NEW_HEADER) fail('TRUNCATED', 'new-format header cut short');
  const endianFlag = buf[base + 28]!;
  // 0: written before the marker existed (native order); 2: little; 3: big.
  if (endianFlag !== 0 && endianFlag !== 2 && endianFlag !== 3) fail('MALFORMED', `endianness marker ${endianFlag}`);
  const little = endianFlag !== 3;
  const u32 = (at: number): number => {
    if (at < 0 || at + 4 > buf.length) fail('TRUNCATED', `field at ${at} past the end of the file`);
    return little ? buf.readUInt32LE(at) : buf.readUInt32BE(at);
  };
  const nlibs = u32(base + 20);
  const extensionOffset = u32(base + 32);
  const tableEnd = base + NEW_HEADER + nlibs * NEW_ENTRY;
  if (tableEnd > buf.length) fail('TRUNCATED', `new-format table of ${nlibs} entries runs past the end of the file`);

  const hwcapsNames = readHwcapsNames(buf, base, extensionOffset, u32);
  const entries: LdCacheEntry[] = [];
  for (let i = 0; i < nlibs; i++) {
    const at = base + NEW_HEADER + i * NEW_ENTRY;
    const flags = little ? buf.readInt32LE(at) : buf.readInt32BE(at);
    const soname = cString(buf, base + u32(at + 4), 'soname');
    const path = cString(buf, base + u32(at + 8), 'path');
    const hwcap = little ? buf.readBigUInt64LE(at + 16) : buf.readBigUInt64BE(at + 16);
    let hwcapsSubdir: string | null = null;
    if (hwcap & HWCAP_EXTENSION) {
      const idx = Number(hwcap & 0xffffffffn);
      // An index with no name makes the entry unusable, as for the loader: keep it marked.
      hwcapsSubdir = hwcapsNames[idx] ?? '';
    }
    entries.push({ soname, path, flags, hwcap, hwcapsSubdir });
  }
  return index(format, entries, hwcapsNames.generator);
}

type HwcapsNames = string[] & { generator: string | null };

function readHwcapsNames(buf: Buffer, base: number, extensionOffset: number, u32: (at: number) => number): HwcapsNames {
  const names = [] as unknown as HwcapsNames;
  names.generator = null;
  if (extensionOffset === 0) return names;
  const at = base + extensionOffset;
  if (at % 4 !== 0 || at + 8 > buf.length || u32(at) !== EXTENSION_MAGIC) return names; // glibc ignores a bad extension
  const count = u32(at + 4);
  if (count > 64 || at + 8 + count * 16 > buf.length) fail('MALFORMED', `extension directory of ${count} sections`);
  for (let i = 0; i < count; i++) {
    const s = at + 8 + i * 16;
    const tag = u32(s);
    const offset = u32(s + 8);
    const size = u32(s + 12);
    if (base + offset + size > buf.length) fail('MALFORMED', `extension section ${tag} runs past the end of the file`);
    if (tag === EXT_TAG_GENERATOR) {
      names.generator = buf.toString('utf8', base + offset, base + offset + Math.min(size, MAX_STRING)).replace(/\0.*$/s, '');
    } else if (tag === EXT_TAG_GLIBC_HWCAPS) {
      if (size % 4 !== 0 || size / 4 > 1024) fail('MALFORMED', `glibc-hwcaps section of ${size} bytes`);
      for (let j = 0; j < size / 4; j++) names.push(cString(buf, base + u32(base + offset + j * 4), 'glibc-hwcaps'));
    }
  }
  return names;
}

function index(format: LdSoCache['format'], entries: LdCacheEntry[], generator: string | null): LdSoCache {
  const bySoname = new Map<string, LdCacheEntry[]>();
  for (const e of entries) {
    const list = bySoname.get(e.soname);
    if (list) list.push(e);
    else bySoname.set(e.soname, [e]);
  }
  return { format, entries, bySoname, generator };
}

const EF_ARM_ABI_FLOAT_HARD = 0x400;
const EM_PPC64 = 21;
const EM_S390 = 22;
const EM_RISCV = 243;
const EF_RISCV_FLOAT_ABI_DOUBLE = 0x4;

/**
 * The cache flags the loader of an object of this class/machine accepts (glibc's
 * _dl_cache_check_flags for that ABI). Machines not listed take glibc's generic rule.
 */
export function cacheFlagsFor(elf: { elfClass: 32 | 64; machine: number; flags: number }): number[] {
  const libc6 = FLAG_ELF_LIBC6;
  switch (elf.machine) {
    case EM_X86_64:
      return [elf.elfClass === 64 ? FLAG_X8664_LIB64 | libc6 : FLAG_X8664_LIBX32 | libc6];
    case EM_AARCH64:
      if (elf.elfClass === 64) return [FLAG_AARCH64_LIB64 | libc6];
      break;
    case EM_ARM:
      return elf.flags & EF_ARM_ABI_FLOAT_HARD ? [FLAG_ARM_LIBHF | libc6] : [FLAG_ARM_LIBSF | libc6, libc6];
    case EM_PPC64:
      if (elf.elfClass === 64) return [FLAG_POWERPC_LIB64 | libc6];
      break;
    case EM_S390:
      if (elf.elfClass === 64) return [FLAG_S390_LIB64 | libc6];
      break;
    case EM_RISCV:
      if (elf.elfClass === 64) {
        return [(elf.flags & 0x6) === EF_RISCV_FLOAT_ABI_DOUBLE ? FLAG_RISCV_FLOAT_ABI_DOUBLE | libc6 : FLAG_RISCV_FLOAT_ABI_SOFT | libc6];
      }
      break;
    case EM_386:
      break;
  }
  return [FLAG_ELF, libc6];
}

/**
 * The path the loader takes from the cache for `soname`: among entries with accepted flags,
 * the supported glibc-hwcaps entry of best priority (`hwcapsSubdirs`, best first), else the
 * first plain entry. Entries carrying legacy hwcap bits are passed over.
 */
export function lookupLdSoCache(cache: LdSoCache, soname: string, acceptFlags: readonly number[], hwcapsSubdirs: readonly string[] = []): string | null {
  const list = cache.bySoname.get(soname);
  if (!list) return null;
  let best: LdCacheEntry | null = null;
  let bestPriority = Infinity;
  let plain: LdCacheEntry | null = null;
  for (const e of list) {
    if (!acceptFlags.includes(e.flags)) continue;
    if (e.hwcapsSubdir !== null) {
      const p = hwcapsSubdirs.indexOf(e.hwcapsSubdir);
      if (p >= 0 && p < bestPriority) {
        best = e;
        bestPriority = p;
      }
    } else if (e.hwcap === 0n && plain === null) {
      plain = e;
    }
  }
  return (best ?? plain)?.path ?? null;
}

export const LD_SO_CACHE_PATH = '/etc/ld.so.cache';

interface Held {
  key: string;
  result: Promise<LdCacheResult>;
}
const held = new Map<string, Held>();

/**
 * The parsed cache at `path`, parsed again only when its (dev, ino, size, mtime) changed.
 * A missing cache is an error value (READ_FAILED): the loader then uses its default dirs.
 */
export async function loadLdSoCache(path = LD_SO_CACHE_PATH): Promise<LdCacheResult> {
  let st;
  try {
    st = await fsp.stat(path, { bigint: true });
  } catch (err) {
    held.delete(path);
    return { ok: false, error: { code: 'READ_FAILED', message: `cannot stat ${path}: ${(err as Error).message}`, cause: err } };
  }
  const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
  const h = held.get(path);
  if (h && h.key === key) return h.result;
  if (st.size > BigInt(MAX_CACHE_BYTES)) {
    return { ok: false, error: { code: 'MALFORMED', message: `${path} is larger than ${MAX_CACHE_BYTES} bytes` } };
  }
  const result = (async (): Promise<LdCacheResult> => {
    let buf: Buffer;
    try {
      const fh = await fsp.open(path, 'r');
      try {
        buf = Buffer.alloc(Number(st.size));
        let got = 0;
        while (got < buf.length) {
          const { bytesRead } = await fh.read(buf, got, buf.length - got, got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        buf = buf.subarray(0, got);
      } finally {
        await fh.close().catch(() => undefined);
      }
    } catch (err) {
      return { ok: false, error: { code: 'READ_FAILED', message: `cannot read ${path}: ${(err as Error).message}`, cause: err } };
    }
    return parseLdSoCache(buf);
  })();
  held.set(path, { key, result });
  return result;
}
