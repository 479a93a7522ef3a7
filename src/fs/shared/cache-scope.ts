// Which local paths the agent may keep between sessions: read-mostly system trees. Anything
// else (home directories, build trees, /tmp) is only ever cached for a second.
export const DEFAULT_CACHED_TREES = ['/usr', '/lib', '/lib32', '/lib64', '/libx32', '/bin', '/sbin', '/etc', '/opt'];

/** Normalised tree roots: absolute, no trailing slash, no dot segments; "/" is refused. */
export function parseCachedTrees(list: string): string[] | Error {
  const out: string[] = [];
  for (const raw of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    const p = raw.replace(/\/+$/, '');
    if (!p.startsWith('/') || p.split('/').some((c) => c === '.' || c === '..')) {
      return new Error(`cache path '${raw}' must be an absolute path without . or .. segments`);
    }
    if (p === '') return new Error("cache path '/' would cache everything; list system trees such as /usr,/etc instead");
    out.push(p.replace(/\/{2,}/g, '/'));
  }
  return out;
}

export class CacheScope {
  constructor(readonly trees: readonly string[]) {}

  /** Whether `path` (absolute, normalised, as FUSE gives it) lies in a cached tree. */
  covers(path: string): boolean {
    for (const t of this.trees) {
      if (path === t || (path.startsWith(t) && path.charCodeAt(t.length) === 0x2f)) return true;
    }
    return false;
  }
}
