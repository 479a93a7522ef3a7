import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { AttrCache, type CachedAttr } from '../../src/fs/agent/attr-cache';

const attr = (ino: number, size = 0): CachedAttr => ({ ino, mode: 0o100644, nlink: 1, size });

function filled(paths: string[], missing: string[] = []): AttrCache {
  const c = new AttrCache(60_000, 60_000);
  paths.forEach((p, i) => c.set(p, attr(i + 1)));
  for (const p of missing) c.setMissing(p);
  return c;
}

/** Which of the paths still have an entry (attr or missing). */
const present = (c: AttrCache, paths: string[]) => paths.filter((p) => c.get(p) !== undefined);

test('set then get returns the stored attributes', () => {
  const c = new AttrCache(60_000, 60_000);
  const a = attr(7, 1234);
  c.set('/a/b', a);
  assert.equal(c.get('/a/b'), a);
  assert.deepEqual(c.get('/a/b'), { ino: 7, mode: 0o100644, nlink: 1, size: 1234 });
  c.set('/a/b', attr(8, 1));
  assert.equal((c.get('/a/b') as CachedAttr).ino, 8, 'a later set replaces');
});

test('unknown paths are undefined; keys are exact strings', () => {
  const c = filled(['/a/b']);
  assert.equal(c.get('/a'), undefined);
  assert.equal(c.get('/a/b/'), undefined);
  assert.equal(c.get('/a/bc'), undefined);
  assert.equal(c.get('a/b'), undefined);
  assert.equal(c.get(''), undefined);
});

test('setMissing records a negative entry; set and setMissing replace each other', () => {
  const c = new AttrCache(60_000, 60_000);
  c.setMissing('/gone');
  assert.equal(c.get('/gone'), 'missing');
  c.set('/gone', attr(3));
  assert.deepEqual(c.get('/gone'), attr(3));
  c.setMissing('/gone');
  assert.equal(c.get('/gone'), 'missing');
});

test('attributes expire after their ttl', async () => {
  const c = new AttrCache(40, 60_000);
  c.set('/f', attr(1));
  c.setMissing('/m');
  assert.deepEqual(c.get('/f'), attr(1));
  await sleep(100);
  assert.equal(c.get('/f'), undefined);
  assert.equal(c.get('/m'), 'missing', 'negative entries have their own (longer) ttl');
});

test('negative entries expire after the negative ttl', async () => {
  const c = new AttrCache(60_000, 40);
  c.set('/f', attr(1));
  c.setMissing('/m');
  assert.equal(c.get('/m'), 'missing');
  await sleep(100);
  assert.equal(c.get('/m'), undefined);
  assert.deepEqual(c.get('/f'), attr(1));
});

test('a ttl of 0 is still a (1 ms) cache, not an unlimited one', async () => {
  const c = new AttrCache(0, 0);
  c.set('/f', attr(1));
  c.setMissing('/m');
  await sleep(30);
  assert.equal(c.get('/f'), undefined);
  assert.equal(c.get('/m'), undefined);
});

test('max bounds the number of entries (least recently used goes first)', () => {
  const c = new AttrCache(60_000, 60_000, 2);
  c.set('/1', attr(1));
  c.set('/2', attr(2));
  assert.ok(c.get('/1')); // /1 is now the most recently used
  c.set('/3', attr(3));
  assert.equal(c.get('/2'), undefined);
  assert.deepEqual(c.get('/1'), attr(1));
  assert.deepEqual(c.get('/3'), attr(3));
});

test('invalidate drops the path (attr or missing) and its parent, nothing else', () => {
  const all = ['/', '/a', '/a/b', '/a/b/c', '/a/bc', '/a/x', '/ab'];
  const c = filled(all);
  c.invalidate('/a/b');
  assert.deepEqual(present(c, all), ['/', '/a/b/c', '/a/bc', '/a/x', '/ab']);

  const m = filled(['/a'], ['/a/b']);
  m.invalidate('/a/b');
  assert.equal(m.get('/a/b'), undefined, 'a negative entry goes too');
  assert.equal(m.get('/a'), undefined);
});

test('invalidate of a top-level name drops the root; of the root, the root', () => {
  const c = filled(['/', '/a', '/b']);
  c.invalidate('/a');
  assert.deepEqual(present(c, ['/', '/a', '/b']), ['/b']);
  const r = filled(['/', '/a']);
  r.invalidate('/');
  assert.deepEqual(present(r, ['/', '/a']), ['/a']);
});

test('invalidateTree drops the subtree and the parent, not a sibling with a common prefix', () => {
  const all = ['/', '/a', '/a/b', '/a/b/c', '/a/b/c/d', '/a/bc', '/a/bc/d', '/a/b-x', '/a/c', '/b'];
  const missing = ['/a/b/gone', '/a/bc/gone', '/a/b/c/gone'];
  const c = filled(all, missing);
  c.invalidateTree('/a/b');
  assert.deepEqual(present(c, all), ['/', '/a/bc', '/a/bc/d', '/a/b-x', '/a/c', '/b']);
  assert.deepEqual(present(c, missing), ['/a/bc/gone']);
  assert.equal(c.get('/a/bc/gone'), 'missing');
});

test('invalidateTree of the root drops everything', () => {
  const all = ['/', '/a', '/a/b', '/z'];
  const c = filled(all, ['/nope', '/a/nope']);
  c.invalidateTree('/');
  assert.deepEqual(present(c, [...all, '/nope', '/a/nope']), []);
});

test('a full listing answers for names present and absent, until something in the directory changes', () => {
  const c = new AttrCache(60_000, 60_000);
  c.setListing('/d', ['a', 'b']);
  assert.equal(c.fromListing('/d/a'), 'present');
  assert.equal(c.fromListing('/d/zz'), 'absent');
  assert.equal(c.fromListing('/other/a'), undefined);
  assert.equal(c.fromListing('/d/sub/x'), undefined, 'only the parent listing counts');
  c.invalidate('/d/new');
  assert.equal(c.fromListing('/d/zz'), undefined, 'a change in /d drops its listing');
  c.setListing('/', ['d']);
  assert.equal(c.fromListing('/e'), 'absent');
  c.setListing('/t/u', ['x']);
  c.invalidateTree('/t');
  assert.equal(c.fromListing('/t/u/y'), undefined, 'a subtree change drops listings below it');
});
