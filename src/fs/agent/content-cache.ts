// Whole small files the agent has already seen, so that opening one again for reading
// needs no round trip while its attributes say it has not changed. Programs that start
// many processes (shells, build tools, pyenv shims) open the same loader cache, locale and
// configuration files over and over. An entry is used only while the attribute cache holds
// a fresh entry for the path with the same inode, size and modification time, so it is
// never staler than the attributes themselves.
import { LRUCache } from 'lru-cache';
import type { CachedAttr } from './attr-cache';

interface Entry {
  data: Buffer;
  ino: number;
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
}

const sameVersion = (e: Entry, a: CachedAttr) =>
  e.ino === (a.ino ?? 0) &&
  e.size === (a.size ?? 0) &&
  e.mtimeSec === Number(a.mtime?.sec ?? 0) &&
  e.mtimeNsec === (a.mtime?.nsec ?? 0);

export class ContentCache {
  private readonly entries: LRUCache<string, Entry>;

  constructor(maxBytes = 64 * 1024 * 1024) {
    this.entries = new LRUCache({ maxSize: maxBytes, sizeCalculation: (e) => e.data.length + 64 });
  }

  remember(path: string, attr: CachedAttr | null | undefined, data: Buffer): void {
    if (!attr || (attr.size ?? -1) !== data.length) return;
    this.entries.set(path, {
      data,
      ino: attr.ino ?? 0,
      size: data.length,
      mtimeSec: Number(attr.mtime?.sec ?? 0),
      mtimeNsec: attr.mtime?.nsec ?? 0,
    });
  }

  /** The file's bytes if `attr` (fresh from the attribute cache) shows the same version. */
  lookup(path: string, attr: CachedAttr | 'missing' | undefined): Buffer | undefined {
    if (!attr || attr === 'missing') return undefined;
    const e = this.entries.get(path);
    if (!e) return undefined;
    if (sameVersion(e, attr)) return e.data;
    this.entries.delete(path);
    return undefined;
  }

  forget(path: string): void {
    this.entries.delete(path);
  }
}
