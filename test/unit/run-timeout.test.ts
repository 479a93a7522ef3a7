import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  CLEANUP_LIMIT_MS,
  DEFAULT_KILL_AFTER_MS,
  KILL_WAIT_MS,
  RunTimeout,
  TIMED_OUT_KILLED_STATUS,
  TIMED_OUT_STATUS,
  parseDuration,
} from '../../src/client/run-timeout';
import { parseArgs } from '../../src/client/cli-args';
import { OutrunError } from '../../src/client/errors';

test('DURATION: seconds by default, s m h d suffixes, fractions and exponents, rounded up to ms', () => {
  const cases: [string, number][] = [
    ['1', 1000],
    ['0', 0],
    ['-0', 0],
    ['+3', 3000],
    ['1.5', 1500],
    ['.5', 500],
    ['1.', 1000],
    ['5s', 5000],
    ['2m', 120_000],
    ['1.5m', 90_000],
    ['1.5h', 5_400_000],
    ['0.5d', 43_200_000],
    ['1e2', 100_000],
    ['1E-3s', 1],
    ['0.0001', 1],
    ['00010', 10_000],
    ['30d', 30 * 86_400_000],
    ['1e400', Infinity],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
  for (const bad of ['', 's', '.', '1x', '1ss', '1 ', ' 1s', '1.2.3', 'abc', '1m5', '-1', '-0.5s', '1e', '1e+', '..5', '1 s', 'nan', '1S', '1M'])
    assert.equal(parseDuration(bad), undefined, JSON.stringify(bad));
});

// Differential: what timeout(1) itself takes. `timeout -- D true` exits 125 with
// "invalid time interval" for a DURATION it refuses, 0 otherwise.
const hasTimeout = spawnSync('timeout', ['--version']).status === 0;
const timeoutTakes = (d: string) => {
  const r = spawnSync('timeout', ['--', d, 'true'], { encoding: 'utf8' });
  // 124: taken, and so short that even true(1) ran out of it.
  if (r.status !== 0 && r.status !== 124 && r.status !== 125) throw new Error(`timeout ${d}: ${r.status} ${r.stderr}`);
  return r.status !== 125;
};

test('DURATION: accepted and refused as timeout(1) does (differential)', { skip: !hasTimeout && 'no timeout(1) here' }, () => {
  const corpus = [
    '1', '0', '-0', '+3', '1.5', '.5', '1.', '5s', '2m', '1.5m', '1.5h', '0.5d', '1e2', '1E-3s', '0.0001', '00010', '30d',
    '', 's', '.', '1x', '1ss', '1 ', '1.2.3', 'abc', '1m5', '-1', '-0.5s', '1e', '1e+', '..5', '1 s', 'nan', '1S', '1M', '5w',
  ];
  for (const d of corpus) assert.equal(parseDuration(d) !== undefined, timeoutTakes(d), JSON.stringify(d));
});

test('DURATION: known differences, strtod forms timeout(1) takes and outrun refuses (leading blanks, hex, inf)', { skip: !hasTimeout && 'no timeout(1) here' }, () => {
  for (const d of [' 1', '0x10', 'inf', 'infinity', 'INF']) {
    assert.equal(timeoutTakes(d), true, d);
    assert.equal(parseDuration(d), undefined, d);
  }
});

test('--timeout and --kill-after on the command line; bad ones are usage errors (exit 2, one line)', () => {
  const p = parseArgs(['--timeout', '1.5m', '--kill-after=2', 'box', 'true']);
  assert.equal(p.options.timeoutMs, 90_000);
  assert.equal(p.options.killAfterMs, 2000);
  assert.equal(parseArgs(['--timeout=0', 'box', 'true']).options.timeoutMs, 0);
  const usage = (argv: string[], re: RegExp) =>
    assert.throws(() => parseArgs(argv), (e: unknown) => e instanceof OutrunError && e.exitStatus === 2 && re.test(e.oneLine()) && !e.oneLine().includes('\n'));
  usage(['--timeout', '1x', 'box', 'true'], /--timeout '1x' is not a duration/);
  usage(['--timeout', '-1', 'box', 'true'], /--timeout '-1' is not a duration/);
  usage(['--kill-after', 'soon', '--timeout', '1', 'box', 'true'], /--kill-after 'soon' is not a duration/);
  usage(['--timeout'], /--timeout needs an argument/);
  usage(['--kill-after', '1', 'box', 'true'], /--kill-after needs --timeout/);
  usage(['--timeout', '1', '--check', 'box'], /--timeout bounds a run, not --check/);
  usage(['--timeout', '1', '-O', 'exit', 'box'], /--timeout bounds a run, not -O exit/);
});

function setUp(limitMs: number, killAfterMs?: number, elapsedMs = 0) {
  mock.timers.enable({ apis: ['setTimeout'] });
  const sent: string[] = [];
  const exits: number[] = [];
  const t = new RunTimeout(limitMs, killAfterMs, (s) => exits.push(s), elapsedMs);
  let gaveUp: number | undefined;
  void t.gaveUp.then((s) => (gaveUp = s));
  return { t, sent, exits, gaveUp: () => gaveUp, signal: (name: string) => sent.push(name) };
}
const flush = () => new Promise<void>((r) => setImmediate(r));

test('a command that ends in time keeps its own status, 124 included; nothing is sent', (ctx) => {
  ctx.after(() => mock.timers.reset());
  const s = setUp(1000);
  s.t.commandStarted(s.signal);
  mock.timers.tick(999);
  assert.equal(s.t.statusOf(124), 124);
  assert.equal(s.t.statusOf(3), 3);
  s.t.dispose();
  mock.timers.tick(60_000);
  assert.deepEqual(s.sent, []);
  assert.deepEqual(s.exits, []);
});

test('the limit counts from the process start: the time already passed is taken off', (ctx) => {
  ctx.after(() => mock.timers.reset());
  const s = setUp(1000, undefined, 400);
  s.t.commandStarted(s.signal);
  mock.timers.tick(599);
  assert.deepEqual(s.sent, []);
  mock.timers.tick(1);
  assert.deepEqual(s.sent, ['TIMEOUT']);
});

test('out of time: TIMEOUT (TERM to the group), KILL after the grace, then 137 if the end is not learnt', async (ctx) => {
  ctx.after(() => mock.timers.reset());
  const s = setUp(1000, 3000);
  s.t.commandStarted(s.signal);
  mock.timers.tick(1000);
  assert.deepEqual(s.sent, ['TIMEOUT']);
  assert.equal(s.t.statusOf(143), TIMED_OUT_STATUS, 'ended by the TERM: 124');
  mock.timers.tick(2999);
  assert.deepEqual(s.sent, ['TIMEOUT'], 'the grace');
  mock.timers.tick(1);
  assert.deepEqual(s.sent, ['TIMEOUT', 'KILL']);
  assert.equal(s.t.statusOf(137), TIMED_OUT_KILLED_STATUS);
  assert.equal(s.t.statusOf(0), 137, 'once the KILL went, 137 whatever the command said (as timeout(1), killed by its own group KILL)');
  mock.timers.tick(KILL_WAIT_MS);
  await flush();
  assert.equal(s.gaveUp(), 137);
  assert.deepEqual(s.exits, []);
  mock.timers.tick(CLEANUP_LIMIT_MS);
  assert.deepEqual(s.exits, [137], 'the last resort');
});

test('the default grace is DEFAULT_KILL_AFTER_MS (10 s); --kill-after 0 kills at once', (ctx) => {
  ctx.after(() => mock.timers.reset());
  assert.equal(DEFAULT_KILL_AFTER_MS, 10_000);
  const s = setUp(100);
  s.t.commandStarted(s.signal);
  // (The mock runs a timer's callback at the end of the tick: one tick per step.)
  mock.timers.tick(100);
  mock.timers.tick(DEFAULT_KILL_AFTER_MS - 1);
  assert.deepEqual(s.sent, ['TIMEOUT']);
  mock.timers.tick(1);
  assert.deepEqual(s.sent, ['TIMEOUT', 'KILL']);
  mock.timers.reset();
  const z = setUp(100, 0);
  z.t.commandStarted(z.signal);
  mock.timers.tick(100);
  mock.timers.tick(0);
  assert.deepEqual(z.sent, ['TIMEOUT', 'KILL']);
});

test('a command that ends after the TERM: no KILL, 124, and the last resort does not fire once the run is over', (ctx) => {
  ctx.after(() => mock.timers.reset());
  const s = setUp(1000, 5000);
  s.t.commandStarted(s.signal);
  mock.timers.tick(1000);
  assert.equal(s.t.statusOf(143), 124);
  s.t.dispose();
  mock.timers.tick(5000 + KILL_WAIT_MS - 1);
  assert.deepEqual(s.sent, ['TIMEOUT']);
});

test('out of time before the command started: the stop handler runs (direct run), no command is started', (ctx) => {
  ctx.after(() => mock.timers.reset());
  const s = setUp(500);
  let stopped = 0;
  s.t.onExpiryBeforeStart(() => stopped++);
  mock.timers.tick(500);
  assert.equal(stopped, 1);
  assert.equal(s.t.expired, true);
  assert.equal(s.t.stopsBeforeStart, true);
  assert.deepEqual(s.sent, []);
});

test('out of time before the command started, no stop handler (a master has the spec): ended once it starts', (ctx) => {
  ctx.after(() => mock.timers.reset());
  const s = setUp(500, 1000);
  mock.timers.tick(500);
  assert.equal(s.t.stopsBeforeStart, false);
  s.t.commandStarted(s.signal);
  assert.deepEqual(s.sent, ['TIMEOUT']);
  mock.timers.tick(1000);
  assert.deepEqual(s.sent, ['TIMEOUT', 'KILL']);
});

test('limits past 2^31-1 ms (Node fires those at once) wait their whole time', (ctx) => {
  ctx.after(() => mock.timers.reset());
  const s = setUp(30 * 86_400_000);
  s.t.commandStarted(s.signal);
  mock.timers.tick(2 ** 31);
  assert.deepEqual(s.sent, []);
  mock.timers.tick(30 * 86_400_000 - 2 ** 31 - 10);
  assert.deepEqual(s.sent, []);
  mock.timers.tick(20);
  assert.deepEqual(s.sent, ['TIMEOUT']);
});
