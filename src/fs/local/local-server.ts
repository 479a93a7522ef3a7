// The local half of the filesystem protocol: answers each request from the agent against
// the local disk, as the local user who runs outrun. Nothing from the wire is trusted:
// paths, handles, sizes and offsets are checked first, and every failure is an errno.
//
// Modes arrive already masked by the command's umask on the remote, so the process serving
// them must run with umask 0 (the session sets it) or they would be masked twice.
import { constants as FS, lstatSync, promises as fsp, type BigIntStats } from 'node:fs';
import { execFile } from 'node:child_process';
import type { FileHandle } from 'node:fs/promises';
import { attrFromStats } from '../shared/attr';
import { readFully } from '../shared/read-fully';
import { E2BIG, EBADF, EINVAL, EMFILE, EOPNOTSUPP, EPERM, ERANGE, errnoOf } from '../shared/errno';
import { UTIME_NOW, UTIME_OMIT, localNative } from './local-native';
import { MAX_XATTR_BYTES, XATTR_GET, XATTR_LIST, XATTR_REMOVE, XATTR_SET } from '../shared/xattr-ops';
import { checkLinkTarget, checkWirePath, refusedPathErrno } from './wire-path';
import { ByteBudget, MAX_READ_BYTES_IN_FLIGHT } from './request-limits';
import { makeSocketFile } from './socket-file';
import type { FsHandler, FsMethodName } from '../../wire/services';
import type { pb } from '../../wire/schema';
import { isElf, prefetchBytecode, prefetchLibraries, prefetchSiblingBytecode } from './prefetch';
import { fingerprint } from '../shared/fingerprint';
import { LRUCache } from 'lru-cache';

export interface LocalServerLimits {
  /** Most files open at once for the session (a hostile peer cannot exhaust descriptors). */
  maxOpenFiles: number;
  /** Largest read answered in one reply. */
  maxReadBytes: number;
}

export const DEFAULT_LIMITS: LocalServerLimits = { maxOpenFiles: 4096, maxReadBytes: 4 * 1024 * 1024 };

// Offsets beyond this are not exact in a JS number, and node:fs would silently fall back to
// the file position: refuse them.
const MAX_FILE_OFFSET = Number.MAX_SAFE_INTEGER;
/** Files up to this size are sent whole in the reply to their open. */
export const INLINE_MAX = 64 * 1024;
// Flags that only mean something to the opener: creation is `Create`'s job, and O_DIRECT
// would impose alignment on our own buffers.
const OPEN_FLAGS_DROPPED = FS.O_CREAT | FS.O_EXCL | FS.O_NOCTTY | FS.O_DIRECT;
const UINT32_MAX = 0xffffffff;
const RENAME_NOREPLACE = 1;
const RENAME_EXCHANGE = 2;

const O_ACCMODE = 3; // Linux; node:fs does not export it

type Handlers = { [K in FsMethodName]: FsHandler<K> };

/**
 * Node has no mkfifo(3); the local coreutils one does it. The name goes through printf octal
 * escapes so that any bytes survive argv, and a failure is turned back into the errno the
 * system call would have given.
 */
async function mkfifo(p: Buffer, perm: string): Promise<void> {
  const escaped = [...p].map((b) => '\\' + b.toString(8).padStart(3, '0')).join('');
  const script = 'n=$(printf "$1x") && exec mkfifo -m "$2" -- "${n%x}"';
  const failed = await new Promise<boolean>((resolve) =>
    execFile('/bin/sh', ['-c', script, 'sh', escaped, perm], (err) => resolve(!!err)),
  );
  if (!failed) return;
  await fsp.lstat(p).then(
    () => {
      throw Object.assign(new Error('exists'), { code: 'EEXIST' });
    },
    async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      const slash = p.lastIndexOf(0x2f);
      await fsp.lstat(p.subarray(0, Math.max(slash, 1))); // ENOENT / ENOTDIR / EACCES of the parent
      throw Object.assign(new Error('mkfifo failed'), { code: 'EACCES' });
    },
  );
}

const ok = { errno: 0 };
const fail = (errno: number) => ({ errno });
/** A native call's 0 or -errno as a reply. */
const nativeResult = (r: number) => (r < 0 ? fail(-r) : ok);

/** Most entries listed ahead in one Readdir reply (see ReaddirRequest.nested_entries). */
export const MAX_NESTED_ENTRIES = 8192;
/** Entries stat'ed between two turns of the event loop while listing. */
const LSTAT_BATCH = 256;

/**
 * A directory's names in the filesystem's own order, as readdir(3) gives them locally
 * (fs.readdir sorts them: libuv's scandir uses alphasort), so that `tar c` or `ls -U`
 * through the mount make what they make locally.
 */
async function namesInOrder(p: Buffer): Promise<Buffer[]> {
  const dir = await fsp.opendir(p, { encoding: 'buffer' as BufferEncoding, bufferSize: 1024 });
  const names: Buffer[] = [];
  for await (const e of dir) names.push(e.name as unknown as Buffer);
  return names;
}

/**
 * A directory with every entry's attributes. The directory's own attributes are taken
 * first: if it changes while being listed, its ctime moves past them, so a cache keyed on
 * them never keeps a listing older than they are. Entries are stat'ed synchronously in
 * batches (a few microseconds each, where a promise per entry cost tens under load), with
 * the event loop given a turn between batches.
 */
async function listDirectory(p: Buffer): Promise<{ dirAttr: pb.Attr.$Properties; entries: pb.DirEntry.$Properties[] }> {
  const dirAttr = attrFromStats(await lstat(p));
  const names = await namesInOrder(p);
  const slash = p.length === 1 ? p : Buffer.concat([p, Buffer.from('/')]);
  const entries: pb.DirEntry.$Properties[] = [];
  for (let i = 0; i < names.length; i++) {
    if (i > 0 && i % LSTAT_BATCH === 0) await new Promise((r) => setImmediate(r));
    const name = names[i]!;
    try {
      entries.push({ name, attr: attrFromStats(lstatSync(Buffer.concat([slash, name]), { bigint: true })) });
    } catch {
      entries.push({ name }); // vanished while listing: the name alone, as readdir(3) would
    }
  }
  return { dirAttr, entries };
}

/** The paths of a listing's subdirectories (symlinks are not followed). */
function subdirectories(dir: Buffer, entries: pb.DirEntry.$Properties[]): Buffer[] {
  const slash = dir.length === 1 ? dir : Buffer.concat([dir, Buffer.from('/')]);
  return entries
    .filter((e) => e.attr && ((e.attr.mode ?? 0) & FS.S_IFMT) === FS.S_IFDIR)
    .map((e) => Buffer.concat([slash, e.name as Uint8Array]));
}

/** Success once the operation is done. */
const done = (op: Promise<unknown>) => op.then(() => ok);
const lstat = (p: Buffer): Promise<BigIntStats> => fsp.lstat(p, { bigint: true });

/** The filesystem request handlers for one session. */
export class LocalFileServer {
  private readonly files = new Map<number, FileHandle>();
  private nextHandle = 1;
  private closed = false;
  /** Read buffers held at once, across all requests of the session. */
  readonly readBudget = new ByteBudget(MAX_READ_BYTES_IN_FLIGHT);

  constructor(
    private readonly limits: LocalServerLimits = DEFAULT_LIMITS,
    /** The command's environment, for resolving the libraries an opened program will load (LD_LIBRARY_PATH); undefined: no prefetch. */
    private readonly prefetchEnv?: Readonly<Record<string, string | undefined>>,
  ) {}

  /** Contents already sent along with an earlier reply this session, by path and version. */
  private readonly sent = new LRUCache<string, string>({ max: 100_000 });

  /**
   * Drops the contents of files this session already sent in the same version (the agent
   * keeps them, in memory or in its persistent cache): a package's bytecode is offered with
   * each of its modules, but travels once.
   */
  private notYetSent(items: pb.Prefetched.$Properties[]): pb.Prefetched.$Properties[] {
    return items.map((it) => {
      if (!it.data || !it.attr || !it.path) return it;
      const key = Buffer.from(it.path).toString('latin1');
      const version = fingerprint(it.attr).toString('hex');
      if (this.sent.get(key) === version) return { path: it.path, attr: it.attr };
      this.sent.set(key, version);
      return it;
    });
  }

  get openFileCount(): number {
    return this.files.size;
  }

  /** Close every handle the agent left open (session end, whatever the way). */
  async closeAll(): Promise<void> {
    this.closed = true;
    const handles = [...this.files.values()];
    this.files.clear();
    await Promise.allSettled(handles.map((h) => h.close()));
  }

  private addHandle(fh: FileHandle): number {
    const id = this.nextHandle++;
    this.files.set(id, fh);
    return id;
  }

  private handle(id: number): FileHandle | undefined {
    return Number.isSafeInteger(id) ? this.files.get(id) : undefined;
  }

  /** Runs a handle operation: EBADF for a handle that is not this session's, the errno of any throw. */
  private write(req: pb.WriteRequest): Promise<pb.WriteReply.$Properties> {
    return this.onHandle(req.handle, async (fh) => {
      const data = req.data;
      if (req.offset + data.length > MAX_FILE_OFFSET) return fail(EINVAL);
      let written = 0;
      while (written < data.length) {
        const { bytesWritten } = await fh.write(data, written, data.length - written, req.offset + written);
        written += bytesWritten;
      }
      if (req.sync) await fh.sync();
      else if (req.datasync) await fh.datasync();
      return { errno: 0, written, attr: attrFromStats(await fh.stat({ bigint: true })) };
    });
  }

  private async onHandle<T extends object>(id: number, fn: (fh: FileHandle) => Promise<T>): Promise<T | { errno: number }> {
    const fh = this.handle(id);
    if (!fh) return fail(EBADF);
    try {
      return await fn(fh);
    } catch (err) {
      return fail(errnoOf(err));
    }
  }

  /** Runs a path operation: EINVAL for a path that fails the check, the errno of any throw. */
  private async onPath<T extends object>(
    raw: Uint8Array,
    fn: (p: Buffer) => Promise<T>,
  ): Promise<T | { errno: number }> {
    const p = checkWirePath(raw);
    if (!p) return fail(refusedPathErrno(raw));
    try {
      return await fn(p);
    } catch (err) {
      return fail(errnoOf(err));
    }
  }

  /**
   * Opens a file for the session (bounded in number), hands it to `then` with its stat,
   * and closes it again if anything fails before it is handed out.
   */
  private async openFile<T extends object>(
    p: Buffer,
    flags: number,
    mode: number | undefined,
    then: (fh: FileHandle, st: BigIntStats, attr: ReturnType<typeof attrFromStats>) => Promise<T>,
  ): Promise<(T & { errno: number; handle: number }) | { errno: number }> {
    if (this.closed) return fail(EBADF);
    if (this.files.size >= this.limits.maxOpenFiles) return fail(EMFILE);
    // O_NONBLOCK: opening a FIFO must not park a thread of the pool (FUSE never sends opens
    // of FIFOs or devices, the kernel serves those itself; only a hostile peer would).
    const fh = await fsp.open(p, flags | FS.O_NONBLOCK, mode);
    try {
      const st = await fh.stat({ bigint: true });
      if (!st.isFile() && !st.isDirectory()) throw Object.assign(new Error('not a file'), { code: 'EINVAL' });
      const extra = await then(fh, st, attrFromStats(st));
      return { ...extra, errno: 0, handle: this.addHandle(fh) };
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  readonly handlers: Handlers = {
    Getattr: (req) =>
      this.onPath(req.path, async (p) => {
        const st = await lstat(p);
        // A Python source: its bytecode comes along (see prefetchBytecode).
        const prefetched =
          this.prefetchEnv && st.isFile() && p.length > 3 && p.subarray(-3).toString() === '.py' ? this.notYetSent(await prefetchBytecode(p.toString('utf8'))) : [];
        return { errno: 0, attr: attrFromStats(st), prefetched };
      }),

    Readdir: (req) =>
      this.onPath(req.path, async (p) => {
        const { dirAttr, entries } = await listDirectory(p);
        const nested: pb.Listing.$Properties[] = [];
        let budget = Math.min(req.nestedEntries ?? 0, MAX_NESTED_ENTRIES) - entries.length;
        // Depth first, in listing order: the order in which find, ls -R or rm -r go on.
        const stack = subdirectories(p, entries).reverse();
        while (stack.length > 0 && budget > 0) {
          const dir = stack.pop()!;
          const listed = await listDirectory(dir).catch(() => undefined);
          if (!listed) continue; // unreadable: the agent asks for it itself if it gets there
          // Listed is listed: sent even if it overshoots (by one directory at most).
          budget -= listed.entries.length;
          nested.push({ path: dir, ...listed });
          stack.push(...subdirectories(dir, listed.entries).reverse());
        }
        return { errno: 0, entries, dirAttr, nested };
      }),

    Readlink: (req) =>
      this.onPath(req.path, async (p) => {
        const attr = attrFromStats(await lstat(p)); // before the target, as for Readdir
        return { errno: 0, attr, target: await fsp.readlink(p, { encoding: 'buffer' }) };
      }),

    Access: (req) => this.onPath(req.path, (p) => done(fsp.access(p, req.mask & 7))),

    Statfs: (req) =>
      this.onPath(req.path, async (p) => {
        const s = await fsp.statfs(p as unknown as string);
        return {
          errno: 0,
          bsize: s.bsize,
          frsize: s.bsize,
          blocks: s.blocks,
          bfree: s.bfree,
          bavail: s.bavail,
          files: s.files,
          ffree: s.ffree,
          namemax: 255,
        };
      }),

    Open: (req) =>
      this.onPath(req.path, (p) => {
        const flags = (req.flags >>> 0) & ~OPEN_FLAGS_DROPPED;
        return this.openFile(p, flags, undefined, async (fh, st, attr) => {
          // A small regular file comes back whole with its open: no read round trip.
          const readable = (flags & O_ACCMODE) !== FS.O_WRONLY;
          let reply: { attr: typeof attr; data?: Buffer; wholeFile?: boolean; prefetched?: pb.Prefetched.$Properties[] } = { attr };
          if (readable && st.isFile() && st.size <= BigInt(INLINE_MAX)) {
            const data = await readFully(fh, Buffer.allocUnsafe(INLINE_MAX + 1), 0);
            if (data.length <= INLINE_MAX) reply = { attr, data, wholeFile: true };
          }
          // An ELF program or library: the libraries it will load come along.
          if (readable && this.prefetchEnv && st.isFile() && (flags & O_ACCMODE) === FS.O_RDONLY) {
            const head = reply.data ?? (await readFully(fh, Buffer.alloc(4), 0));
            let prefetched: pb.Prefetched.$Properties[] = [];
            if (isElf(head)) prefetched = await prefetchLibraries(p.toString('utf8'), this.prefetchEnv);
            else if (p.subarray(-3).toString() === '.py') prefetched = await prefetchBytecode(p.toString('utf8'));
            else if (p.subarray(-4).toString() === '.pyc') prefetched = await prefetchSiblingBytecode(p.toString('utf8'));
            reply.prefetched = this.notYetSent(prefetched);
          }
          return reply;
        });
      }),

    Create: (req) =>
      this.onPath(req.path, (p) => {
        const flags = ((req.flags >>> 0) & ~(FS.O_NOCTTY | FS.O_DIRECT)) | FS.O_CREAT;
        return this.openFile(p, flags, req.mode & 0o7777, async (_fh, _st, attr) => ({ attr }));
      }),

    Read: (req) =>
      this.onHandle(req.handle, async (fh) => {
        if (req.size > this.limits.maxReadBytes || req.offset > MAX_FILE_OFFSET) return fail(EINVAL);
        return this.readBudget.with(req.size, async () => ({
          errno: 0,
          data: await readFully(fh, Buffer.allocUnsafe(req.size), req.offset),
        }));
      }),

    Write: (req) => this.write(req),

    Appends: async (req) => {
      // One after another, in the order given: each lands where its file ends by then.
      const replies: pb.WriteReply.$Properties[] = [];
      for (const w of req.writes) replies.push(await this.write(w as pb.WriteRequest)); // decoded: every field set
      return { replies };
    },

    Fsync: (req) => this.onHandle(req.handle, (fh) => done(req.datasync ? fh.datasync() : fh.sync())),

    Release: (req) =>
      this.onHandle(req.handle, (fh) => {
        this.files.delete(req.handle);
        return done(fh.close());
      }),

    Truncate: async (req) => {
      if (req.size > MAX_FILE_OFFSET) return fail(EINVAL);
      if (req.handle !== 0) return this.onHandle(req.handle, (fh) => done(fh.truncate(req.size)));
      return this.onPath(req.path, (p) => done(fsp.truncate(p, req.size)));
    },

    Mkdir: (req) => this.onPath(req.path, (p) => done(fsp.mkdir(p, req.mode & 0o7777))),

    Mknod: (req) =>
      this.onPath(req.path, async (p) => {
        const type = req.mode & FS.S_IFMT;
        const perm = (req.mode & 0o7777).toString(8);
        if (type === FS.S_IFREG) {
          await (await fsp.open(p, FS.O_CREAT | FS.O_EXCL | FS.O_WRONLY, req.mode & 0o7777)).close();
          return ok;
        }
        if (type === FS.S_IFSOCK) {
          await makeSocketFile(p, req.mode & 0o7777);
          return ok;
        }
        if (type !== FS.S_IFIFO) return fail(EPERM);
        await mkfifo(p, perm);
        return ok;
      }),

    Rmdir: (req) => this.onPath(req.path, (p) => done(fsp.rmdir(p))),

    Unlink: (req) => this.onPath(req.path, (p) => done(fsp.unlink(p))),

    Rename: async (req) => {
      const to = checkWirePath(req.to);
      if (!to) return fail(refusedPathErrno(req.to));
      if (req.flags === 0) return this.onPath(req.from, (from) => done(fsp.rename(from, to)));
      const native = localNative();
      if (!native || req.flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return fail(EINVAL);
      return this.onPath(req.from, async (from) => nativeResult(native.rename(from, to, req.flags)));
    },

    Symlink: async (req) => {
      const target = checkLinkTarget(req.target);
      if (!target) return fail(refusedPathErrno(req.target, true));
      return this.onPath(req.path, (p) => done(fsp.symlink(target, p)));
    },

    Link: async (req) => {
      const existing = checkWirePath(req.target);
      if (!existing) return fail(refusedPathErrno(req.target));
      return this.onPath(req.path, (p) => done(fsp.link(existing, p)));
    },

    Chmod: (req) => this.onPath(req.path, (p) => done(fsp.chmod(p, req.mode & 0o7777))),

    Chown: (req) =>
      this.onPath(req.path, async (p) => {
        const uid = req.uid === UINT32_MAX ? -1 : req.uid;
        const gid = req.gid === UINT32_MAX ? -1 : req.gid;
        if (uid < -1 || uid > UINT32_MAX || gid < -1 || gid > UINT32_MAX) return fail(EINVAL);
        await fsp.lchown(p, uid, gid);
        return ok;
      }),

    Utimens: (req) =>
      this.onPath(req.path, async (p) => {
        const native = localNative();
        if (native) {
          // Nanoseconds, times before 1970, and one time left as it is (touch -m).
          const ts = (t: pb.Timespec.$Properties | null | undefined, omit: boolean): [number, number] =>
            omit ? [0, UTIME_OMIT] : t ? [Number(t.sec ?? 0), (t.nsec ?? 0) % 1e9] : [0, UTIME_NOW];
          return nativeResult(native.utimens(p, ...ts(req.atime, req.atimeOmit), ...ts(req.mtime, req.mtimeOmit)));
        }
        const st = req.atimeOmit || req.mtimeOmit ? await fsp.lstat(p) : undefined;
        const seconds = (t: { sec?: number | null; nsec?: number | null } | null | undefined, omit: boolean, kept?: Date) => {
          if (omit) return kept!;
          if (!t) return Date.now() / 1000;
          const sec = t.sec ?? 0;
          // Node takes a negative number for "now"; a Date before 1970 it takes (to the ms).
          if (sec < 0) return new Date(sec * 1000 + Math.floor((t.nsec ?? 0) / 1e6));
          // Node keeps whole microseconds, truncating a double that is inexact: aim at the middle
          // of the microsecond so that it lands on the right one.
          return sec + (Math.floor((t.nsec ?? 0) / 1000) * 1000 + 500) / 1e9;
        };
        await fsp.lutimes(p, seconds(req.atime, req.atimeOmit, st?.atime), seconds(req.mtime, req.mtimeOmit, st?.mtime));
        return ok;
      }),

    Xattr: (req) =>
      this.onPath(req.path, async (p) => {
        const native = localNative();
        if (!native) return fail(EOPNOTSUPP);
        const name = Buffer.from(req.name);
        if ((req.op !== XATTR_LIST && (name.length === 0 || name.length > 255)) || name.includes(0)) return fail(ERANGE);
        const size = Math.min(req.size, MAX_XATTR_BYTES);
        const answer = (r: Buffer | number) =>
          typeof r === 'number' ? (r < 0 ? fail(-r) : { errno: 0, size: r }) : { errno: 0, value: r, size: r.length };
        switch (req.op) {
          case XATTR_GET:
            return answer(native.getxattr(p, name, size));
          case XATTR_LIST:
            return answer(native.listxattr(p, size));
          case XATTR_SET:
            if (req.value.length > MAX_XATTR_BYTES) return fail(E2BIG);
            return nativeResult(native.setxattr(p, name, Buffer.from(req.value), req.flags));
          case XATTR_REMOVE:
            return nativeResult(native.removexattr(p, name));
          default:
            return fail(EINVAL);
        }
      }),
  };
}
