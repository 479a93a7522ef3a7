// The agent's cache of the local system trees (/usr, /etc, ... see cache-scope.ts) kept on
// the remote between sessions: attributes, absences, full directory listings, symlink
// targets and, as content-addressed blobs, whole file contents.
//
// Coherence: every entry carries the attributes it was cached with. At session start the
// agent sends one fingerprint per entry in Session.Hello; the client compares them with the
// local disk and names the stale ones, which are dropped before anything is served. So the
// whole cache is revalidated in the one round trip the session makes anyway, and a file
// changed locally between two runs is seen changed in the second. Within a session, entries
// change only through the mount (every change there drops what it affects); a change made
// by another local process during a run is seen by the next run.
//
// Several sessions may share the store: blobs are written atomically under their hash, and
// the index is merged (under a lock file) into whatever is on disk when a session ends. An
// entry wrongly kept by a merge race is still caught by the next revalidation, since
// correctness never rests on the index bookkeeping, only on the fingerprints.
import { fromByteString, toByteString } from './byte-string';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import { pb } from '../../wire/schema';
import * as protobuf from 'protobufjs/minimal';
import type { CachedAttr } from './attr-cache';
import { BlobStore } from './blob-store';
import { CacheScope } from '../shared/cache-scope';
import { fingerprint, sameVersion as sameAttr } from '../shared/fingerprint';
import { decodeProbes, encodeProbes, type Probe } from '../shared/probe-list';
import { LazyMap } from './lazy-entries';
import { removeOnExit, settled } from './exit-cleanup';

const INDEX_FORMAT = 2; // 2: attributes carry st_dev (the inode table keys on device + inode)
/** Entries decoded per turn of the event loop at session start. */
const DECODE_BATCH = 256;
/** The index file: this, a u32 length, the packed probes, then the CacheIndex message. */
const INDEX_MAGIC = Buffer.from('OUTRUN-CACHE-2\n');
/** Most entries kept (each costs ~100 bytes in the index and a probe at session start). */
export const MAX_ENTRIES = 200_000;
/** Largest file kept whole. */
export const MAX_BLOB_BYTES = 64 * 1024 * 1024;
const LOCK_STALE_MS = 30_000;
const USED_GRANULARITY_S = 3600;
const LOCK_WAIT_MS = 3_000;

interface Entry {
  attr?: CachedAttr; // undefined: the path does not exist
  target?: string;
  names?: Set<string>;
  blob?: string;
  used: number;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFREG = 0o100000;
const typeOf = (a: CachedAttr | undefined) => (a?.mode ?? 0) & S_IFMT;

const parentOf = (p: string) => (p.lastIndexOf('/') <= 0 ? '/' : p.slice(0, p.lastIndexOf('/')));
const nameOf = (p: string) => p.slice(p.lastIndexOf('/') + 1);

export interface PersistentCacheOptions {
  /** The store's directory, e.g. /var/cache/outrun/fs/<client key>. */
  dir: string;
  scope: CacheScope;
  /** Bound on the blobs' total size. */
  maxBytes: number;
  log?: (msg: string) => void;
}

export class PersistentCache {
  private readonly entries = new LazyMap<Entry>((path, bytes) => this.decodeEntry(path, bytes));
  /** Paths whose entry this session created, changed or used: what a merge writes back. */
  private readonly touched = new Set<string>();
  /** Paths whose entry this session dropped: what a merge removes. */
  private readonly dropped = new Set<string>();
  private probeOrder: string[] = [];
  private packedProbes: Buffer = Buffer.alloc(0);
  private undecoded: Buffer = Buffer.alloc(0);
  private loading: Promise<void> | undefined;
  readonly blobs: BlobStore;
  private readonly now = Math.floor(Date.now() / 1000);
  readonly stats = { loaded: 0, stale: 0 };

  private constructor(private readonly opts: PersistentCacheOptions) {
    this.blobs = new BlobStore(join(opts.dir, 'blobs'));
  }

  get scope(): CacheScope {
    return this.opts.scope;
  }

  private get indexPath(): string {
    return join(this.opts.dir, 'index');
  }

  /**
   * Opens (creating if needed) the store and reads its index file, without decoding the
   * entries yet (see load): the probes at its head are all Session.Hello needs. A damaged
   * index is an empty one.
   */
  static async open(opts: PersistentCacheOptions): Promise<PersistentCache> {
    const c = new PersistentCache(opts);
    await fsp.mkdir(opts.dir, { recursive: true, mode: 0o700 });
    await fsp.chmod(opts.dir, 0o700);
    await c.blobs.init();
    const file = await c.readIndexFile();
    c.packedProbes = file.packedProbes;
    c.undecoded = file.entries;
    return c;
  }

  /** The index file split into its packed probes and its (still encoded) entries. */
  private async readIndexFile(): Promise<{ packedProbes: Buffer; entries: Buffer }> {
    const none = { packedProbes: Buffer.alloc(0), entries: Buffer.alloc(0) };
    let bytes: Buffer;
    try {
      bytes = await fsp.readFile(this.indexPath);
    } catch {
      return none;
    }
    const head = INDEX_MAGIC.length + 4;
    if (bytes.length < head || !bytes.subarray(0, INDEX_MAGIC.length).equals(INDEX_MAGIC)) {
      this.opts.log?.('cache index unreadable (bad header); starting empty');
      return none;
    }
    const probesLen = bytes.readUInt32BE(INDEX_MAGIC.length);
    if (head + probesLen > bytes.length) return none;
    return { packedProbes: bytes.subarray(head, head + probesLen), entries: bytes.subarray(head + probesLen) };
  }

  private static toEntry(e: pb.CacheEntry): Entry {
    return {
      attr: e.attr ?? undefined,
      target: e.linkTarget?.length ? toByteString(e.linkTarget) : undefined,
      names: e.listed ? new Set((e.names ?? []).map(toByteString)) : undefined,
      blob: e.blob?.length ? Buffer.from(e.blob).toString('hex') : undefined,
      used: Number(e.used ?? 0),
    };
  }

  /** One entry's bytes, decoded on first use; undefined unless they hold an entry for `path`. */
  private decodeEntry(path: string, bytes: Buffer): Entry | undefined {
    try {
      const e = pb.CacheEntry.decode(bytes);
      return toByteString(e.path) === path ? PersistentCache.toEntry(e) : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The byte ranges of the index's entries, in order, without decoding them; undefined for a
   * damaged index.
   */
  private static entryRanges(bytes: Buffer): Buffer[] | undefined {
    const out: Buffer[] = [];
    try {
      const reader = protobuf.Reader.create(bytes);
      let format = 0;
      while (reader.pos < reader.len) {
        const tag = reader.uint32();
        if (tag >>> 3 === 1) format = reader.uint32();
        else if (tag >>> 3 === 2 && (tag & 7) === 2) {
          const len = reader.uint32();
          if (reader.pos + len > reader.len) return undefined;
          out.push(bytes.subarray(reader.pos, reader.pos + len));
          reader.skip(len);
        } else reader.skipType(tag & 7);
      }
      return format === INDEX_FORMAT ? out : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The index's entries, decoded a batch at a time (with `yieldEvery`, the event loop gets a
   * turn between batches: the agent decodes while its Hello is on the wire).
   */
  private async decodeEntries(bytes: Buffer, yieldEvery = Infinity): Promise<Map<string, Entry>> {
    const out = new Map<string, Entry>();
    if (bytes.length === 0) return out;
    try {
      const reader = protobuf.Reader.create(bytes);
      let format = 0;
      let n = 0;
      while (reader.pos < reader.len) {
        const tag = reader.uint32();
        if (tag >>> 3 === 1) format = reader.uint32();
        else if (tag >>> 3 === 2) {
          const e = pb.CacheEntry.decode(reader, reader.uint32());
          const path = toByteString(e.path);
          if (path.startsWith('/')) out.set(path, PersistentCache.toEntry(e));
          if (++n % yieldEvery === 0) await new Promise((r) => setImmediate(r));
        } else reader.skipType(tag & 7);
      }
      if (format !== INDEX_FORMAT) return new Map();
    } catch (err) {
      this.opts.log?.(`cache index unreadable (${(err as Error).message}); starting empty`);
      return new Map();
    }
    return out;
  }

  // ---- revalidation ------------------------------------------------------------------

  /** One probe per entry, packed (src/fs/probe-list.ts), for Session.Hello. */
  probes(): Buffer {
    return this.packedProbes;
  }

  /**
   * Decodes the entries (done while the Hello is on its way). Only entries that were
   * probed are kept: the probes and the entries come from one atomically written file.
   */
  load(): Promise<void> {
    if (!this.loading) {
      this.loading = (async () => {
        const probes = decodeProbes(this.packedProbes, MAX_ENTRIES * 2);
        const order = probes instanceof Error ? [] : probes.map((p) => toByteString(p.path));
        // Entry i is probe i (saved in one loop): keep the bytes, decode on use.
        const ranges = PersistentCache.entryRanges(this.undecoded);
        if (ranges && ranges.length === order.length) {
          order.forEach((path, i) => {
            if (this.opts.scope.covers(path) && !this.entries.has(path)) this.entries.setEncoded(path, ranges[i]!);
          });
        } else {
          const probed = new Set(order);
          for (const [path, e] of await this.decodeEntries(this.undecoded, DECODE_BATCH)) {
            if (probed.has(path) && this.opts.scope.covers(path) && !this.entries.has(path)) this.entries.set(path, e);
          }
        }
        this.probeOrder = order;
        this.undecoded = Buffer.alloc(0);
        this.stats.loaded = this.entries.size;
      })();
    }
    return this.loading;
  }

  /** The client could not read our probes: nothing here may be served. */
  async dropAll(): Promise<void> {
    await this.load();
    for (const path of this.entries.keys()) this.dropped.add(path);
    this.stats.stale += this.entries.size;
    this.entries.clear();
  }

  /** Drops the entries the client found stale (indexes into the probes sent). */
  async dropStale(indexes: Iterable<number>): Promise<void> {
    await this.load();
    for (const i of indexes) {
      const path = this.probeOrder[i];
      if (path !== undefined && this.entries.delete(path)) {
        this.dropped.add(path);
        this.stats.stale++;
      }
    }
    this.probeOrder = [];
  }

  // ---- lookups (entries are valid for the whole session once revalidated) -------------

  private use(path: string, e: Entry): Entry {
    // Recency (for the size bound) is kept to the hour: a run that only reads what the
    // last hour's runs read changes nothing, and ends without rewriting the index.
    if (e.used < this.now - USED_GRANULARITY_S) {
      e.used = this.now;
      this.touched.add(path);
    }
    return e;
  }

  covers(path: string): boolean {
    return this.opts.scope.covers(path);
  }

  /** The path's attributes, 'missing' if it is known not to exist, undefined if unknown. */
  attr(path: string): CachedAttr | 'missing' | undefined {
    const e = this.entries.get(path);
    if (e) return this.use(path, e).attr ?? 'missing';
    if (path === '/') return undefined;
    const dir = this.entries.get(parentOf(path));
    if (dir?.names && !dir.names.has(nameOf(path))) return 'missing';
    return undefined;
  }

  /** A full listing of `dir` with every entry's attributes, if all of it is known. */
  /** Whether a full listing of `dir` is kept (cheap: not whether every entry's attributes are). */
  isListed(dir: string): boolean {
    return this.entries.get(dir)?.names !== undefined;
  }

  listing(dir: string): { names: string[]; attrs: CachedAttr[] } | undefined {
    const d = this.entries.get(dir);
    if (!d?.names) return undefined;
    const names = [...d.names];
    const attrs: CachedAttr[] = [];
    const prefix = dir === '/' ? '/' : dir + '/';
    for (const n of names) {
      const a = this.entries.get(prefix + n)?.attr;
      if (!a) return undefined;
      attrs.push(a);
    }
    this.use(dir, d);
    return { names, attrs };
  }

  linkTarget(path: string): string | undefined {
    const e = this.entries.get(path);
    return e?.target !== undefined && typeOf(e.attr) === S_IFLNK ? this.use(path, e).target : undefined;
  }

  /** The blob holding the file's whole content, with the attributes it goes with. */
  blob(path: string): { hash: string; attr: CachedAttr } | undefined {
    const e = this.entries.get(path);
    if (!e?.blob || !e.attr || typeOf(e.attr) !== S_IFREG) return undefined;
    this.use(path, e);
    return { hash: e.blob, attr: e.attr };
  }

  // ---- learning ------------------------------------------------------------------------

  /**
   * The entry for this version of the path, made if needed (anything known about an older
   * version goes with it). Learning what is already known changes nothing (and does not
   * make the index to be rewritten), except the hourly recency.
   */
  private entry(path: string, attr: CachedAttr | undefined): Entry | undefined {
    if (!this.covers(path)) return undefined;
    let e = this.entries.get(path);
    if (!e || !sameAttr(e.attr, attr)) {
      e = { attr, used: this.now };
      this.entries.set(path, e);
      this.changed(path);
      return e;
    }
    return this.use(path, e);
  }

  private changed(path: string): void {
    this.touched.add(path);
    this.dropped.delete(path);
  }

  recordAttr(path: string, attr: CachedAttr | undefined): void {
    this.entry(path, attr);
  }

  /** A full listing, with the directory's attributes taken before it was read. */
  recordListing(dir: string, dirAttr: CachedAttr, entries: { name: string; attr?: CachedAttr }[]): void {
    if (typeOf(dirAttr) !== S_IFDIR || !this.covers(dir)) return;
    const prefix = dir === '/' ? '/' : dir + '/';
    for (const { name, attr } of entries) if (attr) this.entry(prefix + name, attr);
    const d = this.entry(dir, dirAttr)!;
    if (!d.names || d.names.size !== entries.length || entries.some((x) => !d.names!.has(x.name))) {
      d.names = new Set(entries.map((x) => x.name));
      this.changed(dir);
    }
  }

  recordLink(path: string, attr: CachedAttr, target: string): void {
    if (typeOf(attr) !== S_IFLNK) return;
    const e = this.entry(path, attr);
    if (e && e.target !== target) {
      e.target = target;
      this.changed(path);
    }
  }

  /** Keeps a file's whole content; `attr` must be the attributes taken before it was read. */
  async recordContent(path: string, attr: CachedAttr, data: Buffer): Promise<void> {
    if (!this.covers(path) || typeOf(attr) !== S_IFREG || data.length !== (attr.size ?? -1) || data.length > MAX_BLOB_BYTES) return;
    const hash = await this.blobs.put(data);
    const e = this.entries.get(path);
    // Only if nothing changed the path meanwhile (an invalidation drops or replaces the entry).
    if (e ? sameAttr(e.attr, attr) : true) {
      const kept = this.entry(path, attr)!;
      if (kept.blob !== hash) {
        kept.blob = hash;
        this.changed(path);
      }
    }
  }

  // ---- changes through the mount ---------------------------------------------------------

  private drop(path: string): void {
    if (this.entries.delete(path)) this.dropped.add(path);
  }

  /**
   * The path changed (written, created, removed, renamed, chmod...): forget it and its
   * parent directory's attributes and listing. `structural` changes (link, unlink, rename)
   * also change the link count under every other name of the same file.
   */
  invalidate(path: string, structural = false): void {
    // Changes outside the cached trees touch nothing here (another name of a cached file
    // outside them would be a hard link across trees: its link count is caught at the next
    // revalidation).
    if (!this.covers(path) && !(path !== '/' && this.covers(parentOf(path)))) return;
    const known = this.entries.get(path)?.attr;
    this.drop(path);
    if (path !== '/') this.drop(parentOf(path));
    if (structural || (known?.nlink ?? 1) > 1) {
      for (const [p, e] of this.entries) {
        if (typeOf(e.attr) === S_IFREG && (e.attr?.nlink ?? 1) > 1 && (!known || e.attr?.ino === known.ino)) this.drop(p);
      }
    }
  }

  /** A directory was renamed or removed: forget everything under it too. */
  invalidateTree(path: string): void {
    if (!this.covers(path) && !this.opts.scope.trees.some((t) => t.startsWith(path === '/' ? '/' : path + '/'))) return;
    this.invalidate(path, true);
    const prefix = path === '/' ? '/' : path + '/';
    for (const p of [...this.entries.keys()]) if (p.startsWith(prefix)) this.drop(p);
  }

  // ---- saving ------------------------------------------------------------------------------

  /**
   * Merges this session's knowledge into the index on disk, bounds it (least recently
   * used entries go first, until the blobs fit in maxBytes and the entries in MAX_ENTRIES),
   * and removes blobs no longer referenced. Gives up quietly if another session holds the
   * lock for long: the cache is an optimisation, and the next session learns again.
   */
  async save(): Promise<void> {
    if (this.touched.size === 0 && this.dropped.size === 0) return;
    const lock = join(this.opts.dir, 'index.lock');
    if (!(await acquire(lock))) {
      this.opts.log?.('cache index busy; this session did not save what it learned');
      return;
    }
    try {
      await this.load();
      const merged = await this.decodeEntries((await this.readIndexFile()).entries);
      for (const p of this.dropped) merged.delete(p);
      for (const p of this.touched) {
        const e = this.entries.get(p);
        if (e) merged.set(p, e);
      }
      const kept = new LRUCache<string, Entry>({
        max: MAX_ENTRIES,
        // Contents count against maxBytes; metadata is bounded by the number of entries.
        maxSize: Math.max(1, this.opts.maxBytes),
        sizeCalculation: (e) => Math.max(1, e.blob ? Number(e.attr?.size ?? 0) : 1),
      });
      // Oldest first, so that the most recently used are the last evicted.
      for (const [p, e] of [...merged].sort((a, b) => a[1].used - b[1].used)) {
        if (this.covers(p) && (!e.blob || Number(e.attr?.size ?? 0) <= this.opts.maxBytes)) kept.set(p, e);
      }
      const entries: pb.CacheEntry.$Properties[] = [];
      const probes: Probe[] = [];
      const blobs = new Set<string>();
      for (const [p, e] of kept.entries()) {
        if (e.blob) blobs.add(e.blob);
        probes.push({ path: fromByteString(p), fingerprint: fingerprint(e.attr) });
        entries.push({
          path: fromByteString(p),
          attr: e.attr,
          linkTarget: e.target !== undefined ? fromByteString(e.target) : undefined,
          listed: !!e.names,
          names: e.names ? [...e.names].map((n) => fromByteString(n)) : [],
          blob: e.blob ? Buffer.from(e.blob, 'hex') : undefined,
          used: e.used,
        });
      }
      const packed = encodeProbes(probes);
      const len = Buffer.alloc(4);
      len.writeUInt32BE(packed.length);
      const bytes = Buffer.concat([INDEX_MAGIC, len, packed, pb.CacheIndex.encode({ format: INDEX_FORMAT, entries }).finish()]);
      const tmp = `${this.indexPath}.tmp-${randomBytes(6).toString('hex')}`;
      removeOnExit(tmp);
      await fsp.writeFile(tmp, bytes, { mode: 0o600 });
      await fsp.rename(tmp, this.indexPath);
      settled(tmp);
      const removed = await this.blobs.collect(blobs);
      this.opts.log?.(`cache index saved: ${entries.length} entries, ${blobs.size} blobs (${removed} removed)`);
    } finally {
      await fsp.rm(lock, { force: true });
      settled(lock);
    }
  }
}

/** An exclusive lock file; one left by a session that died long ago is broken. */
async function acquire(lock: string): Promise<boolean> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      await (await fsp.open(lock, 'wx', 0o600)).close();
      removeOnExit(lock); // an agent cut off in the middle of a save leaves no lock behind
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return false;
      const st = await fsp.stat(lock).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > LOCK_STALE_MS) {
        await fsp.rm(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
