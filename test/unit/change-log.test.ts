// ChangeLog: a reply fills the caches only with news of paths that did not change after its
// request left and have no writes behind (the model fuzz's "write a, create b, fstat a
// gave 0" came from a listing taken while a's writes were still in the agent).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChangeLog } from '../../src/fs/agent/change-log';
import { WriteBehind } from '../../src/fs/agent/write-behind';

test('news of a path is fresh unless it changed after the request left', () => {
  const log = new ChangeLog(() => false);
  log.note('/d/a');
  const fresh = log.since();
  assert.ok(fresh('/d/a'), 'changed before the request: the reply has it');
  assert.ok(fresh('/d/b'));
  log.note('/d/b');
  assert.ok(!fresh('/d/b'), 'changed while the request was on its way');
  assert.ok(!fresh('/d'), 'its directory changed with it');
  assert.ok(fresh('/d/a') && fresh('/e'));
  assert.ok(log.since()('/d/b'), 'a later request sees the change');
});

test('a subtree renamed or removed makes everything under it stale', () => {
  const log = new ChangeLog(() => false);
  const fresh = log.since();
  log.noteTree('/t/d');
  assert.ok(!fresh('/t/d') && !fresh('/t/d/x/y') && !fresh('/t'));
  assert.ok(fresh('/t/dx') && fresh('/u'));
});

test('paths with writes behind are never fresh', () => {
  const pending = new Set(['/w']);
  const fresh = new ChangeLog((p) => pending.has(p)).since();
  assert.ok(!fresh('/w'));
  pending.clear();
  assert.ok(fresh('/w'));
});

test('past its bound the log forgets, and requests older than that see everything stale', () => {
  const log = new ChangeLog(() => false, 4);
  const old = log.since();
  for (let i = 0; i < 10; i++) log.note(`/f${i}`);
  assert.ok(!old('/never-changed'), 'cannot tell any more: stale');
  assert.ok(log.since()('/never-changed'));
});

test('writes landing on the local side are changes: a reply that crossed them is stale', async () => {
  let land!: () => void;
  const wb = new WriteBehind(() => new Promise<number>((r) => (land = () => r(0))));
  const log = new ChangeLog((p) => wb.busy(p));
  wb.onLanded((p) => log.note(p));
  await wb.write(1, '/f', 0, Buffer.from('x'));
  const fresh = log.since(); // e.g. a listing leaves while the write is behind
  const flushed = wb.flush(1);
  assert.ok(!fresh('/f'), 'still behind');
  await new Promise((r) => setImmediate(r)); // the run is sent
  land();
  assert.equal(await flushed, 0);
  assert.ok(!fresh('/f'), 'landed after the request left: the reply may not have it');
  assert.ok(log.since()('/f'));
});
