// The agent's short-lived cache of attributes and of names known not to exist, filled by
// getattr and by every directory listing (which carries its entries' attributes), so that
// `ls -l` or a compiler's stat storm costs one round trip per directory, not per file.
// Entries expire after the same timeout the kernel uses; any change made through the
// mount drops the entries it could affect.
import { LRUCache } from 'lru-cache';
import type { pb } from '../../wire/schema';

export type CachedAttr = pb.Attr.$Properties;

/**
 * The kernel keeps attributes and entries itself now (10 s): this cache only bridges what
 * arrives in one reply (a listing, a prefetch) to the lookups that follow within its short
 * timeout, so a few tens of thousands of entries are plenty. (100k held 40 MB of a `find /`.)
 */
export class AttrCache {
  private readonly attrs: LRUCache<string, CachedAttr>;
  private readonly missing: LRUCache<string, true>;
  /** Directories listed in full: the names they held, for as long as attributes live. */
  private readonly listings: LRUCache<string, Set<string>>;

  constructor(ttlMs: number, negativeTtlMs: number, max = 20_000) {
    this.attrs = new LRUCache({ max, ttl: Math.max(1, ttlMs), ttlAutopurge: false });
    this.missing = new LRUCache({ max, ttl: Math.max(1, negativeTtlMs), ttlAutopurge: false });
    this.listings = new LRUCache({ max: 2_000, ttl: Math.max(1, Math.min(ttlMs, negativeTtlMs)), ttlAutopurge: false });
  }

  /** Record a full listing of `dir` (its entries' attributes are set separately). */
  setListing(dir: string, names: Iterable<string>): void {
    this.listings.set(dir, new Set(names));
  }

  /**
   * What a full listing of the parent says about `path`: 'absent' (no such name, a
   * negative answer with no round trip), 'present', or undefined when the parent was not
   * listed recently.
   */
  fromListing(path: string): 'absent' | 'present' | undefined {
    const slash = path.lastIndexOf('/');
    if (slash < 0 || path === '/') return undefined;
    const names = this.listings.get(slash === 0 ? '/' : path.slice(0, slash));
    if (!names) return undefined;
    return names.has(path.slice(slash + 1)) ? 'present' : 'absent';
  }

  /** A full listing of `dir` with every entry's attributes, while all of it is fresh. */
  /** Whether a listing of `dir` is held (cheap: not whether every entry's attributes are). */
  isListed(dir: string): boolean {
    return this.listings.has(dir);
  }

  listing(dir: string): { names: string[]; attrs: CachedAttr[] } | undefined {
    const set = this.listings.get(dir);
    if (!set) return undefined;
    const names = [...set];
    const attrs: CachedAttr[] = [];
    const prefix = dir === '/' ? '/' : dir + '/';
    for (const n of names) {
      const a = this.attrs.get(prefix + n);
      if (!a) return undefined;
      attrs.push(a);
    }
    return { names, attrs };
  }

  get(path: string): CachedAttr | 'missing' | undefined {
    const a = this.attrs.get(path);
    if (a) return a;
    return this.missing.get(path) ? 'missing' : undefined;
  }

  set(path: string, attr: CachedAttr): void {
    this.missing.delete(path);
    this.attrs.set(path, attr);
  }

  setMissing(path: string): void {
    this.attrs.delete(path);
    if (this.missing.max > 0) this.missing.set(path, true);
  }

  /**
   * Forget a path and its parent directory (whose size, times and link count change). A
   * file with several hard links changes under all its names, so they go too; when the
   * path's attributes are not known, `structural` changes (link, unlink, rename) drop every
   * multiply-linked entry, since one of them may be another name of it.
   */
  invalidate(path: string, structural = false): void {
    const known = this.attrs.get(path);
    this.attrs.delete(path);
    this.missing.delete(path);
    const slash = path.lastIndexOf('/');
    const parent = slash <= 0 ? '/' : path.slice(0, slash);
    this.attrs.delete(parent);
    this.listings.delete(parent);
    if (known ? (known.nlink ?? 1) > 1 : structural) {
      for (const [key, a] of this.attrs.entries()) {
        if ((a.nlink ?? 1) > 1 && (!known || a.ino === known.ino) && (a.mode ?? 0) & 0o100000) this.attrs.delete(key);
      }
    }
  }

  /** Forget a whole subtree (rename or rmdir of a directory). */
  invalidateTree(path: string): void {
    this.invalidate(path, true);
    const prefix = path === '/' ? '/' : path + '/';
    for (const key of this.attrs.keys()) if (key.startsWith(prefix)) this.attrs.delete(key);
    for (const key of this.missing.keys()) if (key.startsWith(prefix)) this.missing.delete(key);
    this.listings.delete(path);
    for (const key of this.listings.keys()) if (key.startsWith(prefix)) this.listings.delete(key);
  }
}
