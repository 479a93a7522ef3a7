// What a change made through the mount makes stale: the caches of a path (or a tree), and
// what open handles read ahead of a file. Every change the agent makes goes through here.
import { ENODATA } from '../../shared/errno';
import type { PathOpsState } from './state';

/** Forget what is known of `path` here and in the persistent cache (see AttrCache.invalidate). */
export function forget(s: PathOpsState, path: string, structural = false): void {
  s.changes.note(path);
  s.xattrLengths.delete(path);
  s.cache.invalidate(path, structural);
  s.persist?.invalidate(path, structural);
}

export function forgetTree(s: PathOpsState, path: string): void {
  s.changes.noteTree(path);
  s.cache.invalidateTree(path);
  s.persist?.invalidateTree(path);
}

/** The file at `path` changed through the mount: nothing read ahead of it is current. */
export function changed(s: PathOpsState, path: string): void {
  for (const f of s.open.values()) {
    if (f.path !== path) continue;
    f.ra.clear();
    f.stale = true;
  }
  s.contents.forget(path);
  forget(s, path);
}

const CAPABILITY = 'security.capability';

/**
 * The file at `path` was written through the mount: `changed`, but its extended attributes
 * are as they were except security.capability, which a write removes (the kernel asks for it
 * before every write to drop it: keeping that answer saves a round trip per write).
 */
export function wroteData(s: PathOpsState, path: string): void {
  const known = s.xattrLengths.get(path)?.lengths ?? new Map<string, number>();
  changed(s, path);
  // Tied to no version: the write changed it (kept a second, see xattrs.ts).
  s.xattrLengths.set(path, { lengths: known.set(CAPABILITY, -ENODATA) });
}

/**
 * Open handles follow their file to its new name (the kernel names it `dest` in their
 * operations): so that a change under the new name reaches what they read ahead.
 */
export function moveOpen(s: PathOpsState, src: string, dest: string): void {
  const prefix = src + '/';
  for (const f of s.open.values()) {
    if (f.path === src) f.path = dest;
    else if (f.path.startsWith(prefix)) f.path = dest + f.path.slice(src.length);
  }
  s.wb.renamed(src, dest);
}
