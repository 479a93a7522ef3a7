import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { pb } from '../../src/wire/schema';
import { fileSystemMethods } from '../../src/wire/services';
import { DEFAULT_LIMITS, LocalFileServer } from '../../src/fs/local/local-server';

const E = os.constants.errno;
const C = fs.constants;

// The session serves with umask 0: modes arrive already masked by the remote command's umask.
process.umask(0);

interface Codec<T> {
  encode(p: any): { finish(): Uint8Array };
  decode(b: Uint8Array): T;
}
/** Exactly what a handler receives from the wire: encoded, then decoded. */
function rq<T>(cls: Codec<T>, props: object): T {
  return cls.decode(cls.encode(props).finish());
}
const P = (p: string | Buffer) => rq(pb.PathRequest, { path: Buffer.isBuffer(p) ? p : Buffer.from(p) });
const D = (p: string | Buffer, nestedEntries = 0) => rq(pb.ReaddirRequest, { path: Buffer.isBuffer(p) ? p : Buffer.from(p), nestedEntries });

let root: string;
const at = (...parts: string[]) => path.join(root, ...parts);

before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'outrun-local-server-'));
});
after(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function expectTimespec(ts: pb.Timespec.$Properties | null | undefined, ns: bigint): void {
  assert.ok(ts);
  assert.deepEqual({ sec: ts.sec, nsec: ts.nsec }, { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) });
}

/** A directory's entries as readdir(3) gives them (fs.readdirSync sorts them). */
function inDiskOrder(dir: string): fs.Dirent[] {
  const h = fs.opendirSync(dir);
  const out: fs.Dirent[] = [];
  for (let e = h.readSync(); e; e = h.readSync()) out.push(e);
  h.closeSync();
  return out;
}

describe('errno constants', () => {
  test('are the Linux numbers', () => {
    assert.equal(E.ENOENT, 2);
    assert.equal(E.EBADF, 9);
    assert.equal(E.EINVAL, 22);
    assert.equal(E.EMFILE, 24);
  });
});

describe('Getattr', () => {
  const srv = new LocalFileServer();
  after(() => srv.closeAll());

  test('a regular file: every field matches lstat, times to the nanosecond', async () => {
    const f = at('getattr-file');
    fs.writeFileSync(f, 'hello, world\n');
    fs.chmodSync(f, 0o604);
    execFileSync('touch', ['-m', '-d', '@1234567890.123456789', f]);
    const st = fs.lstatSync(f, { bigint: true });
    const r = await srv.handlers.Getattr(P(f));
    assert.equal(r.errno, 0);
    const a = r.attr!;
    assert.equal(a.size, 13);
    assert.equal(a.mode, C.S_IFREG | 0o604);
    assert.equal(a.uid, process.getuid!());
    assert.equal(a.gid, Number(st.gid));
    assert.equal(a.nlink, 1);
    assert.equal(a.ino, Number(st.ino));
    assert.equal(a.rdev, 0);
    assert.equal(a.blocks, Number(st.blocks));
    assert.equal(a.blksize, Number(st.blksize));
    assert.deepEqual(a.mtime, { sec: 1234567890, nsec: 123456789 });
    expectTimespec(a.mtime, st.mtimeNs);
    expectTimespec(a.atime, st.atimeNs);
    expectTimespec(a.ctime, st.ctimeNs);
  });

  test('a time before 1970 has a non-negative nsec and survives the wire', async () => {
    const f = at('getattr-old');
    fs.writeFileSync(f, '');
    execFileSync('touch', ['-m', '-d', '@-1.25', f]);
    const r = await srv.handlers.Getattr(P(f));
    assert.equal(r.errno, 0);
    assert.deepEqual(r.attr!.mtime, { sec: -2, nsec: 750_000_000 });
    const back = fileSystemMethods.Getattr.decodeResponse(fileSystemMethods.Getattr.encodeResponse(r));
    assert.equal(back.attr!.mtime!.sec, -2);
    assert.equal(back.attr!.mtime!.nsec, 750_000_000);
  });

  test('a directory and a symlink (not followed)', async () => {
    const d = at('getattr-dir');
    fs.mkdirSync(d, 0o711);
    const l = at('getattr-link');
    fs.symlinkSync('getattr-dir', l);
    const rd = await srv.handlers.Getattr(P(d));
    assert.equal(rd.errno, 0);
    assert.equal(rd.attr!.mode, C.S_IFDIR | 0o711);
    const rl = await srv.handlers.Getattr(P(l));
    assert.equal(rl.errno, 0);
    assert.equal(rl.attr!.mode! & C.S_IFMT, C.S_IFLNK);
    assert.equal(rl.attr!.size, 'getattr-dir'.length);
  });

  test('a missing file is ENOENT (2)', async () => {
    const r = await srv.handlers.Getattr(P(at('no-such-file')));
    assert.equal(r.errno, E.ENOENT);
    assert.equal(r.errno, 2);
    assert.equal(r.attr, undefined);
  });

  test('ENOTDIR through a file', async () => {
    fs.writeFileSync(at('notdir'), '');
    const r = await srv.handlers.Getattr(P(at('notdir', 'x')));
    assert.equal(r.errno, E.ENOTDIR);
  });

  test('bad paths are EINVAL and never reach the disk', async () => {
    for (const bad of ['', 'relative', `${root}/../x`, `${root}/./getattr-file`, `${root}//getattr-file`, `${root}/`]) {
      const r = await srv.handlers.Getattr(P(bad));
      assert.equal(r.errno, E.EINVAL, JSON.stringify(bad));
    }
    const withNul = await srv.handlers.Getattr(P(Buffer.from(`${root}/a\0b`)));
    assert.equal(withNul.errno, E.EINVAL);
    const empty = await srv.handlers.Getattr(rq(pb.PathRequest, {}));
    assert.equal(empty.errno, E.EINVAL);
  });
});

describe('Readdir', () => {
  const srv = new LocalFileServer();
  after(() => srv.closeAll());

  test('every entry with its attributes, dangling symlinks and non-UTF-8 names included', async () => {
    const d = at('readdir');
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'file'), '12345', { mode: 0o644 });
    fs.mkdirSync(path.join(d, 'sub'), 0o700);
    fs.symlinkSync('does-not-exist', path.join(d, 'dangling'));
    const odd = Buffer.from([0x6f, 0xff, 0xfe, 0x0a, 0x80]); // "o", invalid UTF-8, newline
    fs.writeFileSync(Buffer.concat([Buffer.from(d + '/'), odd]), 'xy');

    const r = await srv.handlers.Readdir(D(d));
    assert.equal(r.errno, 0);
    const entries = r.entries!;
    assert.equal(entries.length, 4);
    const byName = new Map(entries.map((e) => [Buffer.from(e.name!).toString('hex'), e]));
    assert.deepEqual(
      [...byName.keys()].sort(),
      [Buffer.from('file'), Buffer.from('sub'), Buffer.from('dangling'), odd].map((b) => b.toString('hex')).sort(),
    );
    for (const e of entries) assert.ok(Buffer.isBuffer(e.name), 'names are bytes');

    const file = byName.get(Buffer.from('file').toString('hex'))!;
    assert.equal(file.attr!.mode, C.S_IFREG | 0o644);
    assert.equal(file.attr!.size, 5);
    assert.equal(file.attr!.ino, Number(fs.lstatSync(path.join(d, 'file'), { bigint: true }).ino));
    const sub = byName.get(Buffer.from('sub').toString('hex'))!;
    assert.equal(sub.attr!.mode, C.S_IFDIR | 0o700);
    const dangling = byName.get(Buffer.from('dangling').toString('hex'))!;
    assert.equal(dangling.attr!.mode! & C.S_IFMT, C.S_IFLNK);
    assert.equal(dangling.attr!.size, 'does-not-exist'.length);
    const o = byName.get(odd.toString('hex'))!;
    assert.equal(o.attr!.size, 2);

    // and the names survive the wire as the same bytes
    const back = fileSystemMethods.Readdir.decodeResponse(fileSystemMethods.Readdir.encodeResponse(r));
    assert.ok(back.entries.some((e) => Buffer.from(e.name!).equals(odd)));
  });

  test('an empty directory has no entries (no . or ..)', async () => {
    fs.mkdirSync(at('readdir-empty'));
    const r = await srv.handlers.Readdir(D(at('readdir-empty')));
    assert.equal(r.errno, 0);
    assert.deepEqual(r.entries, []);
  });

  test('the root directory lists its entries with attributes', async () => {
    const r = await srv.handlers.Readdir(D('/'));
    assert.equal(r.errno, 0);
    const tmp = r.entries!.find((e) => Buffer.from(e.name!).toString() === 'tmp');
    assert.ok(tmp, '/tmp is listed');
    assert.equal(tmp.attr!.ino, Number(fs.lstatSync('/tmp', { bigint: true }).ino));
    assert.equal(r.entries!.length, fs.readdirSync('/').length);
  });

  test('errors: missing is ENOENT, a file is ENOTDIR, a bad path is EINVAL', async () => {
    assert.equal((await srv.handlers.Readdir(D(at('readdir-missing')))).errno, E.ENOENT);
    fs.writeFileSync(at('readdir-file'), '');
    assert.equal((await srv.handlers.Readdir(D(at('readdir-file')))).errno, E.ENOTDIR);
    assert.equal((await srv.handlers.Readdir(D('readdir'))).errno, E.EINVAL);
  });
});

describe('Readlink', () => {
  const srv = new LocalFileServer();
  after(() => srv.closeAll());

  test('returns the target as the exact bytes', async () => {
    const target = Buffer.from([0x2e, 0x2e, 0x2f, 0xff, 0x0a, 0x20, 0x80]);
    const l = at('readlink-odd');
    fs.symlinkSync(target, l);
    const r = await srv.handlers.Readlink(P(l));
    assert.equal(r.errno, 0);
    assert.ok(Buffer.isBuffer(r.target));
    assert.deepEqual([...r.target!], [...target]);
  });

  test('a non-link is EINVAL, a missing one ENOENT', async () => {
    fs.writeFileSync(at('readlink-plain'), '');
    assert.equal((await srv.handlers.Readlink(P(at('readlink-plain')))).errno, E.EINVAL);
    assert.equal((await srv.handlers.Readlink(P(at('readlink-missing')))).errno, E.ENOENT);
  });
});

describe('Open, Read, Write, Fsync, Release', () => {
  const srv = new LocalFileServer();
  after(() => srv.closeAll());
  const open = (p: string, flags: number) => srv.handlers.Open(rq(pb.OpenRequest, { path: Buffer.from(p), flags }));
  const read = (handle: number, offset: number, size: number) => srv.handlers.Read(rq(pb.ReadRequest, { handle, offset, size }));
  const write = (handle: number, offset: number, data: Buffer) => srv.handlers.Write(rq(pb.WriteRequest, { handle, offset, data }));
  const release = (handle: number) => srv.handlers.Release(rq(pb.HandleRequest, { handle }));

  test('round trip: exact bytes at offsets, short reads at end of file', async () => {
    const f = at('rw');
    fs.writeFileSync(f, '0123456789', { mode: 0o644 });
    const o = await open(f, C.O_RDWR);
    assert.equal(o.errno, 0);
    assert.ok(typeof o.handle === 'number' && o.handle > 0);
    assert.equal(o.attr!.size, 10);
    assert.equal(o.attr!.mode, C.S_IFREG | 0o644);
    const h = o.handle;

    const r1 = await read(h, 2, 4);
    assert.equal(r1.errno, 0);
    assert.equal(Buffer.from(r1.data!).toString(), '2345');

    const bin = Buffer.from([0x00, 0xff, 0x80, 0x0a]);
    const w = await write(h, 3, bin);
    assert.equal(w.errno, 0);
    assert.equal(w.written, 4);
    assert.deepEqual([...fs.readFileSync(f)], [...Buffer.from('012'), ...bin, ...Buffer.from('789')]);

    const r2 = await read(h, 0, 10);
    assert.deepEqual([...r2.data!], [...Buffer.from('012'), ...bin, ...Buffer.from('789')]);

    const short = await read(h, 7, 100);
    assert.equal(short.errno, 0);
    assert.equal(Buffer.from(short.data!).toString(), '789');
    const eof = await read(h, 10, 5);
    assert.equal(eof.errno, 0);
    assert.equal(eof.data!.length, 0);
    const past = await read(h, 1000, 5);
    assert.equal(past.errno, 0);
    assert.equal(past.data!.length, 0);

    // writing past the end leaves a hole of zeros
    const w2 = await write(h, 12, Buffer.from('Z'));
    assert.equal(w2.written, 1);
    assert.deepEqual([...fs.readFileSync(f).subarray(10)], [0, 0, 0x5a]);

    const sync = await srv.handlers.Fsync(rq(pb.FsyncRequest, { handle: h, datasync: false }));
    assert.equal(sync.errno, 0);
    const dsync = await srv.handlers.Fsync(rq(pb.FsyncRequest, { handle: h, datasync: true }));
    assert.equal(dsync.errno, 0);

    const before = srv.openFileCount;
    assert.equal((await release(h)).errno, 0);
    assert.equal(srv.openFileCount, before - 1);
    assert.equal((await release(h)).errno, E.EBADF, 'released twice');
    assert.equal((await read(h, 0, 1)).errno, E.EBADF, 'read after release');
  });

  test('a large read and write go through whole', async () => {
    const f = at('rw-large');
    fs.writeFileSync(f, '');
    const o = await open(f, C.O_RDWR);
    const data = Buffer.alloc(3 * 1024 * 1024 + 7);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
    const w = await write(o.handle!, 0, data);
    assert.equal(w.written, data.length);
    const r = await read(o.handle!, 0, data.length);
    assert.equal(r.data!.length, data.length);
    assert.ok(Buffer.from(r.data!).equals(data));
    await release(o.handle!);
  });

  test('handles that were never given out are EBADF', async () => {
    for (const h of [0, 999_999, 2 ** 40]) {
      assert.equal((await read(h, 0, 1)).errno, E.EBADF, `read ${h}`);
      assert.equal((await write(h, 0, Buffer.from('x'))).errno, E.EBADF, `write ${h}`);
      assert.equal((await release(h)).errno, E.EBADF, `release ${h}`);
      assert.equal((await srv.handlers.Fsync(rq(pb.FsyncRequest, { handle: h }))).errno, E.EBADF, `fsync ${h}`);
    }
    assert.equal(E.EBADF, 9);
  });

  test('Open drops O_CREAT: a missing file is ENOENT, not created', async () => {
    const f = at('open-no-create');
    const o = await open(f, C.O_RDWR | C.O_CREAT);
    assert.equal(o.errno, E.ENOENT);
    assert.equal(fs.existsSync(f), false);
  });

  test('Open errors: EISDIR for writing a directory, EINVAL for a bad path', async () => {
    fs.mkdirSync(at('open-dir'));
    assert.equal((await open(at('open-dir'), C.O_WRONLY)).errno, E.EISDIR);
    assert.equal((await open('open-dir', C.O_RDONLY)).errno, E.EINVAL);
  });

  test('a read-only handle refuses writes with EBADF', async () => {
    const f = at('ro');
    fs.writeFileSync(f, 'abc');
    const o = await open(f, C.O_RDONLY);
    assert.equal(o.errno, 0);
    assert.equal((await write(o.handle!, 0, Buffer.from('x'))).errno, E.EBADF);
    assert.equal(fs.readFileSync(f, 'utf8'), 'abc');
    await release(o.handle!);
  });
});

describe('limits', () => {
  test('a read larger than maxReadBytes is EINVAL; exactly the limit is fine', async () => {
    const srv = new LocalFileServer({ maxOpenFiles: 4, maxReadBytes: 16 });
    const f = at('limit-read');
    fs.writeFileSync(f, 'x'.repeat(100));
    const o = await srv.handlers.Open(rq(pb.OpenRequest, { path: Buffer.from(f), flags: C.O_RDONLY }));
    const big = await srv.handlers.Read(rq(pb.ReadRequest, { handle: o.handle, offset: 0, size: 17 }));
    assert.equal(big.errno, E.EINVAL);
    assert.equal(big.data, undefined);
    const okRead = await srv.handlers.Read(rq(pb.ReadRequest, { handle: o.handle, offset: 0, size: 16 }));
    assert.equal(okRead.errno, 0);
    assert.equal(okRead.data!.length, 16);
    await srv.closeAll();
  });

  test('offsets beyond 2^53 are EINVAL', async () => {
    const srv = new LocalFileServer();
    const f = at('limit-offset');
    fs.writeFileSync(f, 'abc');
    const o = await srv.handlers.Open(rq(pb.OpenRequest, { path: Buffer.from(f), flags: C.O_RDWR }));
    const r = await srv.handlers.Read(rq(pb.ReadRequest, { handle: o.handle, offset: 2 ** 54, size: 1 }));
    assert.equal(r.errno, E.EINVAL);
    const w = await srv.handlers.Write(rq(pb.WriteRequest, { handle: o.handle, offset: 2 ** 53, data: Buffer.from('yz') }));
    assert.equal(w.errno, E.EINVAL);
    const t = await srv.handlers.Truncate(rq(pb.TruncateRequest, { handle: o.handle, size: 2 ** 54 }));
    assert.equal(t.errno, E.EINVAL);
    const tp = await srv.handlers.Truncate(rq(pb.TruncateRequest, { path: Buffer.from(f), size: 2 ** 54 }));
    assert.equal(tp.errno, E.EINVAL);
    assert.equal(fs.readFileSync(f, 'utf8'), 'abc');
    await srv.closeAll();
  });

  // 2**53 is not a safe integer: node:fs treats such a position as "no position" (-1) and
  // reads/writes at the descriptor's current offset instead. `offset + length > 2**53`
  // lets offset 2**53 with one byte through (2**53 + 1 rounds to 2**53).
  test('a 1-byte write at offset exactly 2^53 is refused and leaves the file alone', async () => {
    const srv = new LocalFileServer();
    const f = at('limit-offset-2-53-write');
    fs.writeFileSync(f, 'abc');
    const o = await srv.handlers.Open(rq(pb.OpenRequest, { path: Buffer.from(f), flags: C.O_RDWR }));
    try {
      const w = await srv.handlers.Write(rq(pb.WriteRequest, { handle: o.handle, offset: 2 ** 53, data: Buffer.from('Z') }));
      assert.equal(fs.readFileSync(f, 'utf8'), 'abc', 'the file is unchanged');
      assert.equal(w.errno, E.EINVAL);
    } finally {
      await srv.closeAll();
    }
  });

  test('a read at offset exactly 2^53 returns no bytes of the file', async () => {
    const srv = new LocalFileServer();
    const f = at('limit-offset-2-53-read');
    fs.writeFileSync(f, 'abc');
    const o = await srv.handlers.Open(rq(pb.OpenRequest, { path: Buffer.from(f), flags: C.O_RDONLY }));
    try {
      const r = await srv.handlers.Read(rq(pb.ReadRequest, { handle: o.handle, offset: 2 ** 53, size: 1 }));
      assert.equal(r.data?.length ?? 0, 0, `got ${JSON.stringify(r)}`);
      assert.equal(r.errno, E.EINVAL);
    } finally {
      await srv.closeAll();
    }
  });

  test('maxOpenFiles: Open and Create beyond the limit are EMFILE until a handle is released', async () => {
    const srv = new LocalFileServer({ maxOpenFiles: 2, maxReadBytes: DEFAULT_LIMITS.maxReadBytes });
    const f = at('limit-open');
    fs.writeFileSync(f, 'x');
    const open = () => srv.handlers.Open(rq(pb.OpenRequest, { path: Buffer.from(f), flags: C.O_RDONLY }));
    const a = await open();
    const b = await open();
    assert.equal(a.errno, 0);
    assert.equal(b.errno, 0);
    assert.notEqual(a.handle, b.handle);
    assert.equal(srv.openFileCount, 2);
    assert.equal((await open()).errno, E.EMFILE);
    const c = await srv.handlers.Create(rq(pb.CreateRequest, { path: Buffer.from(at('limit-create')), flags: C.O_WRONLY, mode: 0o600 }));
    assert.equal(c.errno, E.EMFILE);
    assert.equal(fs.existsSync(at('limit-create')), false);
    assert.equal(srv.openFileCount, 2);
    assert.equal((await srv.handlers.Release(rq(pb.HandleRequest, { handle: a.handle }))).errno, 0);
    const d = await open();
    assert.equal(d.errno, 0);
    assert.notEqual(d.handle, a.handle, 'handles are not reused');
    await srv.closeAll();
  });

  test('DEFAULT_LIMITS', () => {
    assert.deepEqual(DEFAULT_LIMITS, { maxOpenFiles: 4096, maxReadBytes: 4 * 1024 * 1024 });
  });
});

describe('Create', () => {
  const srv = new LocalFileServer();
  after(() => srv.closeAll());

  test('mode 0o640 under umask 0 gives exactly 0o640, and the handle writes', async () => {
    assert.equal(process.umask(), 0);
    const f = at('create-640');
    const r = await srv.handlers.Create(rq(pb.CreateRequest, { path: Buffer.from(f), flags: C.O_WRONLY | C.O_EXCL, mode: 0o640 }));
    assert.equal(r.errno, 0);
    assert.equal(r.attr!.mode, C.S_IFREG | 0o640);
    assert.equal(r.attr!.size, 0);
    assert.equal(fs.lstatSync(f).mode & 0o7777, 0o640);
    const w = await srv.handlers.Write(rq(pb.WriteRequest, { handle: r.handle, offset: 0, data: Buffer.from('new') }));
    assert.equal(w.written, 3);
    assert.equal((await srv.handlers.Release(rq(pb.HandleRequest, { handle: r.handle }))).errno, 0);
    assert.equal(fs.readFileSync(f, 'utf8'), 'new');
  });

  test('other modes are exact too (0o777, 0o600, setgid bit)', async () => {
    for (const mode of [0o777, 0o600, 0o2750]) {
      const f = at(`create-${mode.toString(8)}`);
      const r = await srv.handlers.Create(rq(pb.CreateRequest, { path: Buffer.from(f), flags: C.O_RDWR, mode }));
      assert.equal(r.errno, 0);
      assert.equal(fs.lstatSync(f).mode & 0o7777, mode, mode.toString(8));
      await srv.handlers.Release(rq(pb.HandleRequest, { handle: r.handle }));
    }
  });

  test('O_EXCL on an existing file is EEXIST; without it the file is opened (O_TRUNC truncates)', async () => {
    const f = at('create-exists');
    fs.writeFileSync(f, 'old', { mode: 0o644 });
    const ex = await srv.handlers.Create(rq(pb.CreateRequest, { path: Buffer.from(f), flags: C.O_WRONLY | C.O_EXCL, mode: 0o600 }));
    assert.equal(ex.errno, E.EEXIST);
    const tr = await srv.handlers.Create(rq(pb.CreateRequest, { path: Buffer.from(f), flags: C.O_WRONLY | C.O_TRUNC, mode: 0o600 }));
    assert.equal(tr.errno, 0);
    assert.equal(fs.readFileSync(f, 'utf8'), '');
    assert.equal(fs.lstatSync(f).mode & 0o7777, 0o644, 'an existing file keeps its mode');
    await srv.handlers.Release(rq(pb.HandleRequest, { handle: tr.handle }));
  });

  test('in a missing directory is ENOENT; a bad path EINVAL', async () => {
    const r = await srv.handlers.Create(rq(pb.CreateRequest, { path: Buffer.from(at('nope', 'f')), flags: C.O_WRONLY, mode: 0o600 }));
    assert.equal(r.errno, E.ENOENT);
    const b = await srv.handlers.Create(rq(pb.CreateRequest, { path: Buffer.from(`${root}/../f`), flags: C.O_WRONLY, mode: 0o600 }));
    assert.equal(b.errno, E.EINVAL);
  });
});

describe('Truncate', () => {
  const srv = new LocalFileServer();
  after(() => srv.closeAll());

  test('by path: shrink and grow', async () => {
    const f = at('trunc-path');
    fs.writeFileSync(f, 'abcdef');
    const r = await srv.handlers.Truncate(rq(pb.TruncateRequest, { path: Buffer.from(f), size: 2 }));
    assert.equal(r.errno, 0);
    assert.equal(fs.readFileSync(f, 'utf8'), 'ab');
    await srv.handlers.Truncate(rq(pb.TruncateRequest, { path: Buffer.from(f), size: 4 }));
    assert.deepEqual([...fs.readFileSync(f)], [0x61, 0x62, 0, 0]);
  });

  test('by handle: the path is ignored', async () => {
    const f = at('trunc-handle');
    fs.writeFileSync(f, 'abcdef');
    const o = await srv.handlers.Open(rq(pb.OpenRequest, { path: Buffer.from(f), flags: C.O_RDWR }));
    const r = await srv.handlers.Truncate(rq(pb.TruncateRequest, { path: Buffer.from('not/even/valid'), size: 3, handle: o.handle }));
    assert.equal(r.errno, 0);
    assert.equal(fs.readFileSync(f, 'utf8'), 'abc');
    await srv.handlers.Release(rq(pb.HandleRequest, { handle: o.handle }));
  });

  test('errors: bad handle EBADF, missing ENOENT, bad path EINVAL, directory EISDIR', async () => {
    assert.equal((await srv.handlers.Truncate(rq(pb.TruncateRequest, { handle: 4242, size: 0 }))).errno, E.EBADF);
    assert.equal((await srv.handlers.Truncate(rq(pb.TruncateRequest, { path: Buffer.from(at('trunc-missing')), size: 0 }))).errno, E.ENOENT);
    assert.equal((await srv.handlers.Truncate(rq(pb.TruncateRequest, { path: Buffer.from('x'), size: 0 }))).errno, E.EINVAL);
    fs.mkdirSync(at('trunc-dir'));
    assert.equal((await srv.handlers.Truncate(rq(pb.TruncateRequest, { path: Buffer.from(at('trunc-dir')), size: 0 }))).errno, E.EISDIR);
  });
});

describe('namespace operations', () => {
  const srv = new LocalFileServer();
  after(() => srv.closeAll());
  const mode = (p: string) => fs.lstatSync(p).mode & 0o7777;

  test('Mkdir with an exact mode; EEXIST on an existing name', async () => {
    const d = at('mkdir-750');
    const r = await srv.handlers.Mkdir(rq(pb.ModeRequest, { path: Buffer.from(d), mode: 0o750 }));
    assert.equal(r.errno, 0);
    assert.ok(fs.lstatSync(d).isDirectory());
    assert.equal(mode(d), 0o750);
    assert.equal((await srv.handlers.Mkdir(rq(pb.ModeRequest, { path: Buffer.from(d), mode: 0o750 }))).errno, E.EEXIST);
    assert.equal((await srv.handlers.Mkdir(rq(pb.ModeRequest, { path: Buffer.from(at('no', 'dir')), mode: 0o755 }))).errno, E.ENOENT);
  });

  test('Rmdir: ENOTEMPTY, then removes; ENOTDIR on a file', async () => {
    const d = at('rmdir');
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'f'), '');
    assert.equal((await srv.handlers.Rmdir(P(d))).errno, E.ENOTEMPTY);
    fs.unlinkSync(path.join(d, 'f'));
    assert.equal((await srv.handlers.Rmdir(P(d))).errno, 0);
    assert.equal(fs.existsSync(d), false);
    assert.equal((await srv.handlers.Rmdir(P(d))).errno, E.ENOENT);
    fs.writeFileSync(at('rmdir-file'), '');
    assert.equal((await srv.handlers.Rmdir(P(at('rmdir-file')))).errno, E.ENOTDIR);
  });

  test('Unlink removes a file or a symlink (not its target); EISDIR on a directory', async () => {
    const f = at('unlink-f');
    fs.writeFileSync(f, '');
    fs.symlinkSync(f, at('unlink-l'));
    assert.equal((await srv.handlers.Unlink(P(at('unlink-l')))).errno, 0);
    assert.equal(fs.existsSync(at('unlink-l')), false);
    assert.equal(fs.existsSync(f), true);
    assert.equal((await srv.handlers.Unlink(P(f))).errno, 0);
    assert.equal(fs.existsSync(f), false);
    assert.equal((await srv.handlers.Unlink(P(f))).errno, E.ENOENT);
    fs.mkdirSync(at('unlink-d'));
    assert.equal((await srv.handlers.Unlink(P(at('unlink-d')))).errno, E.EISDIR);
  });

  test('Rename moves (replacing the destination); renameat2 flags work; unknown flags and bad paths are EINVAL', async () => {
    const a = at('rename-a');
    const b = at('rename-b');
    fs.writeFileSync(a, 'A');
    fs.writeFileSync(b, 'B');
    const rn = (from: string, to: string, flags = 0) =>
      srv.handlers.Rename(rq(pb.RenameRequest, { from: Buffer.from(from), to: Buffer.from(to), flags }));
    assert.equal((await rn(a, b, 1 /* RENAME_NOREPLACE */)).errno, E.EEXIST);
    assert.equal((await rn(a, b, 4 /* RENAME_WHITEOUT: not passed on */)).errno, E.EINVAL);
    assert.equal(fs.readFileSync(a, 'utf8'), 'A');
    assert.equal((await rn(a, b, 2 /* RENAME_EXCHANGE */)).errno, 0);
    assert.equal(fs.readFileSync(a, 'utf8'), 'B');
    assert.equal(fs.readFileSync(b, 'utf8'), 'A');
    assert.equal((await rn(a, b, 2)).errno, 0);
    assert.equal((await rn(a, 'rename-b')).errno, E.EINVAL);
    assert.equal((await rn('rename-a', b)).errno, E.EINVAL);
    assert.equal(fs.existsSync(a), true);
    assert.equal((await rn(a, b)).errno, 0);
    assert.equal(fs.existsSync(a), false);
    assert.equal(fs.readFileSync(b, 'utf8'), 'A');
    assert.equal((await rn(a, b)).errno, E.ENOENT);
  });

  test('Xattr sets, gets (length first), lists and removes user attributes; bad names are refused', async () => {
    const f = at('xattr-file');
    fs.writeFileSync(f, 'x');
    const x = (op: number, fields: Record<string, unknown> = {}) =>
      srv.handlers.Xattr(rq(pb.XattrRequest, { path: Buffer.from(f), op, ...fields }));
    const value = Buffer.from([0, 1, 2, 0xff, 0x80]);
    assert.equal((await x(3, { name: Buffer.from('user.one'), value })).errno, 0);
    assert.equal((await x(3, { name: Buffer.from('user.one'), value, flags: 1 /* XATTR_CREATE */ })).errno, E.EEXIST);
    assert.equal((await x(1, { name: Buffer.from('user.one'), size: 0 })).size, value.length);
    assert.deepEqual([...Buffer.from((await x(1, { name: Buffer.from('user.one'), size: 100 })).value!)], [...value]);
    assert.equal((await x(1, { name: Buffer.from('user.one'), size: 2 })).errno, E.ERANGE);
    assert.equal((await x(1, { name: Buffer.from('user.none'), size: 100 })).errno, E.ENODATA);
    assert.equal(Buffer.from((await x(2, { size: 100 })).value!).toString(), 'user.one\0');
    assert.equal((await x(1, { name: Buffer.from('user.a\0b'), size: 10 })).errno, E.ERANGE);
    assert.equal((await x(4, { name: Buffer.from('user.one') })).errno, 0);
    assert.equal((await x(2, { size: 0 })).size, 0);
  });

  test('Symlink stores the target bytes exactly; a NUL in the target is EINVAL', async () => {
    const l = at('symlink-odd');
    const target = Buffer.from([0x2e, 0x2e, 0x2f, 0xfe, 0x20, 0x0a]);
    const r = await srv.handlers.Symlink(rq(pb.LinkRequest, { target, path: Buffer.from(l) }));
    assert.equal(r.errno, 0);
    assert.deepEqual([...fs.readlinkSync(l, { encoding: 'buffer' })], [...target]);
    assert.equal((await srv.handlers.Symlink(rq(pb.LinkRequest, { target, path: Buffer.from(l) }))).errno, E.EEXIST);
    const nul = await srv.handlers.Symlink(rq(pb.LinkRequest, { target: Buffer.from('a\0b'), path: Buffer.from(at('symlink-nul')) }));
    assert.equal(nul.errno, E.EINVAL);
    const empty = await srv.handlers.Symlink(rq(pb.LinkRequest, { path: Buffer.from(at('symlink-empty')) }));
    assert.equal(empty.errno, E.EINVAL);
    assert.equal(fs.existsSync(at('symlink-nul')), false);
  });

  test('Link makes a hard link: same inode, link count 2', async () => {
    const f = at('link-src');
    fs.writeFileSync(f, 'L');
    const r = await srv.handlers.Link(rq(pb.LinkRequest, { target: Buffer.from(f), path: Buffer.from(at('link-dst')) }));
    assert.equal(r.errno, 0);
    const a = fs.lstatSync(f);
    const b = fs.lstatSync(at('link-dst'));
    assert.equal(a.ino, b.ino);
    assert.equal(a.nlink, 2);
    assert.equal(b.nlink, 2);
    const g = await srv.handlers.Getattr(P(at('link-dst')));
    assert.equal(g.attr!.nlink, 2);
    // the existing path is checked like any other
    const bad = await srv.handlers.Link(rq(pb.LinkRequest, { target: Buffer.from('link-src'), path: Buffer.from(at('link-x')) }));
    assert.equal(bad.errno, E.EINVAL);
    const missing = await srv.handlers.Link(rq(pb.LinkRequest, { target: Buffer.from(at('nope')), path: Buffer.from(at('link-y')) }));
    assert.equal(missing.errno, E.ENOENT);
  });

  test('Chmod sets the exact mode bits, special bits included', async () => {
    const f = at('chmod');
    fs.writeFileSync(f, '');
    for (const m of [0o600, 0o4755, 0o1777, 0o000]) {
      const r = await srv.handlers.Chmod(rq(pb.ModeRequest, { path: Buffer.from(f), mode: C.S_IFREG | m }));
      assert.equal(r.errno, 0);
      assert.equal(mode(f), m, m.toString(8));
    }
    assert.equal((await srv.handlers.Chmod(rq(pb.ModeRequest, { path: Buffer.from(at('nope')), mode: 0o600 }))).errno, E.ENOENT);
  });

  test('Chown (as root): to 65534, -1 / 0xffffffff leave a side unchanged, symlinks are not followed', { skip: process.getuid!() !== 0 && 'needs root' }, async () => {
    const f = at('chown');
    fs.writeFileSync(f, '');
    const chown = (p: string, uid: number, gid: number) => srv.handlers.Chown(rq(pb.ChownRequest, { path: Buffer.from(p), uid, gid }));
    assert.equal((await chown(f, 65534, 65534)).errno, 0);
    let st = fs.lstatSync(f);
    assert.deepEqual([st.uid, st.gid], [65534, 65534]);

    assert.equal((await chown(f, 0xffffffff, 0)).errno, 0);
    st = fs.lstatSync(f);
    assert.deepEqual([st.uid, st.gid], [65534, 0]);

    assert.equal((await chown(f, 0, -1)).errno, 0);
    st = fs.lstatSync(f);
    assert.deepEqual([st.uid, st.gid], [0, 0]);

    assert.equal((await chown(f, -1, 0xffffffff)).errno, 0);
    st = fs.lstatSync(f);
    assert.deepEqual([st.uid, st.gid], [0, 0]);

    const l = at('chown-link');
    fs.symlinkSync(f, l);
    assert.equal((await chown(l, 1234, 5678)).errno, 0);
    assert.deepEqual([fs.lstatSync(l).uid, fs.lstatSync(l).gid], [1234, 5678]);
    assert.deepEqual([fs.lstatSync(f).uid, fs.lstatSync(f).gid], [0, 0]);

    assert.equal((await chown(f, -2, 0)).errno, E.EINVAL);
    assert.equal((await chown(f, 2 ** 33, 0)).errno, E.EINVAL);
    assert.equal((await chown(at('nope'), 0, 0)).errno, E.ENOENT);
  });

  test('Utimens sets both times to the microsecond, on files and on symlinks themselves', async () => {
    const f = at('utimens');
    fs.writeFileSync(f, '');
    const set = (p: string) =>
      srv.handlers.Utimens(
        rq(pb.UtimensRequest, {
          path: Buffer.from(p),
          atime: { sec: 1_000_000_000, nsec: 123_456_789 },
          mtime: { sec: 1_500_000_000, nsec: 987_654_321 },
        }),
      );
    assert.equal((await set(f)).errno, 0);
    const st = fs.lstatSync(f, { bigint: true });
    assert.equal(st.atimeNs / 1000n, 1_000_000_000_123_456n);
    assert.equal(st.mtimeNs / 1000n, 1_500_000_000_987_654n);

    const l = at('utimens-dangling');
    fs.symlinkSync('nowhere', l);
    assert.equal((await set(l)).errno, 0, 'lutimes: a dangling symlink is fine');
    assert.equal(fs.lstatSync(l, { bigint: true }).mtimeNs / 1000n, 1_500_000_000_987_654n);

    assert.equal((await set(at('nope'))).errno, E.ENOENT);
  });

  test('Utimens with no times means now', async () => {
    const f = at('utimens-now');
    fs.writeFileSync(f, '');
    fs.utimesSync(f, 1000, 1000);
    const t0 = Date.now();
    const r = await srv.handlers.Utimens(rq(pb.UtimensRequest, { path: Buffer.from(f) }));
    assert.equal(r.errno, 0);
    const st = fs.lstatSync(f);
    assert.ok(Math.abs(st.mtimeMs - t0) < 5000, `mtime ${st.mtimeMs} is now (${t0})`);
    assert.ok(Math.abs(st.atimeMs - t0) < 5000);
  });

  test('Statfs answers the local filesystem figures', async () => {
    const r = await srv.handlers.Statfs(P(root));
    const s = fs.statfsSync(root);
    assert.equal(r.errno, 0);
    assert.equal(r.bsize, s.bsize);
    assert.equal(r.frsize, s.bsize);
    assert.equal(r.blocks, s.blocks);
    assert.equal(r.files, s.files);
    assert.equal(r.namemax, 255);
    assert.ok(typeof r.bfree === 'number' && r.bfree <= s.blocks);
    assert.ok(typeof r.bavail === 'number' && r.bavail <= r.bfree);
    assert.ok(typeof r.ffree === 'number' && r.ffree <= s.files);
    assert.equal((await srv.handlers.Statfs(P(at('nope')))).errno, E.ENOENT);
    assert.equal((await srv.handlers.Statfs(P('rel'))).errno, E.EINVAL);
  });

  test('Access: F_OK/R_OK pass, ENOENT when missing, X_OK on a non-executable file is EACCES even for root', async () => {
    const f = at('access');
    fs.writeFileSync(f, '');
    fs.chmodSync(f, 0o644);
    const acc = (p: string, mask: number) => srv.handlers.Access(rq(pb.AccessRequest, { path: Buffer.from(p), mask }));
    assert.equal((await acc(f, C.F_OK)).errno, 0);
    assert.equal((await acc(f, C.R_OK | C.W_OK)).errno, 0);
    assert.equal((await acc(f, C.X_OK)).errno, E.EACCES);
    fs.chmodSync(f, 0o755);
    assert.equal((await acc(f, C.X_OK)).errno, 0);
    assert.equal((await acc(at('nope'), C.F_OK)).errno, E.ENOENT);
    assert.equal((await acc('nope', C.F_OK)).errno, E.EINVAL);
  });

  test('Mknod: a FIFO with an exact mode, a regular file, EPERM for devices', async () => {
    const fifo = at('fifo');
    const r = await srv.handlers.Mknod(rq(pb.MknodRequest, { path: Buffer.from(fifo), mode: C.S_IFIFO | 0o640 }));
    assert.equal(r.errno, 0);
    const st = fs.lstatSync(fifo);
    assert.ok(st.isFIFO());
    assert.equal(st.mode & 0o7777, 0o640);

    const reg = at('mknod-reg');
    assert.equal((await srv.handlers.Mknod(rq(pb.MknodRequest, { path: Buffer.from(reg), mode: C.S_IFREG | 0o604 }))).errno, 0);
    assert.ok(fs.lstatSync(reg).isFile());
    assert.equal(fs.lstatSync(reg).mode & 0o7777, 0o604);
    assert.equal((await srv.handlers.Mknod(rq(pb.MknodRequest, { path: Buffer.from(reg), mode: C.S_IFREG | 0o604 }))).errno, E.EEXIST);

    const dev = await srv.handlers.Mknod(rq(pb.MknodRequest, { path: Buffer.from(at('mknod-chr')), mode: C.S_IFCHR | 0o600, rdev: 0x0103 }));
    assert.equal(dev.errno, E.EPERM);
    assert.equal(fs.existsSync(at('mknod-chr')), false);
    assert.equal((await srv.handlers.Mknod(rq(pb.MknodRequest, { path: Buffer.from('fifo'), mode: C.S_IFIFO | 0o600 }))).errno, E.EINVAL);
  });

  test('Mknod FIFO on an existing name is EEXIST', async () => {
    const p = at('fifo-twice');
    fs.writeFileSync(p, '');
    const r = await srv.handlers.Mknod(rq(pb.MknodRequest, { path: Buffer.from(p), mode: C.S_IFIFO | 0o600 }));
    assert.equal(r.errno, E.EEXIST);
  });

  test('Mknod FIFO in a missing directory is ENOENT', async () => {
    const r = await srv.handlers.Mknod(rq(pb.MknodRequest, { path: Buffer.from(at('nope', 'fifo')), mode: C.S_IFIFO | 0o600 }));
    assert.equal(r.errno, E.ENOENT);
  });

  test('Mknod FIFO with a non-UTF-8 name creates exactly that name', async () => {
    const name = Buffer.concat([Buffer.from(root + '/fifo-'), Buffer.from([0xff, 0xfe])]);
    const r = await srv.handlers.Mknod(rq(pb.MknodRequest, { path: name, mode: C.S_IFIFO | 0o600 }));
    assert.equal(r.errno, 0);
    assert.ok(fs.lstatSync(name).isFIFO());
  });
});

describe('closeAll', () => {
  test('closes every handle: reads are EBADF afterwards, and no new ones are given out', async () => {
    const srv = new LocalFileServer();
    const f = at('closeall');
    fs.writeFileSync(f, 'data');
    const a = await srv.handlers.Open(rq(pb.OpenRequest, { path: Buffer.from(f), flags: C.O_RDONLY }));
    const b = await srv.handlers.Create(rq(pb.CreateRequest, { path: Buffer.from(at('closeall-2')), flags: C.O_RDWR, mode: 0o600 }));
    assert.equal(srv.openFileCount, 2);
    assert.equal(Buffer.from((await srv.handlers.Read(rq(pb.ReadRequest, { handle: a.handle, offset: 0, size: 4 }))).data!).toString(), 'data');

    // the descriptors really are closed: count this process's fds before and after
    const fds = () => fs.readdirSync('/proc/self/fd').length;
    const before = fds();
    await srv.closeAll();
    assert.equal(fds(), before - 2);
    assert.equal(srv.openFileCount, 0);

    assert.equal((await srv.handlers.Read(rq(pb.ReadRequest, { handle: a.handle, offset: 0, size: 4 }))).errno, E.EBADF);
    assert.equal((await srv.handlers.Write(rq(pb.WriteRequest, { handle: b.handle, offset: 0, data: Buffer.from('x') }))).errno, E.EBADF);
    assert.equal((await srv.handlers.Open(rq(pb.OpenRequest, { path: Buffer.from(f), flags: C.O_RDONLY }))).errno, E.EBADF);
    assert.equal((await srv.handlers.Create(rq(pb.CreateRequest, { path: Buffer.from(at('closeall-3')), flags: C.O_RDWR, mode: 0o600 }))).errno, E.EBADF);
    assert.equal(fs.existsSync(at('closeall-3')), false);
    // path operations still work
    assert.equal((await srv.handlers.Getattr(P(f))).errno, 0);
  });
});

describe('Readdir with nested listings', () => {
  test('subdirectories come along depth first, in listing order, within the entry budget', async () => {
    const srv = new LocalFileServer();
    const top = at('nested');
    for (const d of ['a/a1/a11', 'a/a2', 'b/b1', 'c']) fs.mkdirSync(path.join(top, d), { recursive: true });
    fs.writeFileSync(path.join(top, 'a/a1/a11/f'), 'x');
    const order = (dir: string): string[] =>
      inDiskOrder(dir).filter((e) => e.isDirectory()).flatMap((e) => [path.join(dir, e.name), ...order(path.join(dir, e.name))]);
    const all = await srv.handlers.Readdir(D(top, 1000));
    assert.equal(all.errno, 0);
    const nested = (all as { nested: { path: Uint8Array; entries: { name: Uint8Array }[]; dirAttr: unknown }[] }).nested;
    assert.deepEqual(nested.map((l) => Buffer.from(l.path).toString()), order(top), 'depth first, as find walks');
    const a11 = nested.find((l) => Buffer.from(l.path).toString().endsWith('a11'))!;
    assert.deepEqual(a11.entries.map((e) => Buffer.from(e.name).toString()), ['f']);
    assert.ok(nested.every((l) => l.dirAttr), 'each with its own attributes');

    const none = await srv.handlers.Readdir(D(top));
    assert.equal((none as { nested: unknown[] }).nested.length, 0, 'no budget, no nesting');
    const some = await srv.handlers.Readdir(D(top, 4)); // 3 entries of its own + one directory
    assert.equal((some as { nested: unknown[] }).nested.length, 1);
  });

  test("entries come in the filesystem's own order (as readdir(3) gives them), not sorted", async () => {
    const d = at('order');
    fs.mkdirSync(d, { recursive: true });
    for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(d, `f${(i * 7919) % 97}`), '');
    const r = (await new LocalFileServer().handlers.Readdir(D(d))) as { errno: number; entries: { name: Uint8Array }[] };
    assert.equal(r.errno, 0);
    const names = r.entries.map((e) => Buffer.from(e.name).toString());
    assert.deepEqual(names, inDiskOrder(d).map((e) => e.name));
    assert.equal(names.length, 40);
  });
});

describe('prefetch along with requests', () => {
  test('asking about a .py brings its __pycache__ bytecode (every tag present), only with prefetch on', async () => {
    const d = at('pyprefetch');
    fs.mkdirSync(path.join(d, '__pycache__'), { recursive: true });
    fs.writeFileSync(path.join(d, 'mod.py'), 'x = 1\n');
    fs.writeFileSync(path.join(d, '__pycache__/mod.cpython-311.pyc'), Buffer.from('pyc-311'));
    fs.writeFileSync(path.join(d, '__pycache__/mod.cpython-312.pyc'), Buffer.from('pyc-312'));
    fs.writeFileSync(path.join(d, '__pycache__/other.cpython-311.pyc'), Buffer.from('not ours'));
    const on = new LocalFileServer(undefined, {});
    const r = (await on.handlers.Getattr(P(path.join(d, 'mod.py')))) as { errno: number; prefetched: { path: Uint8Array; data?: Uint8Array }[] };
    assert.equal(r.errno, 0);
    const got = new Map(r.prefetched.map((x) => [Buffer.from(x.path).toString(), x.data ? Buffer.from(x.data).toString() : undefined]));
    assert.equal(got.get(path.join(d, '__pycache__/mod.cpython-311.pyc')), 'pyc-311');
    assert.equal(got.get(path.join(d, '__pycache__/mod.cpython-312.pyc')), 'pyc-312');
    assert.ok(got.has(path.join(d, '__pycache__')), 'the directory too');
    assert.ok(!got.has(path.join(d, '__pycache__/other.cpython-311.pyc')), 'only the bytecode of this source');
    const off = (await new LocalFileServer().handlers.Getattr(P(path.join(d, 'mod.py')))) as { prefetched: unknown[] };
    assert.equal(off.prefetched.length, 0);
    const notPy = (await on.handlers.Getattr(P(path.join(d, '__pycache__/mod.cpython-311.pyc')))) as { prefetched: unknown[] };
    assert.equal(notPy.prefetched.length, 0);
  });

  test('opening an ELF program brings its libraries and the loader cache; a text file brings nothing', async () => {
    const srv = new LocalFileServer(undefined, {});
    const r = (await srv.handlers.Open(rq(pb.OpenRequest, { path: Buffer.from('/bin/ls'), flags: fs.constants.O_RDONLY }))) as {
      errno: number;
      handle: number;
      prefetched: { path: Uint8Array; data?: Uint8Array; missing?: boolean }[];
    };
    assert.equal(r.errno, 0);
    const paths = r.prefetched.map((x) => Buffer.from(x.path).toString());
    assert.ok(paths.includes('/etc/ld.so.cache'), 'the loader cache');
    assert.ok(paths.some((p) => /\/libc\.so\.6$/.test(p)), `libc among ${paths.length} paths`);
    const libc = r.prefetched.find((x) => /\/libc\.so\.6$/.test(Buffer.from(x.path).toString()) && x.data);
    if (libc) assert.ok(fs.readFileSync(Buffer.from(libc.path).toString()).equals(Buffer.from(libc.data!)), 'bytes as on disk');
    await srv.handlers.Release(rq(pb.HandleRequest, { handle: r.handle }));
    const txt = at('plain.txt');
    fs.writeFileSync(txt, 'hello');
    const t = (await srv.handlers.Open(rq(pb.OpenRequest, { path: Buffer.from(txt), flags: fs.constants.O_RDONLY }))) as { prefetched: unknown[]; handle: number };
    assert.equal((t.prefetched ?? []).length, 0);
    await srv.handlers.Release(rq(pb.HandleRequest, { handle: t.handle }));
  });
});
