import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  FLAG_AARCH64_LIB64,
  FLAG_ELF,
  FLAG_ELF_LIBC6,
  FLAG_X8664_LIB64,
  FLAG_X8664_LIBX32,
  HWCAP_EXTENSION,
  LdCacheResult,
  cacheFlagsFor,
  loadLdSoCache,
  lookupLdSoCache,
  parseLdSoCache,
} from '../../src/fs/local/ld-so-cache';
import { prng } from './elf-builder';

interface Entry {
  soname: string;
  path: string;
  flags: number;
  hwcap?: bigint;
}

const X64 = FLAG_ELF_LIBC6 | FLAG_X8664_LIB64;
const I386 = FLAG_ELF_LIBC6;

/** A "glibc-ld.so.cache1.1" image; string offsets relative to its own start, as ldconfig writes. */
function newCache(entries: Entry[], opts: { big?: boolean; hwcaps?: string[]; endianFlag?: number } = {}): Buffer {
  const big = opts.big ?? false;
  const header = 48;
  const strings: Buffer[] = [];
  let strAt = header + entries.length * 24;
  const strOff = new Map<string, number>();
  const intern = (s: string) => {
    if (!strOff.has(s)) {
      strOff.set(s, strAt);
      const b = Buffer.from(`${s}\0`);
      strings.push(b);
      strAt += b.length;
    }
    return strOff.get(s)!;
  };
  const hw = (opts.hwcaps ?? []).map(intern);
  const offs = entries.map((e) => [intern(e.soname), intern(e.path)] as const);
  const extAt = opts.hwcaps ? Math.ceil(strAt / 4) * 4 : 0;
  const extLen = opts.hwcaps ? 8 + 16 + hw.length * 4 : 0;
  const buf = Buffer.alloc((extAt || strAt) + extLen);
  const u32 = (at: number, v: number) => (big ? buf.writeUInt32BE(v, at) : buf.writeUInt32LE(v, at));
  buf.write('glibc-ld.so.cache1.1', 0, 'latin1');
  u32(20, entries.length);
  u32(24, strAt - (header + entries.length * 24));
  buf[28] = opts.endianFlag ?? (big ? 3 : 2);
  u32(32, extAt);
  entries.forEach((e, i) => {
    const at = header + i * 24;
    u32(at, e.flags);
    u32(at + 4, offs[i]![0]);
    u32(at + 8, offs[i]![1]);
    if (big) buf.writeBigUInt64BE(e.hwcap ?? 0n, at + 16);
    else buf.writeBigUInt64LE(e.hwcap ?? 0n, at + 16);
  });
  Buffer.concat(strings).copy(buf, header + entries.length * 24);
  if (opts.hwcaps) {
    u32(extAt, 0xeaa42174);
    u32(extAt + 4, 1);
    u32(extAt + 8, 1); // tag: glibc-hwcaps
    u32(extAt + 16, extAt + 24);
    u32(extAt + 20, hw.length * 4);
    hw.forEach((o, i) => u32(extAt + 24 + i * 4, o));
  }
  return buf;
}

/** An "ld.so-1.7.0" image: strings relative to the end of its entry table. */
function oldCache(entries: Entry[]): Buffer {
  const table = 16 + entries.length * 12;
  const strings: Buffer[] = [];
  let rel = 0;
  const offs = entries.map((e) => {
    const k = rel;
    strings.push(Buffer.from(`${e.soname}\0`));
    rel += e.soname.length + 1;
    const v = rel;
    strings.push(Buffer.from(`${e.path}\0`));
    rel += e.path.length + 1;
    return [k, v] as const;
  });
  const buf = Buffer.alloc(table + rel);
  buf.write('ld.so-1.7.0', 0, 'latin1');
  buf.writeUInt32LE(entries.length, 12);
  entries.forEach((e, i) => {
    buf.writeInt32LE(e.flags, 16 + i * 12);
    buf.writeUInt32LE(offs[i]![0], 20 + i * 12);
    buf.writeUInt32LE(offs[i]![1], 24 + i * 12);
  });
  Buffer.concat(strings).copy(buf, table);
  return buf;
}

function ok(r: LdCacheResult) {
  assert.ok(r.ok, r.ok ? '' : `${r.error.code}: ${r.error.message}`);
  return r.value;
}

const X86_64 = { elfClass: 64 as const, machine: 62, flags: 0 };
const X32 = { elfClass: 32 as const, machine: 62, flags: 0 };
const I386_ELF = { elfClass: 32 as const, machine: 3, flags: 0 };

test('the machine\'s /etc/ld.so.cache parses to what `ldconfig -p` lists, in order', async () => {
  const c = ok(await loadLdSoCache('/etc/ld.so.cache'));
  const lines = execFileSync('ldconfig', ['-p'], { encoding: 'utf8' }).split('\n').slice(1).filter((l) => l.includes('=>'));
  const oracle = lines.map((l) => {
    const m = l.match(/^\s*(\S+) \(([^)]*)\) => (.*)$/)!;
    return { soname: m[1]!, abi: m[2]!.split(',').slice(0, 2).join(','), path: m[3]! };
  });
  assert.ok(oracle.length > 10);
  assert.equal(c.entries.length, oracle.length);
  const abiFlags: Record<string, number> = { 'libc6,x86-64': X64, libc6: I386, 'libc6,x32': FLAG_ELF_LIBC6 | FLAG_X8664_LIBX32 };
  c.entries.forEach((e, i) => {
    assert.equal(e.soname, oracle[i]!.soname);
    assert.equal(e.path, oracle[i]!.path);
    const want = abiFlags[oracle[i]!.abi];
    if (want !== undefined) assert.equal(e.flags, want, `${e.soname}: ${oracle[i]!.abi}`);
  });
  const libc = oracle.find((o) => o.soname === 'libc.so.6' && o.abi === 'libc6,x86-64')!;
  assert.equal(lookupLdSoCache(c, 'libc.so.6', cacheFlagsFor(X86_64)), libc.path);
  assert.equal(lookupLdSoCache(c, 'libdoes-not-exist.so.0', cacheFlagsFor(X86_64)), null);
});

test('the entry matching the requesting ABI is chosen among several for one soname', () => {
  const c = ok(
    parseLdSoCache(
      newCache([
        { soname: 'libz.so.1', path: '/usr/lib/i386-linux-gnu/libz.so.1', flags: I386 },
        { soname: 'libz.so.1', path: '/usr/libx32/libz.so.1', flags: FLAG_ELF_LIBC6 | FLAG_X8664_LIBX32 },
        { soname: 'libz.so.1', path: '/lib/x86_64-linux-gnu/libz.so.1', flags: X64 },
        { soname: 'libz.so.1', path: '/lib/aarch64-linux-gnu/libz.so.1', flags: FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64 },
      ]),
    ),
  );
  assert.equal(c.format, 'new');
  assert.equal(lookupLdSoCache(c, 'libz.so.1', cacheFlagsFor(X86_64)), '/lib/x86_64-linux-gnu/libz.so.1');
  assert.equal(lookupLdSoCache(c, 'libz.so.1', cacheFlagsFor(X32)), '/usr/libx32/libz.so.1');
  assert.equal(lookupLdSoCache(c, 'libz.so.1', cacheFlagsFor(I386_ELF)), '/usr/lib/i386-linux-gnu/libz.so.1');
  assert.equal(lookupLdSoCache(c, 'libz.so.1', cacheFlagsFor({ elfClass: 64, machine: 183, flags: 0 })), '/lib/aarch64-linux-gnu/libz.so.1');
  assert.equal(lookupLdSoCache(c, 'libz.so.1', cacheFlagsFor({ elfClass: 64, machine: 21, flags: 0 })), null);
  assert.deepEqual(cacheFlagsFor(I386_ELF), [FLAG_ELF, FLAG_ELF_LIBC6]);
});

test('a big-endian cache parses with its own byte order', () => {
  const c = ok(parseLdSoCache(newCache([{ soname: 'libq.so.2', path: '/usr/lib/s390x-linux-gnu/libq.so.2', flags: 0x0403 }], { big: true })));
  assert.equal(c.entries[0]!.flags, 0x0403);
  assert.equal(lookupLdSoCache(c, 'libq.so.2', cacheFlagsFor({ elfClass: 64, machine: 22, flags: 0 })), '/usr/lib/s390x-linux-gnu/libq.so.2');
});

test('glibc-hwcaps entries win only when their subdirectory is supported, by priority', () => {
  const buf = newCache(
    [
      { soname: 'libm.so.6', path: '/usr/lib/glibc-hwcaps/x86-64-v4/libm.so.6', flags: X64, hwcap: HWCAP_EXTENSION | 1n },
      { soname: 'libm.so.6', path: '/usr/lib/glibc-hwcaps/x86-64-v3/libm.so.6', flags: X64, hwcap: HWCAP_EXTENSION | 0n },
      { soname: 'libm.so.6', path: '/usr/lib/libm.so.6', flags: X64 },
      { soname: 'libm.so.6', path: '/usr/lib/legacy/libm.so.6', flags: X64, hwcap: 1n << 3n },
    ],
    { hwcaps: ['x86-64-v3', 'x86-64-v4'] },
  );
  const c = ok(parseLdSoCache(buf));
  assert.equal(c.entries[0]!.hwcapsSubdir, 'x86-64-v4');
  assert.equal(c.entries[1]!.hwcapsSubdir, 'x86-64-v3');
  const flags = cacheFlagsFor(X86_64);
  assert.equal(lookupLdSoCache(c, 'libm.so.6', flags), '/usr/lib/libm.so.6');
  assert.equal(lookupLdSoCache(c, 'libm.so.6', flags, ['x86-64-v3', 'x86-64-v2']), '/usr/lib/glibc-hwcaps/x86-64-v3/libm.so.6');
  assert.equal(lookupLdSoCache(c, 'libm.so.6', flags, ['x86-64-v4', 'x86-64-v3']), '/usr/lib/glibc-hwcaps/x86-64-v4/libm.so.6');
});

test('the old format, alone or followed by a new-format cache, is read', () => {
  const old = oldCache([
    { soname: 'libold.so.1', path: '/lib/libold.so.1', flags: FLAG_ELF_LIBC6 },
    { soname: 'libc.so.5', path: '/lib/libc.so.5', flags: 2 },
  ]);
  const c = ok(parseLdSoCache(old));
  assert.equal(c.format, 'old');
  assert.equal(lookupLdSoCache(c, 'libold.so.1', cacheFlagsFor(I386_ELF)), '/lib/libold.so.1');
  assert.equal(lookupLdSoCache(c, 'libc.so.5', cacheFlagsFor(I386_ELF)), null);

  // In the combined layout the old table is followed directly by the new cache; its own
  // strings then live inside the new part, which this builder leaves out.
  const oldTableOnly = old.subarray(0, 16 + 2 * 12);
  const newPart = newCache([{ soname: 'libnew.so.3', path: '/lib/x86_64-linux-gnu/libnew.so.3', flags: X64 }]);
  const aligned = Buffer.alloc(Math.ceil(oldTableOnly.length / 8) * 8);
  oldTableOnly.copy(aligned);
  const both = ok(parseLdSoCache(Buffer.concat([aligned, newPart])));
  assert.equal(both.format, 'old+new');
  assert.equal(lookupLdSoCache(both, 'libnew.so.3', cacheFlagsFor(X86_64)), '/lib/x86_64-linux-gnu/libnew.so.3');
});

test('wrong magic, truncation, bad endianness marker and mutations are error values', () => {
  assert.equal((parseLdSoCache(Buffer.from('not a cache at all, really')) as { error: { code: string } }).error.code, 'NOT_CACHE');
  const good = newCache(
    [
      { soname: 'liba.so.1', path: '/lib/liba.so.1', flags: X64 },
      { soname: 'libb.so.1', path: '/lib/libb.so.1', flags: X64, hwcap: HWCAP_EXTENSION },
    ],
    { hwcaps: ['x86-64-v2'] },
  );
  const bad = Buffer.from(good);
  bad[28] = 1;
  const r = parseLdSoCache(bad);
  assert.equal(!r.ok && r.error.code, 'MALFORMED');
  // The strings come last: cutting anywhere before their end must fail, never throw.
  const stringsEnd = good.indexOf('/lib/libb.so.1\0') + 15;
  for (let n = 0; n < stringsEnd; n++) {
    const t = parseLdSoCache(good.subarray(0, n));
    assert.equal(t.ok, false, `cut at ${n}`);
  }
  const rand = prng(42);
  let okCount = 0;
  for (let i = 0; i < 2000; i++) {
    const m = Buffer.from(good);
    for (let f = 0; f < 4; f++) m[Math.floor(rand() * m.length)] = Math.floor(rand() * 256);
    const t = parseLdSoCache(m);
    assert.equal(typeof t.ok, 'boolean');
    if (t.ok) {
      okCount++;
      for (const e of t.value.entries) assert.equal(typeof e.path, 'string');
    }
  }
  assert.ok(okCount < 2000);
  // Strings without terminators across a large table are refused (and not scanned to the end each time).
  const noNul = Buffer.alloc(48 + 40000 * 24, 0x41);
  noNul.write('glibc-ld.so.cache1.1', 0, 'latin1');
  noNul.writeUInt32LE(40000, 20);
  noNul[28] = 2;
  noNul.writeUInt32LE(0, 32);
  for (let i = 0; i < 40000; i++) {
    noNul.writeUInt32LE(48 + i * 24 + 4, 48 + i * 24 + 4);
  }
  const nn = parseLdSoCache(noNul);
  assert.equal(!nn.ok && nn.error.code, 'MALFORMED');
  // A count claiming billions of entries is refused without allocating them.
  const huge = Buffer.from(good);
  huge.writeUInt32LE(0xffffffff, 20);
  assert.equal((parseLdSoCache(huge) as { error: { code: string } }).error.code, 'TRUNCATED');
});

test('loadLdSoCache parses once per (dev, ino, size, mtime) and again after a change', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'outrun-ldcache-'));
  try {
    const file = path.join(dir, 'ld.so.cache');
    writeFileSync(file, newCache([{ soname: 'libv.so.1', path: '/v1/libv.so.1', flags: X64 }]));
    const a = await loadLdSoCache(file);
    const b = await loadLdSoCache(file);
    assert.ok(a.ok && b.ok);
    assert.equal(a.value, b.value, 'second load reuses the parse');
    writeFileSync(file, newCache([{ soname: 'libv.so.1', path: '/v2/longer/libv.so.1', flags: X64 }]));
    const c = ok(await loadLdSoCache(file));
    assert.notEqual(c, a.value);
    assert.equal(lookupLdSoCache(c, 'libv.so.1', cacheFlagsFor(X86_64)), '/v2/longer/libv.so.1');
    rmSync(file);
    const gone = await loadLdSoCache(file);
    assert.equal(!gone.ok && gone.error.code, 'READ_FAILED');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
