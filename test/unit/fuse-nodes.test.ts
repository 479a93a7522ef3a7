// FuseNodes over fake path operations and a fake kernel: what the kernel is told it may
// keep, and that every change made through it drops what the addon would repeat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FuseNodes, type KernelLink } from '../../src/fs/agent/fuse-nodes';
import { Opcode } from '../../src/remote/fuse/protocol';
import type { InHeader } from '../../src/remote/fuse/wire-types';
import type { CachedAttr } from '../../src/fs/agent/attr-cache';

interface Fake {
  nodes: FuseNodes;
  kernel: KernelLink & { held: Map<number, Buffer>; notices: Buffer[] };
  files: Map<string, CachedAttr>;
}

function fake(maxNodes?: number): Fake {
  const files = new Map<string, CachedAttr>([['/', { ino: 1, dev: 1, mode: 0o040755, nlink: 2 }]]);
  let ino = 100;
  const ops = {
    getattr: (p: string, cb: Function) => (files.has(p) ? cb(0, files.get(p)) : cb(-2)),
    readdir: (p: string, cb: Function) => {
      const kids = [...files.keys()].filter((k) => k !== p && k.startsWith(p === '/' ? '/' : p + '/') && !k.slice(p.length + 1).includes('/'));
      cb(0, ['.', '..', ...kids.map((k) => k.slice(k.lastIndexOf('/') + 1))], [undefined, undefined, ...kids.map((k) => files.get(k))]);
    },
    create: (p: string, _flags: number, mode: number, cb: Function) => {
      const a = { ino: ino++, dev: 1, mode: 0o100000 | mode, nlink: 1, size: 0 };
      files.set(p, a);
      cb(0, 7, a);
    },
    write: (p: string, _fd: number, _buf: Buffer, len: number, pos: number, cb: Function) => {
      const a = files.get(p)!;
      files.set(p, { ...a, size: Math.max(Number(a.size), pos + len), mtime: { sec: Date.now(), nsec: 0 } });
      cb(len);
    },
    unlink: (p: string, cb: Function) => (files.delete(p) ? cb(0) : cb(-2)),
    link: (from: string, to: string, cb: Function) => {
      const a = { ...files.get(from)!, nlink: 2 };
      files.set(from, a);
      files.set(to, a);
      cb(0);
    },
    release: (_p: string, _fd: number, cb: Function) => cb(0),
  };
  const held = new Map<number, Buffer>();
  const notices: Buffer[] = [];
  const kernel = {
    held,
    notices,
    negotiated: () => ({ minor: 40, flags: 0n, maxWrite: 1 << 20, maxPages: 256, passthrough: false, noOpendir: true }),
    notify: async (m: Buffer) => void notices.push(m),
    backingOpen: () => -1,
    backingClose: () => undefined,
    attrSet: (id: number, out: Buffer) => void held.set(id, out),
    attrDrop: (id: number) => void held.delete(id),
    passthroughHold: () => 0,
    passthroughAdopt: () => false,
    passthroughRelease: () => undefined,
    passthroughTakeOpens: () => 0,
    passthroughStop: () => 0,
  };
  const nodes = new FuseNodes(ops, kernel, { entryTimeoutS: 10, attrTimeoutS: 10, negativeTimeoutS: 10, maxNodes });
  return { nodes, kernel, files };
}

const hdr = (nodeid: number): InHeader => ({ len: 0, opcode: 0, unique: 1n, nodeid, uid: 0, gid: 0, pid: 1 });
const name = (n: string) => Buffer.from(n + '\0');
const entryNode = (b: Buffer) => Number(b.readBigUInt64LE(0));

test('a created file: an entry, attributes held natively until a write drops them', async () => {
  const { nodes, kernel } = fake();
  const h = nodes.handlers();
  const body = Buffer.concat([Buffer.alloc(16), name('f')]);
  body.writeUInt32LE(0o1, 0); // O_WRONLY
  body.writeUInt32LE(0o644, 4);
  const [entry] = (await h[Opcode.CREATE]!(hdr(1), body)) as Buffer[];
  const id = entryNode(entry!);
  assert.ok(id > 1);
  assert.ok(kernel.held.has(id), 'its attributes may be repeated by the addon');
  const write = Buffer.alloc(40 + 5);
  write.writeUInt32LE(5, 16);
  await h[Opcode.WRITE]!(hdr(id), write);
  assert.ok(!kernel.held.has(id), 'a write makes them stale');
  const attr = (await h[Opcode.GETATTR]!(hdr(id), Buffer.alloc(16))) as Buffer;
  assert.equal(Number(attr.readBigUInt64LE(16 + 8)), 5, 'size after the write');
  assert.ok(kernel.held.has(id));
});

test('hard links are one node; lookups are counted and forgotten', async () => {
  const { nodes, files } = fake();
  files.set('/a', { ino: 5, dev: 1, mode: 0o100644, nlink: 1 });
  const h = nodes.handlers();
  const a = entryNode((await h[Opcode.LOOKUP]!(hdr(1), name('a'))) as Buffer);
  const linkBody = Buffer.concat([Buffer.alloc(8), name('b')]);
  linkBody.writeBigUInt64LE(BigInt(a), 0);
  const b = entryNode((await h[Opcode.LINK]!(hdr(1), linkBody)) as Buffer);
  assert.equal(a, b, 'one kernel inode for both names');
  assert.equal(nodes.table.get(a)!.lookups, 2);
  const forget = Buffer.alloc(8);
  forget.writeBigUInt64LE(2n, 0);
  h[Opcode.FORGET]!({ ...hdr(a) }, forget);
  assert.equal(nodes.table.get(a), undefined);
  assert.equal(nodes.table.size, 1);
});

test('an absent name is a negative entry; READDIRPLUS counts a lookup per entry sent', async () => {
  const { nodes, files } = fake();
  for (let i = 0; i < 50; i++) files.set(`/f${i}`, { ino: 200 + i, dev: 1, mode: 0o100644, nlink: 1 });
  const h = nodes.handlers();
  const neg = (await h[Opcode.LOOKUP]!(hdr(1), name('nope'))) as Buffer;
  assert.equal(entryNode(neg), 0, 'node id 0: a cached "no such name"');
  const read = Buffer.alloc(40);
  read.writeUInt32LE(1024, 16); // room for a few entries only
  const first = (await h[Opcode.READDIRPLUS]!(hdr(1), read)) as Buffer;
  assert.ok(first.length > 0 && first.length <= 1024);
  const counted = nodes.table.size - 1;
  assert.ok(counted > 0 && counted < 50, `only the entries that fit were counted (${counted})`);
});

test('invalidatePath tells the kernel to drop the entry and the inode', async () => {
  const { nodes, kernel, files } = fake();
  files.set('/x', { ino: 9, dev: 1, mode: 0o100644, nlink: 1 });
  const h = nodes.handlers();
  const id = entryNode((await h[Opcode.LOOKUP]!(hdr(1), name('x'))) as Buffer);
  nodes.invalidatePath('/x');
  assert.ok(!kernel.held.has(id));
  const codes = kernel.notices.map((m) => m.readInt32LE(4));
  assert.deepEqual(codes, [2, 3], 'inval_inode, then inval_entry');
  assert.equal(Number(kernel.notices[0]!.readBigUInt64LE(16)), id);
  assert.equal(kernel.notices[1]!.subarray(32, 33).toString(), 'x');
});

test('past its bound the table asks the kernel to drop the oldest names, and shrinks as it forgets', async () => {
  const { nodes, kernel, files } = fake(1000);
  for (let i = 0; i < 1500; i++) files.set(`/n${i}`, { ino: 1000 + i, dev: 1, mode: 0o100644, nlink: 1 });
  const h = nodes.handlers();
  for (let i = 0; i < 1500; i++) await h[Opcode.LOOKUP]!(hdr(1), name(`n${i}`));
  const asked = kernel.notices.filter((m) => m.readInt32LE(4) === 3);
  assert.ok(asked.length >= 200, `inval_entry sent for the oldest names (${asked.length})`);
  const askedNames = asked.map((m) => m.subarray(32, m.length - 1).toString());
  assert.equal(new Set(askedNames).size, askedNames.length, 'no name asked twice');
  assert.equal(asked[0]!.subarray(32, 34).toString(), 'n0', 'oldest first');
  // The kernel drops them and forgets their nodes.
  for (const m of asked) {
    const id = nodes.table.child(nodes.table.root, m.subarray(32, m.length - 1).toString())!.id;
    const forget = Buffer.alloc(8);
    forget.writeBigUInt64LE(1n, 0);
    h[Opcode.FORGET]!(hdr(id), forget);
  }
  assert.ok(nodes.table.size <= 1500 - asked.length + 1);
});
