// Listings: a miss in a directory of moderate size lists it whole (one round trip answers
// every sibling, present or absent); a readdir has its subdirectories listed along, since a
// walk goes on into them; listings are kept in the attribute cache and, in the cached trees,
// in the persistent cache.
import { constants as FS } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { toByteString } from '../byte-string';
import type { CachedAttr } from '../attr-cache';
import { always, join, wirePath, type Cb, type Fresh, type PathOpsOptions, type PathOpsState } from './state';

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

type Entry = { name?: Uint8Array | null; attr?: CachedAttr | null };
type Listing = { path?: Uint8Array | null; dirAttr?: CachedAttr | null; entries?: Entry[] | null };

const isDir = (a: CachedAttr) => ((a.mode ?? 0) & FS.S_IFMT) === FS.S_IFDIR;

export class Directories {
  /** Directories we may not list (EACCES and the like): asked name by name instead. */
  private readonly unlistable = new LRUCache<string, true>({ max: 10_000, ttl: 10_000 });
  /** Listings in flight, so that concurrent misses in one directory share one round trip. */
  private readonly listing = new Map<string, Promise<boolean>>();
  /** Subtree listings in flight, by the directory they start at. */
  private readonly subtreeListing = new Map<string, Promise<void>>();

  constructor(private readonly s: PathOpsState) {}

  /** The listings the client sent at session start (Session.Hello's reply). */
  seed(warm: PathOpsOptions['warm']): void {
    for (const l of warm ?? []) {
      const dir = toByteString(l.path);
      if (!dir.startsWith('/')) continue;
      if (l.dirAttr) this.s.cache.set(dir, l.dirAttr);
      this.fill(dir, l.entries ?? [], l.dirAttr, always);
    }
  }

  /** Whether a miss under `dir` is best answered by listing it whole. */
  listable(dir: string, attr: CachedAttr): boolean {
    const limit = this.s.persists(dir) ? MAX_LISTED_CACHED_DIR_SIZE : MAX_LISTED_DIR_SIZE;
    return isDir(attr) && (attr.size ?? Infinity) <= limit && !this.unlistable.has(dir);
  }

  /** Lists `dir` into the caches; false where it could not be listed. */
  list(dir: string): Promise<boolean> {
    let p = this.listing.get(dir);
    if (!p) {
      this.s.counters.inc('attr.listings');
      const fresh = this.s.changes.since();
      p = this.s.fs.Readdir({ path: wirePath(dir) }).then(
        (r) => {
          if (r.errno !== 0) {
            this.unlistable.set(dir, true);
            return false;
          }
          this.fill(dir, r.entries, r.dirAttr, fresh);
          return true;
        },
        () => false,
      );
      this.listing.set(dir, p);
      void p.finally(() => this.listing.delete(dir));
    }
    return p;
  }

  readdir(path: string, cb: Cb): void {
    // The kernel lists what we list: "." and ".." are ours to add. Their inode number
    // only has to be non-zero (readdir(3) hides entries with inode 0); stat gives the real one.
    const dirStat: CachedAttr = { mode: FS.S_IFDIR | 0o755, ino: 1 };
    const known = this.known(path);
    if (known) {
      // A walk goes on into the subdirectories: have them listed while it reads this one.
      if (known.attrs.some((a, i) => isDir(a) && !this.isListed(join(path, known.names[i]!)))) void this.listSubtree(path);
      return cb(0, ['.', '..', ...known.names], [dirStat, dirStat, ...known.attrs]);
    }
    // A listing of a directory above may be on its way with this one in it.
    const pending = [...this.subtreeListing].find(([dir]) => path.startsWith(dir === '/' ? '/' : dir + '/'))?.[1];
    if (pending) {
      return void pending.then(() => {
        const again = this.known(path);
        if (again) return cb(0, ['.', '..', ...again.names], [dirStat, dirStat, ...again.attrs]);
        this.readdirRpc(path, dirStat, cb);
      });
    }
    this.readdirRpc(path, dirStat, cb);
  }

  private fill(dir: string, entries: Entry[], dirAttr: CachedAttr | null | undefined, fresh: Fresh): string[] {
    const { cache, persist } = this.s;
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
    if (allFresh && dirAttr && this.s.persists(dir)) {
      persist!.recordListing(dir, dirAttr, names.map((name, i) => ({ name, attr: entries[i]!.attr ?? undefined })));
    }
    return names;
  }

  /** A full listing with every entry's attributes, from the persistent cache or a recent one. */
  private known(dir: string): { names: string[]; attrs: CachedAttr[] } | undefined {
    const kept = this.s.persists(dir) ? this.s.persist!.listing(dir) : undefined;
    if (kept) {
      this.s.counters.inc('persist.listing-hit');
      return kept;
    }
    const recent = this.s.cache.listing(dir);
    if (recent) this.s.counters.inc('attr.listing-hit');
    return recent;
  }

  /** Whether a listing of `dir` is at hand (cheap; `known` builds it). */
  private isListed(dir: string): boolean {
    return (this.s.persists(dir) && this.s.persist!.isListed(dir)) || this.s.cache.isListed(dir);
  }

  /** The listings of `dir` and, depth first, its subdirectories (see ReaddirRequest.nested_entries). */
  private takeNested(nested: Listing[], fresh: Fresh): void {
    for (const l of nested) {
      const dir = toByteString(l.path);
      if (!dir.startsWith('/')) continue;
      if (l.dirAttr && fresh(dir)) this.s.cache.set(dir, l.dirAttr);
      this.fill(dir, l.entries ?? [], l.dirAttr, fresh);
    }
    this.s.counters.inc('readdir.nested', nested.length);
  }

  private listSubtree(dir: string): Promise<void> {
    let p = this.subtreeListing.get(dir);
    if (!p) {
      this.s.counters.inc('readdir.subtree');
      const fresh = this.s.changes.since();
      p = this.s.fs.Readdir({ path: wirePath(dir), nestedEntries: NESTED_LISTING_ENTRIES }).then(
        (r) => {
          if (r.errno !== 0) return;
          this.fill(dir, r.entries, r.dirAttr, fresh);
          this.takeNested(r.nested, fresh);
        },
        () => undefined,
      );
      this.subtreeListing.set(dir, p);
      void p.finally(() => this.subtreeListing.delete(dir));
    }
    return p;
  }

  private readdirRpc(path: string, dirStat: CachedAttr, cb: Cb): void {
    // A program reading a directory mostly walks on into its subdirectories: have them
    // listed along (see ReaddirRequest.nested_entries).
    const fresh = this.s.changes.since();
    this.s.call('readdir', this.s.fs.Readdir({ path: wirePath(path), nestedEntries: NESTED_LISTING_ENTRIES }), cb, (r) => {
      this.takeNested(r.nested, fresh);
      const names = ['.', '..', ...this.fill(path, r.entries, r.dirAttr, fresh)];
      const stats: (CachedAttr | undefined)[] = [dirStat, dirStat, ...r.entries.map((e) => e.attr ?? undefined)];
      cb(0, names, stats);
    });
  }
}
