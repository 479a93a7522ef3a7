// HiddenFiles: what the agent answers for a file libfuse hid because it was unlinked while open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HiddenFiles } from '../../src/fs/agent/hidden-files';

test('only libfuse hidden names are recognised', () => {
  assert.ok(HiddenFiles.isHiddenName('/d/.fuse_hidden0000007200000002'));
  assert.ok(!HiddenFiles.isHiddenName('/d/.fuse_hidden'));
  assert.ok(!HiddenFiles.isHiddenName('/d/.fuse_hidden0000007200000002x'));
  assert.ok(!HiddenFiles.isHiddenName('/d/x.fuse_hidden0000007200000002'));
});

test('a hidden file has one link less, grows with writes, shrinks with truncates, goes at unlink', () => {
  const h = new HiddenFiles();
  h.add('/d/.fuse_hidden0000000100000001', { mode: 0o100644, nlink: 1, size: 10 });
  assert.equal(h.get('/d/.fuse_hidden0000000100000001')?.nlink, 0);
  h.wrote('/d/.fuse_hidden0000000100000001', 5);
  assert.equal(h.get('/d/.fuse_hidden0000000100000001')?.size, 10);
  h.wrote('/d/.fuse_hidden0000000100000001', 105);
  assert.equal(h.get('/d/.fuse_hidden0000000100000001')?.size, 105);
  h.truncated('/d/.fuse_hidden0000000100000001', 3);
  assert.equal(h.get('/d/.fuse_hidden0000000100000001')?.size, 3);
  assert.ok(h.remove('/d/.fuse_hidden0000000100000001'));
  assert.equal(h.get('/d/.fuse_hidden0000000100000001'), undefined);
  assert.ok(!h.remove('/d/.fuse_hidden0000000100000001'));
});

test('a directory holding a hidden file is not empty, and renaming it carries the file along', () => {
  const h = new HiddenFiles();
  h.add('/a/b/.fuse_hidden0000000100000001', { nlink: 2 });
  assert.ok(h.hasUnder('/a'));
  assert.ok(h.hasUnder('/a/b'));
  assert.ok(!h.hasUnder('/a/bb'));
  assert.ok(h.hasUnder('/'));
  h.moved('/a', '/z');
  assert.ok(!h.hasUnder('/a'));
  assert.equal(h.get('/z/b/.fuse_hidden0000000100000001')?.nlink, 1);
});
