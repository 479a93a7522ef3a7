// The persistent cache on its own: what it answers, what invalidation drops, that an index
// survives save and load, that concurrent savers merge, and that the size bound holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { PersistentCache } from '../../src/fs/agent/persistent-cache';
import { CacheScope, parseCachedTrees } from '../../src/fs/shared/cache-scope';
import { fingerprint, fingerprintOfStats } from '../../src/fs/shared/fingerprint';
import { attrFromStats } from '../../src/fs/shared/attr';
import { parseProbes, staleProbes } from '../../src/client/cache-revalidate';
import { decodeProbes, encodeProbes } from '../../src/fs/shared/probe-list';

const file = (ino: number, size: number, ctime = 1) => ({ ino, mode: 0o100644, nlink: 1, size, mtime: { sec: 5, nsec: 0 }, ctime: { sec: ctime, nsec: 7 } });
const dir = (ino: number) => ({ ino, mode: 0o040755, nlink: 2, size: 4096, mtime: { sec: 5, nsec: 0 }, ctime: { sec: 5, nsec: 0 } });

async function withStore(fn: (root: string) => Promise<void>): Promise<void> {
  const root = mkdtempSync(path.join(tmpdir(), 'outrun-pc-unit-'));
  try {
    await fn(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
const open = (root: string, maxBytes = 1 << 30) => PersistentCache.open({ dir: root, scope: new CacheScope(['/usr']), maxBytes });

test('cache scope: trees cover their subtrees only; bad lists are refused', () => {
  const s = new CacheScope(['/usr', '/etc']);
  assert.ok(s.covers('/usr') && s.covers('/usr/bin/x') && s.covers('/etc/passwd'));
  assert.ok(!s.covers('/usrx') && !s.covers('/') && !s.covers('/home/usr'));
  assert.deepEqual(parseCachedTrees('/usr/, /opt//x'), ['/usr', '/opt/x']);
  assert.ok(parseCachedTrees('usr') instanceof Error);
  assert.ok(parseCachedTrees('/usr/../etc') instanceof Error);
  assert.ok(parseCachedTrees('/') instanceof Error);
});

test('the fingerprint from lstat equals the one from the wire attributes, before 1970 too', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'outrun-fp-'));
  try {
    const f = path.join(dir, 'f');
    writeFileSync(f, 'x');
    for (const t of [new Date('1965-03-04T05:06:07.891Z'), new Date('2031-01-01T00:00:00.5Z')]) {
      utimesSync(f, t, t);
      const st = lstatSync(f, { bigint: true });
      assert.ok(fingerprintOfStats(st).equals(fingerprint(attrFromStats(st))), t.toISOString());
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fingerprints change with content-related attributes, not with atime', () => {
  const a = file(1, 10);
  assert.ok(fingerprint(a).equals(fingerprint({ ...a, atime: { sec: 99, nsec: 1 } })));
  assert.ok(!fingerprint(a).equals(fingerprint({ ...a, ctime: { sec: 1, nsec: 8 } })));
  assert.ok(!fingerprint(a).equals(fingerprint({ ...a, size: 11 })));
  assert.ok(!fingerprint(a).equals(fingerprint(undefined)));
});

test('answers from listings, links and blobs; paths outside the trees are never kept', () =>
  withStore(async (root) => {
    const c = await open(root);
    c.recordListing('/usr/lib', dir(2), [
      { name: 'a', attr: file(3, 5) },
      { name: 'l', attr: { ino: 4, mode: 0o120777, nlink: 1, size: 1 } },
    ]);
    assert.deepEqual(c.attr('/usr/lib/a'), file(3, 5));
    assert.equal(c.attr('/usr/lib/nope'), 'missing', 'absent from a full listing');
    assert.deepEqual(c.listing('/usr/lib')?.names, ['a', 'l']);
    c.recordLink('/usr/lib/l', { ino: 4, mode: 0o120777, nlink: 1, size: 1 }, 'a');
    assert.equal(c.linkTarget('/usr/lib/l'), 'a');
    await c.recordContent('/usr/lib/a', file(3, 5), Buffer.from('hello'));
    const blob = c.blob('/usr/lib/a')!;
    const fh = await c.blobs.open(blob.hash, 5);
    assert.equal((await fh!.readFile()).toString(), 'hello');
    await fh!.close();
    await c.recordContent('/usr/lib/a', file(3, 6), Buffer.from('hello')); // size mismatch: refused
    c.recordAttr('/home/x', file(9, 1));
    assert.equal(c.attr('/home/x'), undefined);
  }));

test('invalidation drops the path, its parent listing and, for a tree, everything under it', () =>
  withStore(async (root) => {
    const c = await open(root);
    c.recordListing('/usr/lib', dir(2), [{ name: 'a', attr: file(3, 5) }]);
    c.recordListing('/usr/lib/sub', dir(5), [{ name: 'b', attr: file(6, 5) }]);
    c.invalidate('/usr/lib/a');
    assert.equal(c.attr('/usr/lib/a'), undefined);
    assert.equal(c.listing('/usr/lib'), undefined);
    assert.deepEqual(c.attr('/usr/lib/sub/b'), file(6, 5));
    c.invalidateTree('/usr/lib');
    assert.equal(c.attr('/usr/lib/sub/b'), undefined);
  }));

test('saved entries load again, stale ones are dropped, and two savers merge', () =>
  withStore(async (root) => {
    const one = await open(root);
    const two = await open(root);
    one.recordAttr('/usr/one', file(1, 1));
    two.recordAttr('/usr/two', file(2, 2));
    await one.save();
    await two.save();
    const three = await open(root);
    const probes = decodeProbes(three.probes(), 100) as { path: Buffer }[];
    assert.deepEqual(probes.map((p) => Buffer.from(p.path!).toString()).sort(), ['/usr/one', '/usr/two']);
    const i = probes.findIndex((p) => Buffer.from(p.path!).toString() === '/usr/one');
    await three.dropStale([i]);
    assert.equal(three.attr('/usr/one'), undefined);
    assert.ok(fingerprint(three.attr('/usr/two') as never).equals(fingerprint(file(2, 2))));
    await three.save();
    const four = await open(root);
    assert.deepEqual((decodeProbes(four.probes(), 100) as { path: Buffer }[]).map((p) => p.path.toString()), ['/usr/two'], 'the stale entry is gone from disk too');
    assert.ok(!readdirSync(root).some((n) => n.includes('.tmp-') || n === 'index.lock'));
  }));

test('the blobs stay within the size bound: least recently used go first', () =>
  withStore(async (root) => {
    const c = await open(root, 2500);
    for (let i = 0; i < 5; i++) await c.recordContent(`/usr/f${i}`, file(10 + i, 1000), Buffer.alloc(1000, i));
    await c.save();
    const d = await open(root, 2500);
    const kept = (decodeProbes(d.probes(), 100) as { path: Buffer }[]).map((p) => p.path.toString());
    assert.ok(kept.length <= 2 && kept.length >= 1, `kept ${kept}`);
    assert.ok(kept.includes('/usr/f4'), 'the newest survives');
  }));

test('packed probes: round trip, and malformed or oversized lists are refused', () => {
  const probes = [
    { path: Buffer.from('/usr/a'), fingerprint: Buffer.alloc(8, 1) },
    { path: Buffer.from('/usr/\xff'), fingerprint: Buffer.alloc(8, 2) },
  ];
  const packed = encodeProbes(probes);
  assert.deepEqual(decodeProbes(packed, 10), probes);
  assert.ok(decodeProbes(packed, 1) instanceof Error, 'over the bound');
  assert.ok(decodeProbes(packed.subarray(0, packed.length - 1), 10) instanceof Error, 'truncated');
  assert.ok(decodeProbes(Buffer.concat([packed, Buffer.from([0])]), 10) instanceof Error, 'trailing bytes');
  const zeroLen = Buffer.from(packed);
  zeroLen.writeUInt16BE(0, 4);
  assert.ok(decodeProbes(zeroLen, 10) instanceof Error, 'empty path');
  assert.ok(parseProbes(Buffer.from([0xff, 0xff, 0xff, 0xff])) instanceof Error, 'a huge count is refused before any allocation');
});

test('revalidation against the local disk names exactly the changed entries', () => {
  const probes = [
    { path: Buffer.from('/'), fingerprint: Buffer.alloc(8) }, // wrong fingerprint: stale
    { path: Buffer.from('/no/such/outrun/path'), fingerprint: fingerprint(undefined) }, // still absent: fresh
    { path: Buffer.from('relative'), fingerprint: fingerprint(undefined) }, // refused path: stale
  ];
  assert.deepEqual(staleProbes(probes), [0, 2]);
});
