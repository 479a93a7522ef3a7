// The compiled-bytecode files Python reads instead of a .py source: importing
// dir/name.py looks for dir/__pycache__/name.<cache_tag>.pyc, or .opt-1/.opt-2 variants
// under -O/-OO. The cache tag ("cpython-311") belongs to the interpreter that will run;
// it is not guessed by running one: the caller passes it, or lists the tags already
// present next to the source.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

/** Optimization levels whose bytecode lives in its own file: '' (none), -O, -OO. */
export const PYC_OPTIMIZATIONS = ['', '1', '2'] as const;

const TAG = /^[A-Za-z0-9_-]+$/;

/** The stem Python uses: the file name up to its last dot. */
function stemOf(file: string): string {
  const dot = file.lastIndexOf('.');
  return dot > 0 ? file.slice(0, dot) : file;
}

/**
 * Paths Python may read for source `pyPath` (ending in .py), for each cache tag in order,
 * plain then opt-1 then opt-2. With `pycachePrefix` (PYTHONPYCACHEPREFIX), the files live
 * under that prefix mirroring the source's directory instead of in __pycache__.
 */
export function pycacheCandidates(pyPath: string, cacheTags: readonly string[], opts: { pycachePrefix?: string } = {}): string[] {
  if (!pyPath.endsWith('.py')) return [];
  const dir = path.dirname(pyPath);
  const stem = stemOf(path.basename(pyPath));
  const where = opts.pycachePrefix ? path.join(opts.pycachePrefix, path.resolve('/', dir)) : path.join(dir, '__pycache__');
  const out: string[] = [];
  for (const tag of cacheTags) {
    if (!TAG.test(tag)) continue;
    for (const opt of PYC_OPTIMIZATIONS) out.push(path.join(where, `${stem}.${tag}${opt ? `.opt-${opt}` : ''}.pyc`));
  }
  return out;
}

/** The cache tag of a __pycache__ entry for `stem`, or null if the name is not one. */
export function cacheTagOf(entry: string, stem: string): string | null {
  if (!entry.startsWith(`${stem}.`) || !entry.endsWith('.pyc')) return null;
  let middle = entry.slice(stem.length + 1, -'.pyc'.length);
  middle = middle.replace(/\.opt-[12]$/, '');
  return TAG.test(middle) ? middle : null;
}

/** Tags present in the source's __pycache__ directory (`<stem>.<tag>[.opt-N].pyc`), sorted. */
export async function discoverCacheTags(pyPath: string): Promise<string[]> {
  if (!pyPath.endsWith('.py')) return [];
  let entries: string[];
  try {
    entries = await fsp.readdir(path.join(path.dirname(pyPath), '__pycache__'));
  } catch {
    return []; // no __pycache__ (or unreadable): nothing to offer
  }
  const stem = stemOf(path.basename(pyPath));
  const tags = new Set<string>();
  for (const e of entries) {
    const tag = cacheTagOf(e, stem);
    if (tag !== null) tags.add(tag);
  }
  return [...tags].sort();
}
