// The FUSE operations the agent hands to fuse-native: each turns a kernel request into an
// RPC to the local file server (or a cache hit) and the reply into what the kernel
// expects. Errors keep their exact errno; a failed RPC (link down) becomes EIO so that a
// command never hangs on a dead connection.
import { fromByteString, toByteString } from './byte-string';
import { constants as FS } from 'node:fs';
import type { pb } from '../../wire/schema';
import { AttrCache, type CachedAttr } from './attr-cache';
import { FileReadAhead, WindowBudget } from './read-ahead';
import { ContentCache } from './content-cache';
import { LRUCache } from 'lru-cache';
import { Counters } from './counters';
import { timespecToMs } from '../shared/attr';
import { EIO, ENODATA, ENOENT, ENOTEMPTY } from '../shared/errno';
import { XATTR_GET, XATTR_REMOVE, XATTR_SET } from '../shared/xattr-ops';
import type { FsClient } from './rpc-client';
import { MAX_BLOB_BYTES, type PersistentCache } from './persistent-cache';
import type { FileHandle } from 'node:fs/promises';
import { sameVersion } from '../shared/fingerprint';
import { WriteBehind } from './write-behind';
import { HiddenFiles } from './hidden-files';
import { ChangeLog } from './change-log';
import { readFully } from '../shared/read-fully';

export interface FuseOpsOptions {
  attrTimeoutMs: number;
  negativeTimeoutMs: number;
  /** Called for every RPC failure that became EIO (for the agent's log). */
  onRpcError?(op: string, err: unknown): void;
  /** Cache hits and misses and FUSE operations are counted here (for --stats). */
  counters?: Counters;
  /** The cache of system trees kept between sessions (revalidated before the mount). */
  persistent?: PersistentCache;
  /** Where writes wait to go to the local side (the agent drains it at session end). */
  writeBehind?: WriteBehind;
  /** Directories listed by the client at session start (Session.Hello's reply). */
  warm?: { path?: Uint8Array | null; dirAttr?: CachedAttr | null; entries?: { name?: Uint8Array | null; attr?: CachedAttr | null }[] | null }[];
}

/** A callback in libfuse's style: 0 or -errno first, then the results. */
export type Cb = (err: number, ...rest: any[]) => void;
/** The path operations, by name (see fuse-nodes.ts, which calls them for kernel requests). */
export type PathOps = Record<string, ((...args: any[]) => void) | undefined>;
/** Attributes go to the kernel as the local side gave them (nanoseconds and all). */
const toFuseStat = (a: CachedAttr): CachedAttr => a;

const wirePath = fromByteString;
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
/** Entries of subdirectories asked for along with a directory the kernel reads. */
const NESTED_LISTING_ENTRIES = 4096;
/** Directories up to this size (about 400 entries on ext4) are listed whole on a miss. */
const MAX_LISTED_DIR_SIZE = 16 * 1024;
/**
 * In the cached trees a listing is kept between runs, so even big directories (/usr/bin,
 * /usr/lib/x86_64-linux-gnu: thousands of entries) are listed whole: one round trip once,
 * then every lookup there, present or absent, is answered on the remote.
 */
const MAX_LISTED_CACHED_DIR_SIZE = 1024 * 1024;

/** Whether what a reply says of a path may be cached (see change-log.ts). */
type Fresh = (path: string) => boolean;
const always: Fresh = () => true;

/** A positive errno from the local side, carried through a promise. */
class ErrnoError extends Error {
  constructor(readonly errno: number) {
    super(`errno ${errno}`);
  }
}

/**
 * Operations that must not run while writes to their path are still on the way (they would
 * see the file without them), and which of their arguments are paths: 'dir' waits for the
 * directory's entries, 'tree' for everything under it.
 */
const WAITS_FOR_WRITES: Record<string, ('path' | 'dir' | 'tree')[]> = {
  getattr: ['path'],
  readlink: ['path'],
  open: ['path'],
  create: ['path'],
  truncate: ['path'],
  ftruncate: ['path'],
  utimens: ['path'],
  chmod: ['path'],
  chown: ['path'],
  unlink: ['path'],
  link: ['path', 'path'],
  rename: ['tree', 'tree'],
  rmdir: ['tree'],
  readdir: ['dir'],
};

export function makeFuseOps(fs: FsClient, opts: FuseOpsOptions): PathOps {
  const counters = opts.counters ?? new Counters();
  const wb = opts.writeBehind ?? makeWriteBehind(fs);
  const ops = makeOps(fs, { ...opts, writeBehind: wb }, counters);
  for (const [name, fn] of Object.entries(ops)) {
    const waits = WAITS_FOR_WRITES[name];
    ops[name] = (...args: unknown[]) => {
      // Every path operation is counted by name (the kernel's requests by opcode: fuse.*).
      counters.inc(`op.${name}`);
      if (waits && wb.bytesPending > 0) {
        const drains = waits.map((kind, i) => {
          const p = args[i] as string;
          return kind === 'path' ? (wb.busy(p) ? wb.drainPath(p) : undefined) : kind === 'dir' ? wb.drainDir(p) : wb.drainTree(p);
        });
        if (drains.some(Boolean)) {
          counters.inc('write.waited');
          return void Promise.all(drains).then(() => fn!(...args));
        }
      }
      return fn!(...args);
    };
  }
  return ops;
}

/** The writes of a session go through this: each run of them is one Write RPC. */
export function makeWriteBehind(fs: FsClient): WriteBehind {
  const result = (r: { errno?: number | null; written?: number | null }, data: Buffer) =>
    r.errno ? r.errno : r.written === data.length ? 0 : EIO;
  return new WriteBehind(
    (handle, _path, offset, data, sync) =>
      fs.Write({ handle, offset, data, sync: sync === 'sync', datasync: sync === 'datasync' }).then((r) => result(r, data)),
    undefined,
    undefined,
    (writes) =>
      fs.Appends({ writes: writes.map((w) => ({ handle: w.handle, offset: 0, data: w.data })) }).then((r) =>
        writes.map((w, i) => (r.replies[i] ? result(r.replies[i]!, w.data) : EIO)),
      ),
  );
}

function makeOps(fs: FsClient, opts: FuseOpsOptions, counters: Counters): PathOps {
  const wb = opts.writeBehind!;
  const cache = new AttrCache(opts.attrTimeoutMs, opts.negativeTimeoutMs);
  const budget = new WindowBudget();
  const contents = new ContentCache();
  const hidden = new HiddenFiles();
  /** Replies fill the caches only with what is still current (see change-log.ts). */
  const changes = new ChangeLog((p) => wb.busy(p));
  wb.onLanded((p) => changes.note(p));
  const links = new LRUCache<string, { target: string; ino: number; ctime: number }>({ max: 50_000 });
  /** Lengths of attributes asked for without a buffer (or -ENODATA), by path, then name, for 1 s. */
  const xattrLengths = new LRUCache<string, Map<string, number>>({ max: 10_000, ttl: 1000 });
  /** Open files: their path (for invalidation), what was read ahead, whether written. */
  /**
   * Open files: their path (for invalidation), what was read ahead, whether written, the
   * blob or bytes a handle with no local side reads from, whether those went stale (the
   * file changed through the mount) and, then, the real handle opened in their place.
   */
  const open = new Map<
    number,
    { path: string; ra: FileReadAhead; written?: boolean; blob?: FileHandle; stale?: boolean; reopened?: Promise<number> }
  >();
  /** Handles opened with O_APPEND (see write). */
  const appending = new Set<number>();
  const persist = opts.persistent;
  /** Persistent entries for `path` are worth looking up / recording. */
  const persists = (path: string) => !!persist?.covers(path);
  /**
   * Handles of files opened from the content cache, with no file open on the local side.
   * fuse-native carries handles as uint32; the local side numbers up from 1, these down
   * from the top, so the two never meet.
   */
  let nextLocalHandle = 0xffffffff;
  const isLocalHandle = (fd: number) => fd > 0x80000000;

  /** One Read RPC (at most the local side's 4 MiB). */
  const fetchRange = (handle: number) => (offset: number, size: number) => {
    counters.inc('read.fetch');
    return fs.Read({ handle, offset, size }).then((r) => {
      if (r.errno !== 0) throw new ErrnoError(r.errno);
      counters.inc('read.fetched-bytes', r.data.length);
      return bytes(r.data);
    });
  };

  function track(handle: number, path: string, data?: Buffer, wholeFile = false, blob?: FileHandle): void {
    // A handle with no local side (opened from the content cache or a blob) reads those
    // bytes while they are current, even after the window budget dropped its window. Once
    // the file changed through the mount, it is opened for real: the command's fd reads the
    // file's current bytes, as locally.
    const fetch = async (offset: number, size: number): Promise<Buffer> => {
      const entry = open.get(handle);
      if (!isLocalHandle(handle)) return fetchRange(handle)(offset, size);
      if (entry && !entry.stale) {
        if (blob) return readFully(blob, Buffer.allocUnsafe(size), offset);
        if (wholeFile && data) return data.subarray(Math.min(offset, data.length), Math.min(offset + size, data.length));
      }
      // By the name the file has now (renamed since, say: see moveOpen).
      const real = entry ? await (entry.reopened ??= reopen(entry.path)) : 0;
      return fetchRange(real)(offset, size);
    };
    const ra = new FileReadAhead(fetch, budget);
    if (data && data.length > 0) ra.seed(data, wholeFile);
    else if (wholeFile) ra.seed(Buffer.alloc(0), true);
    open.get(handle)?.ra.clear();
    open.set(handle, { path, ra, blob });
  }

  /** A whole file through parallel reads of an open handle (for the persistent cache). */
  async function fetchWhole(handle: number, size: number): Promise<Buffer> {
    const chunk = 4 * 1024 * 1024;
    const out = Buffer.allocUnsafe(size);
    const starts: number[] = [];
    for (let at = 0; at < size; at += chunk) starts.push(at);
    const fetch = fetchRange(handle);
    const worker = async () => {
      for (let at = starts.shift(); at !== undefined; at = starts.shift()) {
        const data = await fetch(at, Math.min(chunk, size - at));
        if (data.length !== Math.min(chunk, size - at)) throw new ErrnoError(EIO); // changed meanwhile
        data.copy(out, at);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    return out;
  }

  /** Forget what is known of `path` here and in the persistent cache (see AttrCache.invalidate). */
  function forget(path: string, structural = false): void {
    changes.note(path);
    xattrLengths.delete(path);
    cache.invalidate(path, structural);
    persist?.invalidate(path, structural);
  }
  function forgetTree(path: string): void {
    changes.noteTree(path);
    cache.invalidateTree(path);
    persist?.invalidateTree(path);
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
    // Handles opened from the caches have no file open on the local side; once the name is
    // gone they could not get one (their reads after a change go to the file itself): they
    // get it now, while the name is there.
    const reopened = [...open].filter(([fd, f]) => isLocalHandle(fd) && f.path === src).map(([, f]) => (f.reopened ??= reopen(src)));
    Promise.allSettled([attr, ...reopened]).then(() => attr).then(
      (a) =>
        simple('unlink', fs.Unlink({ path: wirePath(src) }), cb, () => {
          hidden.add(hiddenPath, a ?? {});
          moveOpen(src, hiddenPath);
          changed(src);
          changed(hiddenPath);
          cache.invalidate(src, true);
        }),
      () => cb(-EIO),
    );
  }

  /**
   * Open handles follow their file to its new name (libfuse now names it `dest` in their
   * operations): so that a change under the new name reaches what they read ahead.
   */
  function moveOpen(src: string, dest: string): void {
    const prefix = src + '/';
    for (const f of open.values()) {
      if (f.path === src) f.path = dest;
      else if (f.path.startsWith(prefix)) f.path = dest + f.path.slice(src.length);
    }
    wb.renamed(src, dest);
  }

  /** The file at `path` changed through the mount: nothing read ahead of it is current. */
  function changed(path: string): void {
    for (const f of open.values()) {
      if (f.path !== path) continue;
      f.ra.clear();
      f.stale = true;
    }
    contents.forget(path);
    forget(path);
  }

  const readOnly = (flags: number) => (flags & 3) === FS.O_RDONLY && !(flags & FS.O_TRUNC);

  function getattrRpc(path: string, cb: Cb): void {
    const fresh = changes.since();
    fs.Getattr({ path: wirePath(path) }).then(
      (r) => {
        if (r.errno === ENOENT && fresh(path)) {
          cache.setMissing(path);
          if (persists(path)) persist!.recordAttr(path, undefined);
        }
        if (r.errno !== 0) return cb(-r.errno);
        if (r.prefetched?.length) takePrefetched(r.prefetched, fresh);
        if (fresh(path)) {
          cache.set(path, r.attr!);
          if (persists(path)) persist!.recordAttr(path, r.attr!);
        }
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
    ((attr.mode ?? 0) & FS.S_IFMT) === FS.S_IFDIR &&
    (attr.size ?? Infinity) <= (persists(dir) ? MAX_LISTED_CACHED_DIR_SIZE : MAX_LISTED_DIR_SIZE) &&
    !unlistable.has(dir);
  /** Listings in flight, so that concurrent misses in one directory share one round trip. */
  const listing = new Map<string, Promise<boolean>>();

  function listDir(dir: string): Promise<boolean> {
    let p = listing.get(dir);
    if (!p) {
      counters.inc('attr.listings');
      const fresh = changes.since();
      p = fs.Readdir({ path: wirePath(dir) }).then(
        (r) => {
          if (r.errno !== 0) {
            unlistable.set(dir, true);
            return false;
          }
          fillFromListing(dir, r.entries, r.dirAttr, fresh);
          return true;
        },
        () => false,
      );
      listing.set(dir, p);
      void p.finally(() => listing.delete(dir));
    }
    return p;
  }

  function fillFromListing(
    dir: string,
    entries: { name?: Uint8Array | null; attr?: CachedAttr | null }[],
    dirAttr: CachedAttr | null | undefined,
    fresh: Fresh,
  ): string[] {
    const names: string[] = [];
    let allFresh = fresh(dir);
    for (const e of entries) {
      const name = toByteString(e.name);
      names.push(name);
      if (!e.attr) continue;
      if (fresh(join(dir, name))) cache.set(join(dir, name), e.attr);
      else allFresh = false;
    }
    if (!fresh(dir)) return names;
    cache.setListing(dir, names);
    if (allFresh && dirAttr && persists(dir)) {
      persist!.recordListing(dir, dirAttr, names.map((name, i) => ({ name, attr: entries[i]!.attr ?? undefined })));
    }
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

  /** What the local side sent along with an open (see prefetch.ts): into every cache. */
  function takePrefetched(
    items: { path?: Uint8Array | null; attr?: CachedAttr | null; missing?: boolean | null; linkTarget?: Uint8Array | null; data?: Uint8Array | null }[],
    fresh: Fresh,
  ): void {
    for (const it of items) {
      const p = toByteString(it.path);
      if (!p.startsWith('/') || !fresh(p)) continue;
      counters.inc('prefetch.received');
      const keep = persists(p);
      if (it.missing) {
        cache.setMissing(p);
        if (keep) persist!.recordAttr(p, undefined);
        continue;
      }
      if (!it.attr) continue;
      cache.set(p, it.attr);
      if (keep) persist!.recordAttr(p, it.attr);
      if (it.linkTarget?.length) {
        const target = toByteString(it.linkTarget);
        links.set(p, { target, ino: it.attr.ino ?? 0, ctime: timespecToMs(it.attr.ctime) });
        if (keep) persist!.recordLink(p, it.attr, target);
      }
      if (it.data && it.data.length === Number(it.attr.size ?? -1)) {
        const data = bytes(it.data);
        contents.remember(p, it.attr, data);
        if (keep) void persist!.recordContent(p, it.attr, data).catch(() => undefined);
      }
    }
  }

  /**
   * Opens through the local side. A read-only open of a file in the cached trees fetches
   * the whole file (once: later sessions open it from the persistent cache's blob).
   */
  function openRpc(path: string, flags: number, cb: Cb): void {
    const fresh = changes.since();
    call('open', fs.Open({ path: wirePath(path), flags }), cb, (r) => {
      // The file changed while it was opened: its attributes and bytes in the reply may be
      // older than that change, and this handle reads the file itself.
      const current = fresh(path);
      if (r.prefetched.length > 0) takePrefetched(r.prefetched, fresh);
      if (flags & FS.O_TRUNC) changed(path);
      if (!current) {
        if (flags & FS.O_APPEND) appending.add(r.handle);
        track(r.handle, path);
        return cb(0, r.handle);
      }
      if (r.attr) cache.set(path, r.attr);
      if (r.wholeFile) contents.remember(path, r.attr, bytes(r.data));
      const size = Number(r.attr?.size ?? 0);
      const keep = readOnly(flags) && r.attr && persists(path) && ((r.attr.mode ?? 0) & FS.S_IFMT) === FS.S_IFREG;
      if (keep && r.wholeFile) void persist!.recordContent(path, r.attr!, bytes(r.data)).catch(() => undefined);
      if (keep && !r.wholeFile && size <= MAX_BLOB_BYTES) {
        counters.inc('persist.content-fetch');
        return void fetchWhole(r.handle, size).then(
          (data) => {
            void persist!.recordContent(path, r.attr!, data).catch(() => undefined);
            track(r.handle, path, data, true);
            cb(0, r.handle);
          },
          // Could not have it whole (changed while read, say): read it as any other file.
          () => {
            track(r.handle, path);
            cb(0, r.handle);
          },
        );
      }
      if (flags & FS.O_APPEND) appending.add(r.handle);
      track(r.handle, path, r.wholeFile ? bytes(r.data) : undefined, r.wholeFile);
      cb(0, r.handle);
    });
  }

  for (const l of opts.warm ?? []) {
    const dir = toByteString(l.path);
    if (!dir.startsWith('/')) continue;
    if (l.dirAttr) cache.set(dir, l.dirAttr);
    fillFromListing(dir, l.entries ?? [], l.dirAttr, always);
  }

  function readNow(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb): void {
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
  }

  /** A full listing with every entry's attributes, from the persistent cache or a recent one. */
  function knownListing(dir: string): { names: string[]; attrs: CachedAttr[] } | undefined {
    const kept = persists(dir) ? persist!.listing(dir) : undefined;
    if (kept) {
      counters.inc('persist.listing-hit');
      return kept;
    }
    const recent = cache.listing(dir);
    if (recent) counters.inc('attr.listing-hit');
    return recent;
  }

  /** Whether a listing of `dir` is at hand (cheap; knownListing builds it). */
  const isListed = (dir: string) => (persists(dir) && persist!.isListed(dir)) || cache.isListed(dir);

  const isDir = (a: CachedAttr) => ((a.mode ?? 0) & FS.S_IFMT) === FS.S_IFDIR;

  /** The listings of `dir` and, depth first, its subdirectories (see ReaddirRequest.nested_entries). */
  function takeNested(
    nested: { path?: Uint8Array | null; dirAttr?: CachedAttr | null; entries?: { name?: Uint8Array | null; attr?: CachedAttr | null }[] | null }[],
    fresh: Fresh,
  ): void {
    for (const l of nested) {
      const dir = toByteString(l.path);
      if (!dir.startsWith('/')) continue;
      if (l.dirAttr && fresh(dir)) cache.set(dir, l.dirAttr);
      fillFromListing(dir, l.entries ?? [], l.dirAttr, fresh);
    }
    counters.inc('readdir.nested', nested.length);
  }

  /** Subtree listings in flight, by the directory they start at. */
  const subtreeListing = new Map<string, Promise<void>>();
  function listSubtree(dir: string): Promise<void> {
    let p = subtreeListing.get(dir);
    if (!p) {
      counters.inc('readdir.subtree');
      const fresh = changes.since();
      p = fs.Readdir({ path: wirePath(dir), nestedEntries: NESTED_LISTING_ENTRIES }).then(
        (r) => {
          if (r.errno !== 0) return;
          fillFromListing(dir, r.entries, r.dirAttr, fresh);
          takeNested(r.nested, fresh);
        },
        () => undefined,
      );
      subtreeListing.set(dir, p);
      void p.finally(() => subtreeListing.delete(dir));
    }
    return p;
  }

  function readdirRpc(path: string, dirStat: CachedAttr, cb: Cb): void {
    // A program reading a directory mostly walks on into its subdirectories: have them
    // listed along (see ReaddirRequest.nested_entries).
    const fresh = changes.since();
    call('readdir', fs.Readdir({ path: wirePath(path), nestedEntries: NESTED_LISTING_ENTRIES }), cb, (r) => {
      takeNested(r.nested, fresh);
      const names = ['.', '..', ...fillFromListing(path, r.entries, r.dirAttr, fresh)];
      const stats: (CachedAttr | undefined)[] = [dirStat, dirStat, ...r.entries.map((e) => e.attr ?? undefined)];
      cb(0, names, stats);
    });
  }

  /** Release once the handle's writes are on the local side. */
  function releaseNow(path: string, fd: number, cb: Cb): void {
    const f = open.get(fd);
    open.delete(fd);
    appending.delete(fd);
    void f?.blob?.close().catch(() => undefined);
    if (f && !f.written && !f.blob) {
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
  }

  return {
    getattr(path: string, cb: Cb) {
      const hiddenAttr = hidden.get(path);
      if (hiddenAttr) return cb(0, toFuseStat(hiddenAttr));
      const hit = cache.get(path);
      counters.inc(hit ? 'attr.hit' : 'attr.miss');
      if (hit === 'missing') return cb(-ENOENT);
      if (hit) return cb(0, toFuseStat(hit));
      if (persists(path)) {
        const kept = persist!.attr(path);
        if (kept) {
          counters.inc('persist.hit');
          return kept === 'missing' ? cb(-ENOENT) : cb(0, toFuseStat(kept));
        }
        counters.inc('persist.miss');
      }
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
      // The kernel lists what we list: "." and ".." are ours to add. Their inode number
      // only has to be non-zero (readdir(3) hides entries with inode 0); stat gives the real one.
      const dirStat = toFuseStat({ mode: FS.S_IFDIR | 0o755, ino: 1 });
      const known = knownListing(path);
      if (known) {
        // A walk goes on into the subdirectories: have them listed while it reads this one.
        if (known.attrs.some((a, i) => isDir(a) && !isListed(join(path, known.names[i]!)))) void listSubtree(path);
        return cb(0, ['.', '..', ...known.names], [dirStat, dirStat, ...known.attrs.map(toFuseStat)]);
      }
      // A listing of a directory above may be on its way with this one in it.
      const pending = [...subtreeListing].find(([dir]) => path.startsWith(dir === '/' ? '/' : dir + '/'))?.[1];
      if (pending) {
        return void pending.then(() => {
          const again = knownListing(path);
          if (again) return cb(0, ['.', '..', ...again.names], [dirStat, dirStat, ...again.attrs.map(toFuseStat)]);
          readdirRpc(path, dirStat, cb);
        });
      }
      readdirRpc(path, dirStat, cb);
    },

    readlink(path: string, cb: Cb) {
      // A link's target changes only with its ctime: kept as long as its attributes are.
      const attr = cache.get(path);
      const known = links.get(path);
      if (known && attr && attr !== 'missing' && known.ino === attr.ino && known.ctime === timespecToMs(attr.ctime)) {
        counters.inc('readlink.hit');
        return cb(0, known.target);
      }
      const kept = persists(path) ? persist!.linkTarget(path) : undefined;
      const keptAttr = kept !== undefined ? persist!.attr(path) : undefined;
      if (kept !== undefined && (!attr || (attr !== 'missing' && keptAttr !== 'missing' && sameVersion(attr, keptAttr)))) {
        counters.inc('persist.readlink-hit');
        return cb(0, kept);
      }
      counters.inc('readlink.miss');
      call('readlink', fs.Readlink({ path: wirePath(path) }), cb, (r) => {
        const target = toByteString(r.target);
        const linkAttr = r.attr ?? (attr && attr !== 'missing' ? attr : undefined);
        if (linkAttr) links.set(path, { target, ino: linkAttr.ino ?? 0, ctime: timespecToMs(linkAttr.ctime) });
        if (r.attr && persists(path)) persist!.recordLink(path, r.attr, target);
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
        const blob = persists(path) ? persist!.blob(path) : undefined;
        const current = cache.get(path);
        if (blob && (!current || (current !== 'missing' && sameVersion(current, blob.attr)))) {
          return void persist!.blobs.open(blob.hash, blob.attr.size ?? 0).then((fh) => {
            if (!fh) return openRpc(path, flags, cb);
            counters.inc('persist.content-hit');
            const fd = nextLocalHandle--;
            track(fd, path, undefined, false, fh);
            cb(0, fd);
          });
        }
      }
      openRpc(path, flags, cb);
    },

    /** Makes and opens a file in one round trip, with the open's real flags (O_APPEND too). */
    create(path: string, flags: number, mode: number, cb: Cb) {
      call('create', fs.Create({ path: wirePath(path), flags, mode }), cb, (r) => {
        forget(path);
        changed(path);
        if (flags & FS.O_APPEND) appending.add(r.handle);
        track(r.handle, path);
        if (r.attr) cache.set(path, r.attr);
        cb(0, r.handle, r.attr ?? undefined);
      });
    },

    /** The blob file a handle reads from (a whole file in the persistent cache), if any. */
    blobFd(fd: number): number | undefined {
      const f = open.get(fd);
      return f?.blob && !f.stale ? f.blob.fd : undefined;
    },

    read(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) {
      if (wb.busy(path)) {
        // Our own writes first; what was read ahead before them is stale.
        return void wb.drainPath(path).then(() => {
          for (const o of open.values()) if (o.path === path) o.ra.clear();
          readNow(path, fd, buf, len, pos, cb);
        });
      }
      readNow(path, fd, buf, len, pos, cb);
    },

    write(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) {
      // The kernel's buffer is only ours until cb: copy it before it is kept.
      const data = Buffer.from(buf.subarray(0, len));
      const f = open.get(fd);
      if (f) f.written = true;
      changed(path);
      counters.inc('write.bytes', len);
      hidden.wrote(path, pos + len);
      // Taken now, sent behind (see write-behind.ts); an error comes back at flush or fsync.
      // O_APPEND: the local side appends wherever the file ends when a write is applied, so
      // such writes travel in the order they were taken (several to a request).
      if (appending.has(fd)) return void wb.append(fd, path, data).then((errno) => cb(errno ? -errno : len));
      wb.write(fd, path, pos, data).then((errno) => cb(errno ? -errno : len));
    },

    flush(_path: string, fd: number, cb: Cb) {
      // close(2): everything this handle wrote is on the local side, or close says why not.
      wb.flush(fd).then((errno) => {
        if (errno) return cb(-errno);
        const f = open.get(fd);
        if (f?.written) changed(f.path);
        cb(0);
      });
    },

    fsync(_path: string, datasync: number, fd: number, cb: Cb) {
      if (isLocalHandle(fd)) return cb(0); // opened read-only from the content cache
      wb.flushAndSync(fd, !!datasync).then(({ errno, synced }) => {
        if (errno) return cb(-errno);
        if (synced) return cb(0);
        simple('fsync', fs.Fsync({ handle: fd, datasync: !!datasync }), cb);
      });
    },

    release(path: string, fd: number, cb: Cb) {
      // The handle's writes reach the local side before the handle is closed there.
      if (isLocalHandle(fd)) return releaseNow(path, fd, cb);
      wb.release(fd).then(() => releaseNow(path, fd, cb));
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
      simple('mkdir', fs.Mkdir({ path: wirePath(path), mode }), cb, () => forget(path));
    },

    mknod(path: string, mode: number, dev: number, cb: Cb) {
      simple('mknod', fs.Mknod({ path: wirePath(path), mode, rdev: dev }), cb, () => forget(path));
    },

    rmdir(path: string, cb: Cb) {
      if (hidden.hasUnder(path)) return cb(-ENOTEMPTY);
      simple('rmdir', fs.Rmdir({ path: wirePath(path) }), cb, () => forgetTree(path));
    },

    unlink(path: string, cb: Cb) {
      if (hidden.remove(path)) return cb(0); // unlinked already, when it was hidden
      const before = cache.get(path); // unlinking changes the link count under its other names
      simple('unlink', fs.Unlink({ path: wirePath(path) }), cb, () => {
        if (before && before !== 'missing') cache.set(path, before);
        forget(path, true);
      });
    },

    /** flags: renameat2's RENAME_NOREPLACE, RENAME_EXCHANGE (done by the local side). */
    rename(src: string, dest: string, flags: number | Cb, maybeCb?: Cb) {
      const cb = typeof flags === 'function' ? flags : maybeCb!;
      const renameFlags = typeof flags === 'number' ? flags : 0;
      if (HiddenFiles.isHiddenName(dest)) return unlinkOpenFile(src, dest, cb);
      simple('rename', fs.Rename({ from: wirePath(src), to: wirePath(dest), flags: renameFlags }), cb, () => {
        wb.renamed(src, dest);
        hidden.moved(src, dest);
        moveOpen(src, dest);
        changed(src);
        changed(dest);
        forgetTree(src);
        forgetTree(dest);
      });
    },

    symlink(target: string, path: string, cb: Cb) {
      simple('symlink', fs.Symlink({ target: wirePath(target), path: wirePath(path) }), cb, () => forget(path));
    },

    link(existing: string, path: string, cb: Cb) {
      simple('link', fs.Link({ target: wirePath(existing), path: wirePath(path) }), cb, () => {
        forget(existing, true);
        forget(path, true);
      });
    },

    chmod(path: string, mode: number, cb: Cb) {
      simple('chmod', fs.Chmod({ path: wirePath(path), mode }), cb, () => forget(path));
    },

    chown(path: string, uid: number, gid: number, cb: Cb) {
      simple('chown', fs.Chown({ path: wirePath(path), uid, gid }), cb, () => forget(path));
    },

    /** Times as timespecs (nanoseconds); null: the local side's "now"; omitted: left as they are. */
    utimens(
      path: string,
      atime: pb.Timespec.$Properties | null,
      mtime: pb.Timespec.$Properties | null,
      atimeOmit: boolean,
      mtimeOmit: boolean,
      cb: Cb,
    ) {
      simple('utimens', fs.Utimens({ path: wirePath(path), atime, mtime, atimeOmit, mtimeOmit }), cb, () => forget(path));
    },

    /**
     * Extended attributes (XattrRequest.op). The kernel asks for security.capability before
     * every write to a file (to drop it): that answer is kept for a second, per path.
     */
    xattr(path: string, op: number, name: Buffer, value: Buffer | undefined, flags: number, size: number, cb: Cb) {
      const key = name.toString('latin1');
      const remember = (n: number) => {
        const known = xattrLengths.get(path) ?? new Map<string, number>();
        xattrLengths.set(path, known.set(key, n));
      };
      const cached = op === XATTR_GET && size === 0 ? xattrLengths.get(path)?.get(key) : undefined;
      if (cached !== undefined) return cached < 0 ? cb(cached) : cb(0, cached);
      const fresh = changes.since();
      call('xattr', fs.Xattr({ path: wirePath(path), op, name, value, flags, size }), (err: number) => {
        if (op === XATTR_GET && size === 0 && err === -ENODATA && fresh(path)) remember(err);
        cb(err);
      }, (r) => {
        if (op === XATTR_SET || op === XATTR_REMOVE) {
          forget(path);
          return cb(0);
        }
        if (size === 0) {
          if (op === XATTR_GET && fresh(path)) remember(r.size);
          return cb(0, r.size);
        }
        cb(0, bytes(r.value));
      });
    },
  };
}

