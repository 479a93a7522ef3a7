import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ElfResult, ReadAt, parseElfDeps, parseElfDepsFromBuffer, readElfDepsFromFile } from '../../src/fs/local/elf';
import { buildElf, prng } from './elf-builder';

/** readelf (binutils) as an independent oracle for real files. */
function readelfDynamic(file: string): { needed: string[]; soname: string | null; rpath: string | null; runpath: string | null } {
  const out = execFileSync('readelf', ['-dW', file], { encoding: 'utf8' });
  const pick = (tag: string) => [...out.matchAll(new RegExp(`\\(${tag}\\)\\s+\\S+.*?\\[(.*)\\]`, 'g'))].map((m) => m[1]!);
  return { needed: pick('NEEDED'), soname: pick('SONAME')[0] ?? null, rpath: pick('RPATH')[0] ?? null, runpath: pick('RUNPATH')[0] ?? null };
}

function readelfInterp(file: string): string | null {
  const out = execFileSync('readelf', ['-lW', file], { encoding: 'utf8' });
  return out.match(/Requesting program interpreter: (.*)\]/)?.[1] ?? null;
}

function ok(r: ElfResult) {
  assert.ok(r.ok, r.ok ? '' : `${r.error.code}: ${r.error.message}`);
  return r.value;
}

for (const file of ['/bin/ls', '/usr/bin/python3', '/lib/x86_64-linux-gnu/libc.so.6']) {
  test(`${file}: interpreter, DT_NEEDED, DT_SONAME match readelf`, async (t) => {
    try {
      readFileSync(file, { flag: 'r' }).subarray(0, 1);
    } catch {
      t.skip(`${file} is not on this machine`);
      return;
    }
    const d = ok(await readElfDepsFromFile(file));
    const oracle = readelfDynamic(file);
    assert.equal(d.elfClass, 64);
    assert.equal(d.endian, 'little');
    assert.equal(d.machine, 62);
    assert.equal(d.dynamic, true);
    assert.deepEqual(d.needed, oracle.needed);
    assert.ok(d.needed.length > 0);
    assert.equal(d.soname, oracle.soname);
    assert.equal(d.rpath, oracle.rpath);
    assert.equal(d.runpath, oracle.runpath);
    assert.equal(d.interp, readelfInterp(file));
  });
}

test('all four class/byte-order variants parse to the same dependencies', async () => {
  for (const cls of [32, 64] as const) {
    for (const little of [true, false]) {
      const { buf } = buildElf({ cls, little, machine: 0x1234, interp: '/lib/ld-test.so.1', needed: ['liba.so.1', 'libb.so.2'], rpath: '$ORIGIN/../lib', soname: 'libself.so.9', flags1: 0x800 });
      const d = ok(await parseElfDepsFromBuffer(buf));
      assert.equal(d.elfClass, cls);
      assert.equal(d.endian, little ? 'little' : 'big');
      assert.equal(d.machine, 0x1234);
      assert.equal(d.interp, '/lib/ld-test.so.1');
      assert.deepEqual(d.needed, ['liba.so.1', 'libb.so.2']);
      assert.equal(d.rpath, '$ORIGIN/../lib');
      assert.equal(d.runpath, null);
      assert.equal(d.soname, 'libself.so.9');
      assert.equal(d.flags1, 0x800);
    }
  }
});

test('DT_STRTAB is an address: it is mapped to a file offset through PT_LOAD', async () => {
  for (const bias of [0, 0x400000, 0x10000000]) {
    const { buf } = buildElf({ vaddrBias: bias, needed: ['libx.so'], runpath: '/opt/x' });
    const d = ok(await parseElfDepsFromBuffer(buf));
    assert.deepEqual(d.needed, ['libx.so']);
    assert.equal(d.runpath, '/opt/x');
  }
});

test('a dynamic section beyond the head is read with further bounded reads', async () => {
  const { buf, dynOff } = buildElf({ needed: ['libfar.so.3'], pad: 200_000 });
  assert.ok(dynOff > 200_000);
  const calls: { offset: number; length: number }[] = [];
  const read: ReadAt = (offset, length) => {
    calls.push({ offset, length });
    return buf.subarray(offset, offset + length);
  };
  const d = ok(await parseElfDeps(read, 4096));
  assert.deepEqual(d.needed, ['libfar.so.3']);
  assert.equal(calls[0]!.offset, 0);
  assert.equal(calls[0]!.length, 4096);
  // Nothing in between was read: only the head, the dynamic section and the string.
  const total = calls.reduce((n, c) => n + c.length, 0);
  assert.ok(total < 4096 + 1024, `read ${total} bytes`);
});

test('non-ELF input is NOT_ELF; an empty file too', async () => {
  for (const b of [Buffer.alloc(0), Buffer.from('#!/bin/sh\necho hi\n'), Buffer.from('\x7fELG')]) {
    const r = await parseElfDepsFromBuffer(b);
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.error.code, 'NOT_ELF');
  }
});

test('bad class, byte order or version are UNSUPPORTED', async () => {
  for (const [at, v] of [[4, 3], [5, 0], [6, 2]] as const) {
    const { buf } = buildElf({ needed: ['a.so'] });
    buf[at] = v;
    const r = await parseElfDepsFromBuffer(buf);
    assert.equal(!r.ok && r.error.code, 'UNSUPPORTED');
  }
});

test('every truncation of a valid file is an error value, never a throw', async () => {
  const { buf } = buildElf({ interp: '/lib/ld.so', needed: ['liba.so', 'libb.so'], runpath: '/x' });
  for (let n = 0; n < buf.length; n++) {
    const r = await parseElfDepsFromBuffer(buf.subarray(0, n));
    assert.equal(r.ok, false, `truncated to ${n} bytes parsed`);
    assert.ok(!r.ok && ['NOT_ELF', 'TRUNCATED', 'MALFORMED'].includes(r.error.code), `${n}: ${!r.ok && r.error.code}`);
  }
  assert.ok((await parseElfDepsFromBuffer(buf)).ok);
});

test('crafted headers are rejected with the failing part named', async () => {
  const cases: [string, (b: Buffer, o: ReturnType<typeof buildElf>) => void, string, RegExp][] = [
    ['phentsize too small', (b) => b.writeUInt16LE(8, 54), 'MALFORMED', /e_phentsize/],
    ['phentsize too large', (b) => b.writeUInt16LE(0xffff, 54), 'MALFORMED', /e_phentsize/],
    ['phoff beyond the file', (b) => b.writeBigUInt64LE(1n << 40n, 32), 'TRUNCATED', /program header/],
    ['phoff beyond any file', (b) => b.writeBigUInt64LE(1n << 63n, 32), 'MALFORMED', /e_phoff/],
    ['extended phnum', (b) => b.writeUInt16LE(0xffff, 56), 'UNSUPPORTED', /e_phnum/],
    ['strtab outside every PT_LOAD', (b, o) => b.writeBigUInt64LE(0xdead0000n, o.dynOff + 16 + 8), 'MALFORMED', /DT_STRTAB/],
    ['string offset past the table', (b, o) => b.writeBigUInt64LE(0xffffffn, o.dynOff + 8), 'MALFORMED', /DT_NEEDED/],
    ['unterminated last string', (b) => (b[b.length - 1] = 0x41), 'MALFORMED', /NUL/],
  ];
  for (const [name, mutate, code, re] of cases) {
    const o = buildElf({ needed: ['liba.so'] });
    // Dynamic layout for this spec: NEEDED, STRTAB, STRSZ, NULL.
    mutate(o.buf, o);
    const r = await parseElfDepsFromBuffer(o.buf);
    assert.equal(r.ok, false, name);
    assert.equal(!r.ok && r.error.code, code, `${name}: ${!r.ok && r.error.message}`);
    assert.match(!r.ok ? r.error.message : '', re, name);
  }
});

test('a dynamic section with no DT_NULL stops at its size', async () => {
  const o = buildElf({ needed: ['liba.so'] });
  // Overwrite DT_NULL with a harmless tag: the walk must end at p_filesz.
  o.buf.writeBigUInt64LE(0x7000_0000n, o.dynOff + 3 * 16);
  const d = ok(await parseElfDepsFromBuffer(o.buf));
  assert.deepEqual(d.needed, ['liba.so']);
});

test('a read that throws or returns garbage is READ_FAILED', async () => {
  const r1 = await parseElfDeps(() => {
    throw new Error('EIO on disk');
  });
  assert.equal(!r1.ok && r1.error.code, 'READ_FAILED');
  assert.match(!r1.ok ? r1.error.message : '', /EIO on disk/);
  const r2 = await parseElfDeps(() => 'nope' as unknown as Buffer);
  assert.equal(!r2.ok && r2.error.code, 'READ_FAILED');
  const r3 = await readElfDepsFromFile('/nonexistent/outrun-elf-test');
  assert.equal(!r3.ok && r3.error.code, 'READ_FAILED');
});

test('random mutations of real and synthetic headers never throw and read a bounded amount', async () => {
  const rand = prng(0x5eed);
  const lsHead = readFileSync('/bin/ls').subarray(0, 64 * 1024);
  const seeds = [lsHead, buildElf({ interp: '/l', needed: ['a', 'b'], rpath: 'r' }).buf, buildElf({ cls: 32, little: false, needed: ['c'] }).buf];
  let parsedOk = 0;
  for (let i = 0; i < 1500; i++) {
    const src = seeds[i % seeds.length]!;
    const b = Buffer.from(src);
    const flips = 1 + Math.floor(rand() * 8);
    for (let f = 0; f < flips; f++) {
      // Aim most flips at the headers, where the offsets and counts are.
      const at = rand() < 0.8 ? Math.floor(rand() * Math.min(b.length, 512)) : Math.floor(rand() * b.length);
      b[at] = Math.floor(rand() * 256);
    }
    let bytesRead = 0;
    let reads = 0;
    const r = await parseElfDeps((offset, length) => {
      reads++;
      bytesRead += length;
      return b.subarray(Math.min(offset, b.length), Math.min(offset + length, b.length));
    });
    assert.equal(typeof r.ok, 'boolean');
    if (r.ok) parsedOk++;
    else assert.ok(r.error.message.length > 0);
    assert.ok(reads <= 1100, `${reads} reads`);
    assert.ok(bytesRead <= 8 * 1024 * 1024, `${bytesRead} bytes requested`);
  }
  // Some mutations land in unused bytes and must still parse.
  assert.ok(parsedOk > 0);
});

test('files on disk: far sections are read by offset, bad offsets are TRUNCATED', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'outrun-elf-'));
  try {
    const far = path.join(dir, 'far.so');
    writeFileSync(far, buildElf({ needed: ['libfar.so.1'], soname: 'libme.so', pad: 300_000 }).buf);
    const d = ok(await readElfDepsFromFile(far));
    assert.deepEqual(d.needed, ['libfar.so.1']);
    assert.equal(d.soname, 'libme.so');
    const bad = buildElf({ needed: ['x'] }).buf;
    bad.writeBigUInt64LE(1n << 40n, 32);
    const badFile = path.join(dir, 'bad.so');
    writeFileSync(badFile, bad);
    const r = await readElfDepsFromFile(badFile);
    assert.equal(!r.ok && r.error.code, 'TRUNCATED');
    const r2 = await readElfDepsFromFile(dir);
    assert.equal(r2.ok, false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
