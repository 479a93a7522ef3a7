import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PATH_MAX, checkLinkTarget, checkWirePath } from '../../src/fs/local/wire-path';

const B = (s: string) => Buffer.from(s, 'latin1');

function accepted(raw: Uint8Array): void {
  const got = checkWirePath(raw);
  assert.ok(got, `expected ${JSON.stringify(Buffer.from(raw).toString('latin1'))} to be accepted`);
  assert.ok(Buffer.isBuffer(got));
  assert.deepEqual([...got], [...raw]);
}

function refused(raw: Uint8Array | null | undefined, why: string): void {
  assert.equal(checkWirePath(raw), null, why);
}

test('PATH_MAX is 4096', () => {
  assert.equal(PATH_MAX, 4096);
});

test('accepts the root and ordinary absolute paths, byte for byte', () => {
  accepted(B('/'));
  accepted(B('/a'));
  accepted(B('/a/b'));
  accepted(B('/usr/lib/x86_64-linux-gnu/libc.so.6'));
  accepted(B('/.hidden/..x/x../...'));
  accepted(B('/a.b/.c/c.'));
});

test('accepts names with spaces, newlines and non-UTF-8 bytes', () => {
  accepted(B('/with space/and\ttab'));
  accepted(B('/new\nline'));
  accepted(Buffer.from([0x2f, 0xff, 0xfe, 0x80, 0x2f, 0xc3, 0x28]));
  accepted(Buffer.from('/ünïcødé/日本', 'utf8'));
});

test('returns the same Buffer for a Buffer, and a Buffer view (no copy) for a Uint8Array', () => {
  const buf = B('/a/b');
  assert.equal(checkWirePath(buf), buf);

  const backing = new Uint8Array(Buffer.from('xx/a/byy', 'latin1'));
  const view = backing.subarray(2, 6); // "/a/b" at an offset inside a larger ArrayBuffer
  const got = checkWirePath(view);
  assert.ok(got && Buffer.isBuffer(got));
  assert.equal(got.toString('latin1'), '/a/b');
  assert.equal(got.length, 4);
  assert.equal(got.buffer, backing.buffer);
  assert.equal(got.byteOffset, 2);
});

test('refuses missing, empty and relative paths', () => {
  refused(null, 'null');
  refused(undefined, 'undefined');
  refused(new Uint8Array(0), 'empty');
  refused(B('a'), 'relative');
  refused(B('a/b'), 'relative with slash');
  refused(B('./a'), 'dot-relative');
  refused(B(' /a'), 'leading space');
});

test('refuses a NUL byte anywhere', () => {
  refused(B('/a\0b'), 'NUL inside a name');
  refused(B('/a\0'), 'NUL at the end');
  refused(B('/\0'), 'NUL right after the root');
  refused(B('/a/\0/b'), 'NUL as a component');
});

test('refuses . and .. components wherever they are', () => {
  for (const p of ['/.', '/..', '/./a', '/../a', '/a/.', '/a/..', '/a/./b', '/a/../b', '/a/b/..']) {
    refused(B(p), p);
  }
});

test('refuses empty components: doubled, leading double and trailing slashes', () => {
  for (const p of ['//', '//a', '/a//b', '/a/', '/a/b/', '///']) refused(B(p), p);
});

test('component length limit is 255 bytes (NAME_MAX)', () => {
  accepted(B('/' + 'n'.repeat(255)));
  accepted(B('/d/' + 'n'.repeat(255) + '/e'));
  refused(B('/' + 'n'.repeat(256)), '256-byte name');
  refused(B('/d/' + 'n'.repeat(256) + '/e'), '256-byte middle component');
  // bytes, not characters: 128 two-byte characters = 256 bytes
  refused(Buffer.from('/' + 'é'.repeat(128), 'utf8'), '256 bytes of UTF-8');
  accepted(Buffer.from('/' + 'é'.repeat(127) + 'x', 'utf8'));
});

test('total length must stay below PATH_MAX (4096)', () => {
  // components of 200 bytes: "/" + 200 = 201 per component
  const longest = (total: number): Buffer => {
    let s = '';
    while (s.length + 201 <= total) s += '/' + 'x'.repeat(200);
    const left = total - s.length;
    if (left > 0) s += '/' + 'y'.repeat(left - 1);
    assert.equal(s.length, total);
    return B(s);
  };
  accepted(longest(4095));
  refused(longest(4096), 'exactly 4096 bytes');
  refused(longest(5000), '5000 bytes');
});

test('checkLinkTarget accepts any bytes but NUL, bounded', () => {
  for (const t of ['x', '../../a', '/abs/path', '.', '..', 'a//b/', ' spaced \n']) {
    const buf = B(t);
    assert.equal(checkLinkTarget(buf), buf, JSON.stringify(t));
  }
  const odd = Buffer.from([0xff, 0x2f, 0x80]);
  assert.deepEqual([...checkLinkTarget(odd)!], [0xff, 0x2f, 0x80]);
  const u8 = new Uint8Array([0x61, 0x62]);
  const got = checkLinkTarget(u8);
  assert.ok(got && Buffer.isBuffer(got));
  assert.equal(got.toString(), 'ab');
  assert.equal(checkLinkTarget(B('x'.repeat(4095)))?.length, 4095);

  assert.equal(checkLinkTarget(null), null);
  assert.equal(checkLinkTarget(undefined), null);
  assert.equal(checkLinkTarget(new Uint8Array(0)), null);
  assert.equal(checkLinkTarget(B('a\0b')), null);
  assert.equal(checkLinkTarget(B('\0')), null);
  assert.equal(checkLinkTarget(B('x'.repeat(4096))), null);
});
