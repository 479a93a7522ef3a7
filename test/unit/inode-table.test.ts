// InodeTable: one node per local file (device + inode), paths derived from names, lookups
// counted and given back by FORGET, and a table that shrinks back to the root when the
// kernel forgets everything.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InodeTable, ROOT_ID } from '../../src/fs/agent/inode-table';

const file = (ino: number, dev = 1, nlink = 1) => ({ ino, dev, nlink, mode: 0o100644 });
const dir = (ino: number, dev = 1) => ({ ino, dev, nlink: 2, mode: 0o040755 });

test('hard links are one node; each name counts a lookup', () => {
  const t = new InodeTable();
  const d = t.remember(t.root, 'd', dir(10));
  const a = t.remember(d, 'a', file(20, 1, 2));
  const b = t.remember(t.root, 'b', file(20, 1, 2));
  assert.equal(a, b, 'same device and inode: one node');
  assert.equal(a.lookups, 2);
  assert.notEqual(t.remember(t.root, 'c', file(20, 2)).id, a.id, 'same inode on another device is another file');
  assert.equal(t.path(a), '/b', 'the name it was last found under');
  t.unlinked(t.root, 'b');
  assert.equal(t.path(a), '/d/a', 'one name gone: the other one is its path');
  t.unlinked(d, 'a');
  assert.equal(t.path(a), undefined, 'no name left');
});

test('FORGET gives lookups back; at zero the node goes, and the table is bounded by them', () => {
  const t = new InodeTable();
  const ids: number[] = [];
  for (let i = 0; i < 10_000; i++) {
    const n = t.remember(t.root, `f${i}`, file(100 + i));
    t.remember(t.root, `f${i}`, file(100 + i)); // looked up twice
    ids.push(n.id);
  }
  assert.equal(t.size, 10_001);
  for (const id of ids) t.forget(id, 1);
  assert.equal(t.size, 10_001, 'one lookup each still held');
  for (const id of ids) t.forget(id, 1);
  assert.equal(t.size, 1, 'only the root is left');
  assert.equal(t.child(t.root, 'f1'), undefined);
  t.forget(ROOT_ID, 5);
  assert.ok(t.get(ROOT_ID), 'the root is never forgotten');
  // A forgotten file found again gets a new node id (ids are never reused).
  const again = t.remember(t.root, 'f1', file(101));
  assert.ok(!ids.includes(again.id));
});

test('a rename moves the name and every path below it', () => {
  const t = new InodeTable();
  const src = t.remember(t.root, 'src', dir(2));
  const sub = t.remember(src, 'sub', dir(3));
  const f = t.remember(sub, 'f', file(4));
  const victim = t.remember(t.root, 'dest', dir(5));
  t.renamed(t.root, 'src', t.root, 'dest');
  assert.equal(t.path(f), '/dest/sub/f');
  assert.equal(t.child(t.root, 'src'), undefined);
  assert.equal(t.child(t.root, 'dest'), src);
  assert.equal(t.path(victim), undefined, 'the replaced directory lost its name');
  const g = t.remember(t.root, 'g', file(6));
  t.exchanged(t.root, 'g', sub, 'f');
  assert.equal(t.path(g), '/dest/sub/f');
  assert.equal(t.path(f), '/g');
});

test('an inode number reused by a file of another type is a new node', () => {
  const t = new InodeTable();
  const a = t.remember(t.root, 'x', file(7));
  const b = t.remember(t.root, 'x', dir(7));
  assert.notEqual(a.id, b.id);
  assert.equal(t.child(t.root, 'x'), b);
  assert.equal(t.path(a), undefined);
  assert.equal(t.get(a.id), a, 'the old node lives on until the kernel forgets it');
});

test('directories are never offered to be dropped (a mount point would lose its mounts)', () => {
  const t = new InodeTable();
  const d = t.remember(t.root, 'dev', dir(2));
  const f = t.remember(d, 'null', file(3));
  const open = t.remember(t.root, 'held', file(4));
  open.opens = 1;
  assert.deepEqual([...t.oldest(10)], [f]);
});

test('an inode number reused after the file lost its names is a new node (a hidden open file keeps its own)', () => {
  const t = new InodeTable();
  const old = t.remember(t.root, 'x', file(9));
  old.opens = 1;
  t.unlinked(t.root, 'x');
  old.hiddenPath = '/.fuse_hidden0000000000000002';
  const reused = t.remember(t.root, 'c', file(9));
  assert.notEqual(reused.id, old.id);
  assert.equal(t.path(reused), '/c');
  assert.equal(t.path(old), old.hiddenPath);
  const gone = t.remember(t.root, 'y', file(11));
  t.unlinked(t.root, 'y');
  assert.notEqual(t.remember(t.root, 'z', file(11)).id, gone.id);
});
