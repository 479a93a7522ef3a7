import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { HARD_LIMIT_MS, KILL_WAIT_MS, TERM_GRACE_MS, TERMINATED_STATUS, Termination } from '../../src/client/termination';

function setUp() {
  mock.timers.enable({ apis: ['setTimeout'] });
  const sent: string[] = [];
  let hardLimits = 0;
  const t = new Termination({ send: (name) => sent.push(name) }, () => hardLimits++);
  let gaveUp: number | undefined;
  void t.gaveUp.then((s) => (gaveUp = s));
  return { t, sent, hardLimits: () => hardLimits, gaveUp: () => gaveUp };
}
const flush = () => new Promise<void>((r) => setImmediate(r));

test('SIGTERM is forwarded; a command still running after the grace period is killed, then outrun gives up (143)', async (ctx) => {
  ctx.after(() => mock.timers.reset());
  const s = setUp();
  s.t.requested();
  assert.deepEqual(s.sent, ['TERM']);
  mock.timers.tick(TERM_GRACE_MS - 1);
  assert.deepEqual(s.sent, ['TERM'], 'the command has its grace period');
  mock.timers.tick(1);
  assert.deepEqual(s.sent, ['TERM', 'KILL']);
  mock.timers.tick(KILL_WAIT_MS);
  await flush();
  assert.equal(s.gaveUp(), TERMINATED_STATUS);
  assert.equal(TERMINATED_STATUS, 143);
  assert.equal(s.hardLimits(), 0);
  mock.timers.tick(HARD_LIMIT_MS - TERM_GRACE_MS - KILL_WAIT_MS);
  assert.equal(s.hardLimits(), 1, 'the last resort comes HARD_LIMIT_MS after SIGTERM');
});

test('every SIGTERM is forwarded, but the clock starts at the first', (ctx) => {
  ctx.after(() => mock.timers.reset());
  const s = setUp();
  s.t.requested();
  mock.timers.tick(TERM_GRACE_MS - 100);
  s.t.requested();
  mock.timers.tick(100);
  assert.deepEqual(s.sent, ['TERM', 'TERM', 'KILL']);
});

test('a command that ends in time: nothing more is sent, outrun does not give up', async (ctx) => {
  ctx.after(() => mock.timers.reset());
  const s = setUp();
  s.t.requested();
  mock.timers.tick(1000);
  s.t.dispose();
  mock.timers.tick(TERM_GRACE_MS + KILL_WAIT_MS);
  await flush();
  assert.deepEqual(s.sent, ['TERM']);
  assert.equal(s.gaveUp(), undefined);
});
