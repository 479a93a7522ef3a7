// The FUSE operations the agent hands to fuse-native: each turns a kernel request into an
// RPC to the local file server (or a cache hit) and the reply into what the kernel
// expects. Errors keep their exact errno; a failed RPC (link down) becomes EIO so that a
// command never hangs on a dead connection.
import { constants as FS } from 'node:fs';
import type { Cb, FuseOps, FuseStat } from 'fuse-native';
import { AttrCache, type CachedAttr } from './attr-cache';
import { FileReadAhead, WindowBudget } from './read-ahead';
import { ContentCache } from './content-cache';
import { LRUCache } from 'lru-cache';
import { Counters } from './counters';
import { timespecFromMs, timespecToMs } from './attr';
import { EIO, ENOENT, ENOTEMPTY } from './errno';
import type { FsClient } from './rpc-client';
import { HiddenFiles } from './hidden-files';

export interface FuseOpsOptions {
  attrTimeoutMs: number;
  negativeTimeoutMs: number;
  /** Called for every RPC failure that became EIO (for the agent's log). */
  onRpcError?(op: string, err: unknown): void;
  /** Cache hits and misses and FUSE operations are counted here (for --stats). */
  counters?: Counters;
}

function toFuseStat(a: CachedAttr): FuseStat {
  return {
    mode: a.mode ?? 0,
    uid: a.uid ?? 0,
    gid: a.gid ?? 0,
    size: a.size ?? 0,
    nlink: a.nlink ?? 1,
    ino: a.ino ?? 0,
    rdev: a.rdev ?? 0,
    blksize: a.blksize ?? 4096,
    blocks: a.blocks ?? 0,
    atime: timespecToMs(a.atime),
    mtime: timespecToMs(a.mtime),
    ctime: timespecToMs(a.ctime),
  };
}

const wirePath = (p: string) => Buffer.from(p, 'utf8');
/** Largest file kept whole by the agent between opens. */
const MAX_CACHED_FILE = 8 * 1024 * 1024;
/** Bytes from a decoded message as a Buffer (protobufjs gives Buffers in Node; be sure). */
const bytes = (u: Uint8Array | null | undefined): Buffer =>
  !u ? Buffer.alloc(0) : Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.length);
const join = (dir: string, name: string) => (dir === '/' ? '/' + name : dir + '/' + name);
const parentOf = (path: string): string | undefined => {
  if (path === '/') return undefined;
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
};
/** Directories up to this size (about 400 entries on ext4) are listed whole on a miss. */
const MAX_LISTED_DIR_SIZE = 16 * 1024;

/** A positive errno from the local side, carried through a promise. */
class ErrnoError extends Error {
  constructor(readonly errno: number) {
    super(`errno ${errno}`);
  }
}

export function makeFuseOps(fs: FsClient, opts: FuseOpsOptions): FuseOps {
  const counters = opts.counters ?? new Counters();
  const ops = makeOps(fs, opts, counters);
  // Every operation the kernel asks for is counted by name.
  for (const [name, fn] of Object.entries(ops)) {
    ops[name] = (...args: unknown[]) => {
      counters.inc(`fuse.${name}`);
      return fn!(...args);
    };
  }
  return ops;
}

function makeOps(fs: FsClient, opts: FuseOpsOptions, counters: Counters): FuseOps {
  const cache = new AttrCache(opts.attrTimeoutMs, opts.negativeTimeoutMs);
  const budget = new WindowBudget();
  const contents = new ContentCache();
  const hidden = new HiddenFiles();
  const links = new LRUCache<string, { target: string; ino: number; ctime: number }>({ max: 50_000 });
  /** Open files: their path (for invalidation), what was read ahead, whether written. */
  const open = new Map<number, { path: string; ra: FileReadAhead; written?: boolean; reopened?: Promise<number> }>();
  /**
   * Handles of files opened from the content cache, with no file open on the local side.
   * fuse-native carries handles as uint32; the local side numbers up from 1, these down
   * from the top, so the two never meet.
   */
  let nextLocalHandle = 0xffffffff;
  const isLocalHandle = (fd: number) => fd > 0x80000000;

  function track(handle: number, path: string, data?: Buffer, wholeFile = false): void {
    const fetch = async (offset: number, size: number) => {
      counters.inc('read.fetch');
      // A file opened from the content cache has no local handle: once that content is stale
      // (the file changed through the mount), it is opened for real, as the command's fd
      // still reads the file's current bytes.
      const entry = open.get(handle);
      const real = !isLocalHandle(handle) ? handle : entry ? await (entry.reopened ??= reopen(path)) : 0;
      return fs.Read({ handle: real, offset, size }).then((r) => {
        if (r.errno !== 0) throw new ErrnoError(r.errno);
        counters.inc('read.fetched-bytes', r.data.length);
        return bytes(r.data);
      });
    };
    const ra = new FileReadAhead(fetch, budget);
    if (data && data.length > 0) ra.seed(data, wholeFile);
    else if (wholeFile) ra.seed(Buffer.alloc(0), true);
    open.get(handle)?.ra.clear();
    open.set(handle, { path, ra });
  }

  function reopen(path: string): Promise<number> {
    return fs.Open({ path: wirePath(path), flags: FS.O_RDONLY }).then((r) => {
      if (r.errno !== 0) throw new ErrnoError(r.errno);
      return r.handle;
    });
  }

  /** Unlinks `src`, which is open, where libfuse would rename it to `hiddenPath` (see hidden-files.ts). */
  function unlinkOpenFile(src: string, hiddenPath: string, cb: Cb): void {
    const known = cache.get(src);
    const attr: Promise<CachedAttr | undefined> =
      known && known !== 'missing' ? Promise.resolve(known) : fs.Getattr({ path: wirePath(src) }).then((r) => r.attr ?? undefined);
    attr.then(
      (a) =>
        simple('unlink', fs.Unlink({ path: wirePath(src) }), cb, () => {
          hidden.add(hiddenPath, a ?? {});
          changed(src);
          cache.invalidate(src, true);
        }),
      () => cb(-EIO),
    );
  }

  /** The file at `path` changed through the mount: nothing read ahead of it is current. */
  function changed(path: string): void {
    for (const f of open.values()) if (f.path === path) f.ra.clear();
    contents.forget(path);
    cache.invalidate(path);
  }

  const readOnly = (flags: number) => (flags & 3) === FS.O_RDONLY && !(flags & FS.O_TRUNC);

  function getattrRpc(path: string, cb: Cb): void {
    fs.Getattr({ path: wirePath(path) }).then(
      (r) => {
        if (r.errno === ENOENT) cache.setMissing(path);
        if (r.errno !== 0) return cb(-r.errno);
        cache.set(path, r.attr!);
        cb(0, toFuseStat(r.attr!));
      },
      (err) => {
        opts.onRpcError?.('getattr', err);
        cb(-EIO);
      },
    );
  }

  /** Directories we may not list (EACCES and the like): asked name by name instead. */
  const unlistable = new LRUCache<string, true>({ max: 10_000, ttl: 10_000 });
  const listable = (dir: string, attr: CachedAttr) =>
    ((attr.mode ?? 0) & FS.S_IFMT) === FS.S_IFDIR && (attr.size ?? Infinity) <= MAX_LISTED_DIR_SIZE && !unlistable.has(dir);
  /** Listings in flight, so that concurrent misses in one directory share one round trip. */
  const listing = new Map<string, Promise<boolean>>();

  function listDir(dir: string): Promise<boolean> {
    let p = listing.get(dir);
    if (!p) {
      counters.inc('attr.listings');
      p = fs.Readdir({ path: wirePath(dir) }).then(
        (r) => {
          if (r.errno !== 0) {
            unlistable.set(dir, true);
            return false;
          }
          fillFromListing(dir, r.entries);
          return true;
        },
        () => false,
      );
      listing.set(dir, p);
      void p.finally(() => listing.delete(dir));
    }
    return p;
  }

  function fillFromListing(dir: string, entries: { name?: Uint8Array | null; attr?: CachedAttr | null }[]): string[] {
    const names: string[] = [];
    for (const e of entries) {
      const name = bytes(e.name).toString('utf8');
      names.push(name);
      if (e.attr) cache.set(join(dir, name), e.attr);
    }
    cache.setListing(dir, names);
    return names;
  }

  /** Run an RPC; hand its positive errno (or EIO on transport failure) to `reply` as -errno. */
  function call<T extends { errno: number }>(op: string, rpc: Promise<T>, cb: Cb, reply: (r: T) => void): void {
    rpc.then(
      (r) => (r.errno !== 0 ? cb(-r.errno) : reply(r)),
      (err) => {
        opts.onRpcError?.(op, err);
        cb(-EIO);
      },
    );
  }

  /** For operations whose only answer is success or an errno; `after` runs on success. */
  function simple(op: string, rpc: Promise<{ errno: number }>, cb: Cb, after?: () => void): void {
    call(op, rpc, cb, () => {
      after?.();
      cb(0);
    });
  }

  return {
    getattr(path: string, cb: Cb) {
      const hiddenAttr = hidden.get(path);
      if (hiddenAttr) return cb(0, toFuseStat(hiddenAttr));
      const hit = cache.get(path);
      counters.inc(hit ? 'attr.hit' : 'attr.miss');
      if (hit === 'missing') return cb(-ENOENT);
      if (hit) return cb(0, toFuseStat(hit));
      const listed = cache.fromListing(path);
      if (listed === 'absent') {
        counters.inc('attr.absent-from-listing');
        cache.setMissing(path);
        return cb(-ENOENT);
      }
      // A miss in a directory of moderate size: list it whole (one round trip answers this
      // name and every sibling, present or not: PATH and library searches probe many).
      const parent = parentOf(path);
      const parentAttr = parent === undefined ? undefined : cache.get(parent);
      if (listed === undefined && parent !== undefined && parentAttr && parentAttr !== 'missing' && listable(parent, parentAttr)) {
        return listDir(parent).then((ok) => {
          const again = ok ? cache.get(path) : undefined;
          if (again === 'missing' || (ok && cache.fromListing(path) === 'absent')) return cb(-ENOENT);
          if (again) return cb(0, toFuseStat(again));
          getattrRpc(path, cb);
        });
      }
      getattrRpc(path, cb);
    },

    readdir(path: string, cb: Cb) {
      call('readdir', fs.Readdir({ path: wirePath(path) }), cb, (r) => {
        // The kernel lists what we list: "." and ".." are ours to add. Their inode number
        // only has to be non-zero (readdir(3) hides entries with inode 0); stat gives the real one.
        const dirStat = toFuseStat({ mode: FS.S_IFDIR | 0o755, ino: 1 });
        const names = ['.', '..', ...fillFromListing(path, r.entries)];
        const stats: FuseStat[] = [dirStat, dirStat, ...r.entries.map((e) => toFuseStat(e.attr ?? { mode: 0, ino: 1 }))];
        cb(0, names, stats);
      });
    },

    readlink(path: string, cb: Cb) {
      // A link's target changes only with its ctime: kept as long as its attributes are.
      const attr = cache.get(path);
      const known = links.get(path);
      if (known && attr && attr !== 'missing' && known.ino === attr.ino && known.ctime === timespecToMs(attr.ctime)) {
        counters.inc('readlink.hit');
        return cb(0, known.target);
      }
      counters.inc('readlink.miss');
      call('readlink', fs.Readlink({ path: wirePath(path) }), cb, (r) => {
        const target = bytes(r.target).toString('utf8');
        if (attr && attr !== 'missing') links.set(path, { target, ino: attr.ino ?? 0, ctime: timespecToMs(attr.ctime) });
        cb(0, target);
      });
    },

    access(path: string, mode: number, cb: Cb) {
      simple('access', fs.Access({ path: wirePath(path), mask: mode }), cb);
    },

    statfs(path: string, cb: Cb) {
      call('statfs', fs.Statfs({ path: wirePath(path) }), cb, (r) =>
        cb(0, {
          bsize: r.bsize,
          frsize: r.frsize,
          blocks: r.blocks,
          bfree: r.bfree,
          bavail: r.bavail,
          files: r.files,
          ffree: r.ffree,
          favail: r.ffree,
          fsid: 0,
          flag: 0,
          namemax: r.namemax,
        }),
      );
    },

    open(path: string, flags: number, cb: Cb) {
      if (readOnly(flags)) {
        const known = contents.lookup(path, cache.get(path));
        counters.inc(known ? 'content.hit' : 'content.miss');
        if (known) {
          const fd = nextLocalHandle--;
          track(fd, path, known, true);
          return cb(0, fd);
        }
      }
      call('open', fs.Open({ path: wirePath(path), flags }), cb, (r) => {
        if (r.attr) cache.set(path, r.attr);
        if (flags & FS.O_TRUNC) changed(path);
        if (r.wholeFile) contents.remember(path, r.attr, bytes(r.data));
        track(r.handle, path, r.wholeFile ? bytes(r.data) : undefined, r.wholeFile);
        cb(0, r.handle);
      });
    },

    create(path: string, mode: number, cb: Cb) {
      cache.invalidate(path);
      call('create', fs.Create({ path: wirePath(path), flags: FS.O_RDWR | FS.O_CREAT, mode }), cb, (r) => {
        changed(path);
        track(r.handle, path);
        cb(0, r.handle);
      });
    },

    read(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) {
      let f = open.get(fd);
      if (!f) {
        track(fd, path);
        f = open.get(fd)!;
      }
      f.ra.read(pos, len).then(
        (data) => {
          data.copy(buf, 0, 0, Math.min(data.length, len));
          cb(Math.min(data.length, len));
        },
        (err) => {
          if (err instanceof ErrnoError) return cb(-err.errno);
          opts.onRpcError?.('read', err);
          cb(-EIO);
        },
      );
    },

    write(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) {
      // The kernel's buffer is only ours until cb: copy it before the RPC may encode it.
      const data = Buffer.from(buf.subarray(0, len));
      const f = open.get(fd);
      if (f) f.written = true;
      changed(path);
      fs.Write({ handle: fd, offset: pos, data }).then(
        (r) => {
          changed(path);
          if (r.errno === 0) hidden.wrote(path, pos + r.written);
          cb(r.errno !== 0 ? -r.errno : r.written);
        },
        (err) => {
          opts.onRpcError?.('write', err);
          cb(-EIO);
        },
      );
    },

    flush(_path: string, _fd: number, cb: Cb) {
      cb(0); // writes are already on the local side when they return
    },

    fsync(_path: string, datasync: number, fd: number, cb: Cb) {
      if (isLocalHandle(fd)) return cb(0); // opened read-only from the content cache
      simple('fsync', fs.Fsync({ handle: fd, datasync: !!datasync }), cb);
    },

    release(path: string, fd: number, cb: Cb) {
      const f = open.get(fd);
      open.delete(fd);
      if (f && !f.written) {
        // A file read from start to end is kept for the next open of it.
        const attr = cache.get(path);
        if (attr && attr !== 'missing' && (attr.size ?? Infinity) <= MAX_CACHED_FILE) {
          void f.ra.wholeContent(attr.size ?? 0).then((data) => {
            if (data) contents.remember(path, attr, data);
            f.ra.clear();
          });
        } else f.ra.clear();
      } else f?.ra.clear();
      if (isLocalHandle(fd)) {
        void f?.reopened?.then((handle) => fs.Release({ handle }), () => undefined);
        return cb(0);
      }
      // Closing changes nothing on disk unless the handle wrote.
      simple('release', fs.Release({ handle: fd }), cb, () => f?.written && changed(path));
    },

    truncate(path: string, size: number, cb: Cb) {
      simple('truncate', fs.Truncate({ path: wirePath(path), size }), cb, () => changed(path));
    },

    ftruncate(path: string, fd: number, size: number, cb: Cb) {
      simple('ftruncate', fs.Truncate({ path: wirePath(path), size, handle: fd }), cb, () => {
        hidden.truncated(path, size);
        changed(path);
      });
    },

    mkdir(path: string, mode: number, cb: Cb) {
      simple('mkdir', fs.Mkdir({ path: wirePath(path), mode }), cb, () => cache.invalidate(path));
    },

    mknod(path: string, mode: number, dev: number, cb: Cb) {
      simple('mknod', fs.Mknod({ path: wirePath(path), mode, rdev: dev }), cb, () => cache.invalidate(path));
    },

    rmdir(path: string, cb: Cb) {
      if (hidden.hasUnder(path)) return cb(-ENOTEMPTY);
      simple('rmdir', fs.Rmdir({ path: wirePath(path) }), cb, () => cache.invalidateTree(path));
    },

    unlink(path: string, cb: Cb) {
      if (hidden.remove(path)) return cb(0); // unlinked already, when it was hidden
      const before = cache.get(path); // unlinking changes the link count under its other names
      simple('unlink', fs.Unlink({ path: wirePath(path) }), cb, () => {
        if (before && before !== 'missing') cache.set(path, before);
        cache.invalidate(path, true);
      });
    },

    rename(src: string, dest: string, cb: Cb) {
      if (HiddenFiles.isHiddenName(dest)) return unlinkOpenFile(src, dest, cb);
      simple('rename', fs.Rename({ from: wirePath(src), to: wirePath(dest) }), cb, () => {
        hidden.moved(src, dest);
        changed(src);
        changed(dest);
        cache.invalidateTree(src);
        cache.invalidateTree(dest);
      });
    },

    symlink(target: string, path: string, cb: Cb) {
      simple('symlink', fs.Symlink({ target: wirePath(target), path: wirePath(path) }), cb, () => cache.invalidate(path));
    },

    link(existing: string, path: string, cb: Cb) {
      simple('link', fs.Link({ target: wirePath(existing), path: wirePath(path) }), cb, () => {
        cache.invalidate(existing, true);
        cache.invalidate(path, true);
      });
    },

    chmod(path: string, mode: number, cb: Cb) {
      simple('chmod', fs.Chmod({ path: wirePath(path), mode }), cb, () => cache.invalidate(path));
    },

    chown(path: string, uid: number, gid: number, cb: Cb) {
      simple('chown', fs.Chown({ path: wirePath(path), uid, gid }), cb, () => cache.invalidate(path));
    },

    utimens(path: string, atime: number, mtime: number, cb: Cb) {
      simple(
        'utimens',
        fs.Utimens({ path: wirePath(path), atime: timespecFromMs(atime), mtime: timespecFromMs(mtime) }),
        cb,
        () => cache.invalidate(path),
      );
    },
  };
}
