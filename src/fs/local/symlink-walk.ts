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

/** What one lstat (+ readlink) found; shared between walks through a LinkMemo. */
interface NodeInfo {
  kind: 'link' | 'dir' | 'other';
  target: string | null;
  error: string | null;
}

/** Per-walk-batch memo of path -> node: walks of many files under /lib share the lstat of /lib. */
export type LinkMemo = Map<string, Promise<NodeInfo>>;

async function inspect(p: string): Promise<NodeInfo> {
  try {
    const st = await fsp.lstat(p);
    if (!st.isSymbolicLink()) return { kind: st.isDirectory() ? 'dir' : 'other', target: null, error: null };
    return { kind: 'link', target: await fsp.readlink(p), error: null };
  } catch (err) {
    return { kind: 'other', target: null, error: (err as NodeJS.ErrnoException).code ?? 'EIO' };
  }
}

/**
 * Walk absolute path `p` component by component with lstat/readlink. Pass the same `memo`
 * to walks done together (one resolution) so shared prefixes are looked at once; do not keep
 * it longer, since the file system changes.
 */
export async function walkSymlinks(p: string, memo: LinkMemo = new Map()): Promise<SymlinkWalk> {
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
    let node = memo.get(next);
    if (!node) {
      node = inspect(next);
      memo.set(next, node);
    }
    const info = await node;
    if (info.error !== null) return { links, realPath: null, error: info.error };
    if (info.kind !== 'link') {
      if (info.kind !== 'dir' && todo.length > 0) return { links, realPath: null, error: 'ENOTDIR' };
      cur = next;
      continue;
    }
    if (links.length >= MAX_SYMLINKS) return { links, realPath: null, error: 'ELOOP' };
    const target = info.target!;
    links.push({ path: next, target });
    if (target.startsWith('/')) cur = '/';
    const parts = target.split('/').filter((c) => c !== '');
    for (let i = parts.length - 1; i >= 0; i--) todo.push(parts[i]!);
  }
  return { links, realPath: cur, error: null };
}
