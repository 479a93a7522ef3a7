// Files unlinked while open. libfuse 2.9's high-level API does not unlink such a file: it
// renames it to `.fuse_hidden<node><counter>` in the same directory and unlinks that name at
// the last close. Locally the name is gone at once; with the hidden name, `ls` shows it and
// `rmdir` of its directory fails with ENOTEMPTY (rm -rf of a tree a program still holds).
// So the agent unlinks for real when libfuse asks for that rename (the local side keeps its
// open file, and reads and writes go by handle), and answers for the hidden name itself from
// the attributes the file had, kept current by the writes and truncates made through it.
import type { CachedAttr } from './attr-cache';
import { timespecFromMs } from '../shared/attr';

const HIDDEN_NAME = /\/\.fuse_hidden[0-9a-f]{16}$/;

export class HiddenFiles {
  private readonly files = new Map<string, CachedAttr>();

  /** Whether libfuse chose this path to hide an open file that is being unlinked. */
  static isHiddenName(path: string): boolean {
    return HIDDEN_NAME.test(path);
  }

  /** The file formerly at some name is now known only by `hiddenPath` (and its open handles). */
  add(hiddenPath: string, attr: CachedAttr): void {
    this.files.set(hiddenPath, { ...attr, nlink: Math.max(0, (attr.nlink ?? 1) - 1) });
  }

  get(path: string): CachedAttr | undefined {
    return this.files.get(path);
  }

  /** libfuse unlinks the hidden name at the last close: the file is already gone locally. */
  remove(path: string): boolean {
    return this.files.delete(path);
  }

  /**
   * Whether a hidden file sits under `dir`. Its rmdir must then fail (ENOTEMPTY, as before
   * the file was hidden): libfuse would lose the file's path and call release without one,
   * which fuse-native cannot survive.
   */
  hasUnder(dir: string): boolean {
    const prefix = dir === '/' ? '/' : `${dir}/`;
    for (const p of this.files.keys()) if (p.startsWith(prefix)) return true;
    return false;
  }

  /** A directory was renamed: hidden files under it follow, as libfuse's paths for them do. */
  moved(src: string, dest: string): void {
    for (const [p, a] of [...this.files]) {
      if (!p.startsWith(`${src}/`)) continue;
      this.files.delete(p);
      this.files.set(dest + p.slice(src.length), a);
    }
  }

  /** A write through an open handle of a hidden file ended at `end`. */
  wrote(path: string, end: number): void {
    const a = this.files.get(path);
    if (!a) return;
    const now = timespecFromMs(Date.now());
    this.files.set(path, { ...a, size: Math.max(Number(a.size ?? 0), end), mtime: now, ctime: now });
  }

  truncated(path: string, size: number): void {
    const a = this.files.get(path);
    if (!a) return;
    const now = timespecFromMs(Date.now());
    this.files.set(path, { ...a, size, mtime: now, ctime: now });
  }
}
