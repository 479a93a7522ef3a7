// Unit: FuseOpsByRun, the RunRevalidation of today's FUSE layer: each run's start makes a new
// generation of operations (path operations go to it), a handle keeps going to the
// generation that opened it under a number of our own, a generation with nothing open is let
// go, the persistent cache is reopened and revalidated through the client's answer, and
// runs asking during a revalidation share the next one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PathOps as FuseOps } from '../../src/fs/agent/path-ops';
import { FuseOpsByRun } from '../../src/remote/fuse-ops-by-run';
import type { PersistentCache } from '../../src/fs/agent/persistent-cache';
import type { WriteBehind } from '../../src/fs/agent/write-behind';

function fakeWriteBehind() {
  const listeners: ((p: string) => void)[] = [];
  return { wb: { onLanded: (l: (p: string) => void) => listeners.push(l), bytesPending: 0 } as unknown as WriteBehind, land: (p: string) => listeners.forEach((l) => l(p)) };
}

/** Operations of generation `g`: open hands out 7 (every generation the same number), the rest say who answered. */
function makeOps(log: string[], landed: string[]) {
  let g = 0;
  return (_p: PersistentCache | undefined, wb: WriteBehind): FuseOps => {
    const me = g++;
    wb.onLanded((path) => landed.push(`${me}:${path}`));
    return {
      getattr: (path: string, cb: (e: number, x?: unknown) => void) => (log.push(`${me} getattr ${path}`), cb(0, me)),
      open: (path: string, _flags: number, cb: (e: number, fd?: number) => void) => (log.push(`${me} open ${path}`), cb(0, 7)),
      read: (_path: string, fd: number, _b: Buffer, _l: number, _pos: number, cb: (n: number) => void) => (log.push(`${me} read fd ${fd}`), cb(0)),
      release: (_path: string, fd: number, cb: (e: number) => void) => (log.push(`${me} release fd ${fd}`), cb(0)),
      create: (path: string, _flags: number, _mode: number, cb: (e: number, fd?: number) => void) => (log.push(`${me} create ${path}`), cb(0, 7)),
      blobFd: ((fd: number) => 100 * (me + 1) + fd) as unknown as FuseOps[string],
      write: (_path: string, fd: number, _b: Buffer, len: number, _pos: number, cb: (n: number) => void) => (log.push(`${me} write fd ${fd}`), cb(len)),
    };
  };
}

const call = (ops: FuseOps, name: string, ...args: unknown[]) =>
  new Promise<unknown[]>((resolve) => ops[name]!(...args, (...r: unknown[]) => resolve(r)));

test('paths go to the newest generation, handles to the one that opened them', async () => {
  const log: string[] = [];
  const landed: string[] = [];
  const { wb, land } = fakeWriteBehind();
  const byRun = new FuseOpsByRun(makeOps(log, landed), wb, undefined, async () => undefined);
  const [, fdA] = await call(byRun.ops, 'open', '/a', 0);
  await byRun.runStarts(async () => 'all');
  const [, fdB] = await call(byRun.ops, 'open', '/b', 0);
  assert.notEqual(fdA, fdB, 'both generations said 7; the kernel sees two handles');
  await call(byRun.ops, 'read', '/a', fdA, Buffer.alloc(1), 1, 0);
  await call(byRun.ops, 'read', '/b', fdB, Buffer.alloc(1), 1, 0);
  const [st] = await call(byRun.ops, 'getattr', '/c');
  assert.equal(st, 0);
  assert.deepEqual(log, ['0 open /a', '1 open /b', '0 read fd 7', '1 read fd 7', '1 getattr /c']);
  land('/x');
  assert.deepEqual(landed, ['0:/x', '1:/x'], 'a generation with a handle open still hears of writes landing');
  await call(byRun.ops, 'release', '/a', fdA);
  land('/y');
  assert.deepEqual(landed.slice(2), ['1:/y'], 'the old generation is let go once nothing is open');
  const [err] = await call(byRun.ops, 'read', '/a', fdA, Buffer.alloc(1), 1, 0);
  assert.equal(err, -9, 'a released handle is unknown (EBADF)');
});

test('a write through an older generation\'s handle makes the newest one start again', async () => {
  const log: string[] = [];
  const { wb } = fakeWriteBehind();
  const byRun = new FuseOpsByRun(makeOps(log, []), wb, undefined, async () => undefined);
  const [, fd] = await call(byRun.ops, 'open', '/f', 0);
  await byRun.runStarts(async () => 'all');
  await call(byRun.ops, 'getattr', '/f');
  const [n] = await call(byRun.ops, 'write', '/f', fd, Buffer.alloc(3), 3, 0);
  assert.equal(n, 3, 'the write\'s result comes back unchanged');
  await call(byRun.ops, 'getattr', '/f');
  assert.deepEqual(log, ['0 open /f', '1 getattr /f', '0 write fd 7', '2 getattr /f']);
});

test('handles from create are ours too; a synchronous handle query reaches its generation and answers', async () => {
  const log: string[] = [];
  const { wb } = fakeWriteBehind();
  const byRun = new FuseOpsByRun(makeOps(log, []), wb, undefined, async () => undefined);
  const [, fdA] = await call(byRun.ops, 'create', '/a', 0, 0o644);
  await byRun.runStarts(async () => 'all');
  const [, fdB] = await call(byRun.ops, 'create', '/b', 0, 0o644);
  assert.notEqual(fdA, fdB);
  const blobFd = byRun.ops.blobFd as unknown as (fd: number) => number;
  assert.equal(blobFd(fdA as number), 107, 'generation 0 answered for its own handle 7');
  assert.equal(blobFd(fdB as number), 207, 'generation 1 answered for its own handle 7');
  assert.equal(blobFd(12345), undefined);
});

test('a run start reopens the persistent cache and drops what the client found stale', async () => {
  const { wb } = fakeWriteBehind();
  const dropped: unknown[] = [];
  let saved = 0;
  const cache = (name: string) =>
    ({
      name,
      save: async () => void saved++,
      load: async () => undefined,
      probes: () => Buffer.from(name),
      dropStale: async (i: number[]) => void dropped.push([name, ...i]),
      dropAll: async () => void dropped.push([name, 'all']),
    }) as unknown as PersistentCache;
  let n = 0;
  const byRun = new FuseOpsByRun(makeOps([], []), wb, cache('first'), async () => cache(`re${++n}`));
  const asked: string[] = [];
  await byRun.runStarts(async (probes) => (asked.push(probes.toString()), [2, 5]));
  await byRun.runStarts(async (probes) => (asked.push(probes.toString()), 'all'));
  assert.equal(saved, 2);
  assert.deepEqual(asked, ['re1', 're2']);
  assert.deepEqual(dropped, [['re1', 2, 5], ['re2', 'all']]);
  assert.equal((byRun.persistent as unknown as { name: string }).name, 're2');
});

test('runs asking while a revalidation is under way share the next one', async () => {
  const { wb } = fakeWriteBehind();
  let passes = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const byRun = new FuseOpsByRun(makeOps([], []), wb, { save: async () => undefined } as unknown as PersistentCache, async () => {
    passes++;
    if (passes === 1) await gate;
    return { load: async () => undefined, probes: () => Buffer.alloc(0), dropStale: async () => undefined, save: async () => undefined } as unknown as PersistentCache;
  });
  const first = byRun.runStarts(async () => []);
  await new Promise((r) => setImmediate(r));
  const later = Array.from({ length: 5 }, () => byRun.runStarts(async () => []));
  release();
  await Promise.all([first, ...later]);
  assert.equal(passes, 2, 'one pass for the first run, one shared by the five that asked during it');
});
