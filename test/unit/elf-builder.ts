// Builds small, valid ELF images in memory for the parser and resolver tests: any class,
// either byte order, with PT_INTERP and a dynamic section whose string table sits at the
// end of the file (so any truncation cuts into data the parser needs).

export interface ElfSpec {
  cls?: 32 | 64;
  little?: boolean;
  machine?: number;
  type?: number;
  flags?: number;
  interp?: string;
  needed?: string[];
  rpath?: string;
  runpath?: string;
  soname?: string;
  flags1?: number;
  /** Address the single PT_LOAD maps file offset 0 to. */
  vaddrBias?: number;
  /** Zero bytes before the dynamic section, to place it beyond a read head. */
  pad?: number;
  omitStrsz?: boolean;
}

export interface BuiltElf {
  buf: Buffer;
  phoff: number;
  dynOff: number;
  strtabOff: number;
}

export function buildElf(spec: ElfSpec = {}): BuiltElf {
  const is64 = (spec.cls ?? 64) === 64;
  const little = spec.little ?? true;
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const dynent = is64 ? 16 : 8;
  const bias = BigInt(spec.vaddrBias ?? 0x400000);

  // String table: offset 0 is the empty string.
  const strs: Buffer[] = [Buffer.from([0])];
  let strLen = 1;
  const addStr = (s: string): number => {
    const at = strLen;
    const b = Buffer.from(`${s}\0`, 'utf8');
    strs.push(b);
    strLen += b.length;
    return at;
  };
  const dyn: [number, bigint | 'strtab'][] = [];
  for (const n of spec.needed ?? []) dyn.push([1, BigInt(addStr(n))]);
  if (spec.soname !== undefined) dyn.push([14, BigInt(addStr(spec.soname))]);
  if (spec.rpath !== undefined) dyn.push([15, BigInt(addStr(spec.rpath))]);
  if (spec.runpath !== undefined) dyn.push([29, BigInt(addStr(spec.runpath))]);
  if (spec.flags1 !== undefined) dyn.push([0x6ffffffb, BigInt(spec.flags1)]);
  dyn.push([5, 'strtab']);
  if (!spec.omitStrsz) dyn.push([10, BigInt(strLen)]);
  dyn.push([0, 0n]);

  const phnum = spec.interp !== undefined ? 3 : 2;
  const phoff = ehsize;
  const interpOff = phoff + phnum * phentsize;
  const interpBytes = spec.interp !== undefined ? Buffer.from(`${spec.interp}\0`, 'utf8') : Buffer.alloc(0);
  const dynOff = align(interpOff + interpBytes.length + (spec.pad ?? 0), 8);
  const strtabOff = dynOff + dyn.length * dynent;
  const total = strtabOff + strLen;
  const buf = Buffer.alloc(total);

  const u16 = (at: number, v: number) => (little ? buf.writeUInt16LE(v, at) : buf.writeUInt16BE(v, at));
  const u32 = (at: number, v: number) => (little ? buf.writeUInt32LE(v, at) : buf.writeUInt32BE(v, at));
  const u64 = (at: number, v: bigint) => (little ? buf.writeBigUInt64LE(v, at) : buf.writeBigUInt64BE(v, at));
  const word = (at: number, v: bigint) => (is64 ? u64(at, v) : u32(at, Number(v)));

  buf.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, little ? 1 : 2, 1, 0], 0);
  u16(16, spec.type ?? 3);
  u16(18, spec.machine ?? (is64 ? 62 : 3));
  u32(20, 1);
  word(is64 ? 32 : 28, BigInt(phoff));
  u32(is64 ? 48 : 36, spec.flags ?? 0);
  u16(is64 ? 52 : 40, ehsize);
  u16(is64 ? 54 : 42, phentsize);
  u16(is64 ? 56 : 44, phnum);

  const phdr = (i: number, type: number, offset: number, size: number) => {
    const at = phoff + i * phentsize;
    const vaddr = bias + BigInt(offset);
    u32(at, type);
    if (is64) {
      u32(at + 4, 4);
      u64(at + 8, BigInt(offset));
      u64(at + 16, vaddr);
      u64(at + 24, vaddr);
      u64(at + 32, BigInt(size));
      u64(at + 40, BigInt(size));
      u64(at + 48, 8n);
    } else {
      u32(at + 4, offset);
      u32(at + 8, Number(vaddr));
      u32(at + 12, Number(vaddr));
      u32(at + 16, size);
      u32(at + 20, size);
      u32(at + 24, 4);
      u32(at + 28, 8);
    }
  };
  let i = 0;
  phdr(i++, 1, 0, total);
  if (spec.interp !== undefined) phdr(i++, 3, interpOff, interpBytes.length);
  phdr(i++, 2, dynOff, dyn.length * dynent);

  interpBytes.copy(buf, interpOff);
  dyn.forEach(([tag, val], k) => {
    const at = dynOff + k * dynent;
    word(at, BigInt(tag));
    word(at + dynent / 2, val === 'strtab' ? bias + BigInt(strtabOff) : val);
  });
  Buffer.concat(strs).copy(buf, strtabOff);
  return { buf, phoff, dynOff, strtabOff };
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** A deterministic pseudo-random generator (mulberry32) so mutation tests are repeatable. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
