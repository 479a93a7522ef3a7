import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OutrunError } from '../../src/client/errors';
import { looksLikePool, parseArgs } from '../../src/client/cli-args';
import { mergeMembers, parseSshlogins } from '../../src/client/pool/sshlogins';
import { parsePoolConfig } from '../../src/client/pool/pool-config';
import { place, type PoolHost } from '../../src/client/pool/placement';
import { HostSlots } from '../../src/client/pool/slots';
import { HostStates, type HostState } from '../../src/client/pool/host-state';

const usage = (fn: () => unknown, re: RegExp) =>
  assert.throws(fn, (e: unknown) => e instanceof OutrunError && e.code === 'USAGE' && e.exitStatus === 2 && re.test(e.message));

test('-S: a pool (GNU parallel sshlogins) or a socket path', () => {
  for (const v of [':', '..', 'a,b', '2/box', '12/user@box']) assert.ok(looksLikePool(v), v);
  for (const v of ['/tmp/s', 'ctl.sock', './2/sock', '~/.ssh/%C', 'none', 'box']) assert.ok(!looksLikePool(v), v);
  const p = parseArgs(['-v', '-S', '1/box,1/box2', '-o', 'ControlPersist=30', '-S3/box3', 'make', '-j2']);
  assert.equal(p.action, 'pool');
  if (p.action !== 'pool') return;
  assert.deepEqual(p.pool, { logins: ['1/box,1/box2', '3/box3'] });
  assert.deepEqual(p.command, ['make', '-j2']);
  // The options, less the pool: each chosen host's run is these plus its destination.
  assert.deepEqual(p.baseArgv, ['-v', '-o', 'ControlPersist=30']);
  const clustered = parseArgs(['-vS', '2/a,b', 'true']);
  assert.equal(clustered.action === 'pool' && clustered.baseArgv.join(' '), '-v');
  const named = parseArgs(['-t', '@build', 'cc', '-c', 'x.c']);
  assert.deepEqual(named.action === 'pool' && [named.pool, named.command, named.baseArgv], [{ name: 'build' }, ['cc', '-c', 'x.c'], ['-t']]);
  // A socket path stays a socket path.
  const sock = parseArgs(['-S', '/tmp/ctl', 'box', 'true']);
  assert.equal(sock.action === 'run' && sock.options.controlPath, '/tmp/ctl');
  usage(() => parseArgs(['-S', '1/a,1/b']), /missing command to run on the pool/);
  usage(() => parseArgs(['-S', '1/a,1/b', '-S', '/tmp/ctl', 'true']), /not with a pool/);
  usage(() => parseArgs(['-S', '1/a,1/b', '--check', 'x']), /--check takes one destination, not a pool/);
  usage(() => parseArgs(['@bad/name', 'true']), /bad pool name/);
});

test('sshlogins: [N/][user@]host[:port], ":", "..", strict', () => {
  assert.deepEqual(parseSshlogins('2/box1,4/user@box2,box3,:,ssh://u@h:2222'), [
    { login: 'box1', slots: 2 },
    { login: 'user@box2', slots: 4 },
    { login: 'box3' },
    { login: ':' },
    { login: 'ssh://u@h:2222' },
  ]);
  const file = (text: string) => () => text;
  assert.deepEqual(parseSshlogins('..,1/x', file('# my hosts\n2/a\n\n b # the other\n')), [{ login: 'a', slots: 2 }, { login: 'b' }, { login: 'x', slots: 1 }]);
  usage(() => parseSshlogins('0/box'), /slot count must be 1 to 1024/);
  usage(() => parseSshlogins('1/'), /empty sshlogin/);
  usage(() => parseSshlogins('a,,b'), /empty sshlogin/);
  usage(() => parseSshlogins('ssh -p 2222 host'), /is an ssh command line/);
  usage(() => parseSshlogins('..', () => { throw Object.assign(new Error('x'), { code: 'ENOENT' }); }), /-S \.\.: cannot read .*sshloginfile: ENOENT/);
  assert.deepEqual(mergeMembers([{ login: 'a', slots: 1 }, { login: 'b' }, { login: 'a', slots: 3 }]), [{ login: 'a', slots: 3 }, { login: 'b' }]);
});

test('the config file: pool NAME SSHLOGINS, strict', () => {
  const pools = parsePoolConfig('# pools\npool build 2/box1, 4/user@box2\npool one box\n', '/c');
  assert.deepEqual([...pools.keys()], ['build', 'one']);
  assert.deepEqual(pools.get('build'), [{ login: 'box1', slots: 2 }, { login: 'user@box2', slots: 4 }]);
  usage(() => parsePoolConfig('pol build a\n', '/c'), /^\/c:1: unknown keyword 'pol'/);
  usage(() => parsePoolConfig('pool x\n', '/c'), /pool x lists no sshlogin/);
  usage(() => parsePoolConfig('pool x a\npool x b\n', '/c'), /\/c:2: pool x is defined twice/);
});

/** Slots as a map of counts; each take and release recorded. */
function fakeSlots(held: Record<string, number>) {
  return (key: string) => ({
    held: (count: number) => Math.min(count, held[key] ?? 0),
    tryTake: (count: number) => {
      if ((held[key] ?? 0) >= count) return undefined;
      const index = held[key] ?? 0;
      held[key] = index + 1;
      return { index, release: () => void (held[key] = (held[key] ?? 1) - 1) };
    },
  });
}
const host = (login: string, slots?: number): PoolHost => ({ member: { login, ...(slots ? { slots } : {}) }, key: login });

test('placement: the least busy host with a free slot; ties to fewer runs, then the order given', async () => {
  const deps = (held: Record<string, number>, states: Record<string, HostState> = {}) => ({
    state: (k: string) => states[k] ?? {},
    slots: fakeSlots(held),
    now: () => 1_000_000,
    sleep: async () => undefined,
  });
  const hosts = [host('a', 2), host('b', 2), host('c', 2)];
  assert.equal((await place(hosts, new Set(), deps({})))!.host.key, 'a');
  assert.equal((await place(hosts, new Set(), deps({ a: 1 })))!.host.key, 'b');
  // Load against CPUs: b is loaded, c is idle.
  const p = (await place(hosts, new Set(), deps({ a: 2 }, { b: { load1: 3, cpus: 2, probedAt: 999_000 }, c: { load1: 0.5, cpus: 2, probedAt: 990_000 } })))!;
  assert.equal(p.host.key, 'c');
  assert.equal(p.why, 'slot 1 of 2, 0 other runs of yours there, load 0.50 on 2 CPUs (probed 10 s ago); the least busy of 2 with a free slot');
  // Without N/: as many slots as the probe saw CPUs (1 before).
  assert.match((await place([host('x')], new Set(), deps({}, { x: { cpus: 4 } })))!.why, /^slot 1 of 4/);
  // A skipped host is passed over; when all are, the first to come back is tried.
  const skipped = { a: { downUntil: 2_000_000 }, b: { downUntil: 1_500_000 } };
  assert.equal((await place(hosts, new Set(), deps({}, skipped)))!.host.key, 'c');
  const allDown = { ...skipped, c: { downUntil: 3_000_000 } };
  const back = (await place(hosts, new Set(), deps({}, allDown)))!;
  assert.equal(back.host.key, 'b');
  assert.match(back.why, /every host was being skipped/);
  // Hosts that failed for this run are not tried again; none left: undefined.
  assert.equal(await place(hosts, new Set(['a', 'b', 'c']), deps({})), undefined);
});

test('placement: a full pool waits for a slot, says so once', async () => {
  const held: Record<string, number> = { a: 1, b: 1 };
  const lines: string[] = [];
  let sleeps = 0;
  const p = await place([host('a', 1), host('b', 1)], new Set(), {
    state: () => ({}),
    slots: fakeSlots(held),
    now: () => 0,
    sleep: async () => {
      if (++sleeps === 3) held.b = 0; // another run's end
    },
    waiting: (l) => lines.push(l),
  });
  assert.equal(p!.host.key, 'b');
  assert.equal(sleeps, 3);
  assert.deepEqual(lines, ['every slot of the pool is taken (a 1, b 1); waiting for one']);
});

test('slots are flock(2)s: held across processes, free again when the holder dies', async () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'outrun-slots-'));
  try {
    const slots = new HostSlots('u@h:22', path.join(base, 'pool'));
    const a = slots.tryTake(2)!;
    assert.equal(a.index, 0);
    assert.equal(slots.held(2), 1);
    // Another process takes the other slot and holds it.
    const mod = path.resolve(__dirname, '../../src/client/pool/slots.js');
    const child = spawn(process.execPath, ['-e', `const { HostSlots } = require(${JSON.stringify(mod)}); const s = new HostSlots('u@h:22', ${JSON.stringify(path.join(base, 'pool'))}).tryTake(2); console.log(s ? s.index : 'none'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const first = await new Promise<string>((resolve) => child.stdout.once('data', (d) => resolve(String(d).trim())));
    assert.equal(first, '1');
    assert.equal(slots.held(2), 2);
    assert.equal(slots.tryTake(2), undefined);
    a.release();
    assert.equal(slots.held(2), 1);
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    assert.equal(slots.held(2), 0, 'the dead holder\'s slot is free');
    assert.equal(fs.statSync(path.join(base, 'pool')).mode & 0o777, 0o700);
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test('host state: probed figures and skips, read back strictly', () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'outrun-hs-'));
  try {
    const s = new HostStates(path.join(base, 'pool'));
    assert.deepEqual(s.get('k'), {});
    s.probed('k', 1.25, 8, 1000);
    assert.deepEqual(s.get('k'), { load1: 1.25, cpus: 8, probedAt: 1000, downUntil: undefined, downWhy: undefined });
    s.down('k', 'connection refused', 2000);
    assert.equal(s.get('k').downUntil, 62_000);
    assert.equal(s.get('k').downWhy, 'connection refused');
    assert.equal(s.get('k').load1, 1.25);
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});
