// What the agent's path operations share: the caches, the open handles, the write-behind
// queue and the RPC client. Each concern's operations (attributes, directories, reading,
// writing, namespace changes, xattrs) live in a file of their own and take this state.
import { LRUCache } from 'lru-cache';
import type { FileHandle } from 'node:fs/promises';
import { fromByteString } from '../byte-string';
import { AttrCache, type CachedAttr } from '../attr-cache';
import { FileReadAhead, WindowBudget } from '../read-ahead';
import { ContentCache } from '../content-cache';
import type { Counters } from '../counters';
import type { FsClient } from '../rpc-client';
import type { PersistentCache } from '../persistent-cache';
import type { WriteBehind } from '../write-behind';
import { HiddenFiles } from '../hidden-files';
import { ChangeLog } from '../change-log';
import type { KnownXattrs } from './xattrs';
import { EIO } from '../../shared/errno';

export interface PathOpsOptions {
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

/** Paths go on the wire as the bytes they are (see byte-string.ts). */
export const wirePath = fromByteString;
/** Bytes from a decoded message as a Buffer (protobufjs gives Buffers in Node; be sure). */
export const bytes = (u: Uint8Array | null | undefined): Buffer =>
  !u ? Buffer.alloc(0) : Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.length);
export const join = (dir: string, name: string) => (dir === '/' ? '/' + name : dir + '/' + name);
export const parentOf = (path: string): string | undefined => {
  if (path === '/') return undefined;
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
};

/** Whether what a reply says of a path may be cached (see change-log.ts). */
export type Fresh = (path: string) => boolean;
export const always: Fresh = () => true;

/** A positive errno from the local side, carried through a promise. */
export class ErrnoError extends Error {
  constructor(readonly errno: number) {
    super(`errno ${errno}`);
  }
}

/** An open file: its path (for invalidation), what was read ahead, whether written, and the rest below. */
export interface OpenFile {
  path: string;
  ra: FileReadAhead;
  written?: boolean;
  /** The blob a handle with no local side reads from (a whole file in the persistent cache). */
  blob?: FileHandle;
  /** The file changed through the mount: what the handle kept is not current. */
  stale?: boolean;
  /** The real handle opened in place of a cached one, once it went stale. */
  reopened?: Promise<number>;
}

export class PathOpsState {
  readonly cache: AttrCache;
  readonly budget = new WindowBudget();
  readonly contents = new ContentCache();
  readonly hidden = new HiddenFiles();
  /** Replies fill the caches only with what is still current (see change-log.ts). */
  readonly changes: ChangeLog;
  readonly links = new LRUCache<string, { target: string; ino: number; ctime: number }>({ max: 50_000 });
  /** Lengths of attributes (or -ENODATA), by path, then name: for 1 s, or while the file's version is the one they were read at (xattrs.ts). */
  readonly xattrLengths = new LRUCache<string, KnownXattrs>({ max: 10_000, ttl: 1000 });
  readonly open = new Map<number, OpenFile>();
  /** Handles opened with O_APPEND (see writing.ts). */
  readonly appending = new Set<number>();
  readonly persist: PersistentCache | undefined;
  /**
   * Handles of files opened from the content cache, with no file open on the local side.
   * The local side numbers up from 1, these down from the top, so the two never meet.
   */
  private nextLocalHandle = 0xffffffff;

  constructor(
    readonly fs: FsClient,
    readonly opts: PathOpsOptions,
    readonly counters: Counters,
    readonly wb: WriteBehind,
  ) {
    this.cache = new AttrCache(opts.attrTimeoutMs, opts.negativeTimeoutMs);
    this.changes = new ChangeLog((p) => wb.busy(p));
    wb.onLanded((p) => this.changes.note(p));
    // A file written through here: its attributes as the last write left them (see onAttrKnown).
    wb.onAttrKnown((p, attr) => this.cache.set(p, attr as CachedAttr));
    this.persist = opts.persistent;
  }

  /** Persistent entries for `path` are worth looking up / recording. */
  persists(path: string): boolean {
    return !!this.persist?.covers(path);
  }

  isLocalHandle(fd: number): boolean {
    return fd > 0x80000000;
  }

  newLocalHandle(): number {
    return this.nextLocalHandle--;
  }

  /** Run an RPC; hand its positive errno (or EIO on transport failure) to `reply` as -errno. */
  call<T extends { errno: number }>(op: string, rpc: Promise<T>, cb: Cb, reply: (r: T) => void): void {
    rpc.then(
      (r) => (r.errno !== 0 ? cb(-r.errno) : reply(r)),
      (err) => {
        this.opts.onRpcError?.(op, err);
        cb(-EIO);
      },
    );
  }

  /** For operations whose only answer is success or an errno; `after` runs on success. */
  simple(op: string, rpc: Promise<{ errno: number }>, cb: Cb, after?: () => void): void {
    this.call(op, rpc, cb, () => {
      after?.();
      cb(0);
    });
  }
}
