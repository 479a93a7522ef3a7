// The symlinks the kernel follows when it opens a path, in the order it meets them,
// including links in directory components (on merged-/usr systems /lib64 is one). A
// remote opening the same path through the mount asks for each of these readlinks, so the
// prefetcher sends them along. Follows the kernel's rules: 40 links at most (ELOOP).
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

export interface SymlinkHop {
  /** The link's own location, with every directory above it already resolved. */
  path: string;
  /** What readlink returns for it. */
  target: string;
}

export interface SymlinkWalk {
  links: SymlinkHop[];
  /** The file finally reached, or null if the walk failed (see `error`). */
  realPath: string | null;
  /** errno code of the failure (ENOENT, ENOTDIR, ELOOP, EACCES, ...), null on success. */
  error: string | null;
}

/** Linux's limit on symlinks followed in one lookup. */
export const MAX_SYMLINKS = 40;

/** Walk absolute path `p` component by component with lstat/readlink. */
export async function walkSymlinks(p: string): Promise<SymlinkWalk> {
  const links: SymlinkHop[] = [];
  if (!path.isAbsolute(p)) return { links, realPath: null, error: 'EINVAL' };
  // Components still to visit, first one last (so pop() takes the next).
  const todo = p.split('/').filter((c) => c !== '').reverse();
  let cur = '/';
  while (todo.length > 0) {
    const comp = todo.pop()!;
    if (comp === '.') continue;
    if (comp === '..') {
      cur = path.dirname(cur);
      continue;
    }
    const next = cur === '/' ? `/${comp}` : `${cur}/${comp}`;
    let isLink: boolean;
    try {
      const st = await fsp.lstat(next);
      isLink = st.isSymbolicLink();
      if (!isLink && !st.isDirectory() && todo.length > 0) return { links, realPath: null, error: 'ENOTDIR' };
    } catch (err) {
      return { links, realPath: null, error: (err as NodeJS.ErrnoException).code ?? 'EIO' };
    }
    if (!isLink) {
      cur = next;
      continue;
    }
    if (links.length >= MAX_SYMLINKS) return { links, realPath: null, error: 'ELOOP' };
    let target: string;
    try {
      target = await fsp.readlink(next);
    } catch (err) {
      return { links, realPath: null, error: (err as NodeJS.ErrnoException).code ?? 'EIO' };
    }
    links.push({ path: next, target });
    if (target.startsWith('/')) cur = '/';
    const parts = target.split('/').filter((c) => c !== '');
    for (let i = parts.length - 1; i >= 0; i--) todo.push(parts[i]!);
  }
  return { links, realPath: cur, error: null };
}
