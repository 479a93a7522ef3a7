// Parsed ELF dependencies of local files, kept per process and keyed by the file's
// (dev, ino, size, mtime): a server asked again and again for the same programs and
// libraries opens each once and parses it once until it changes.
import { BigIntStats, promises as fsp } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { ElfResult, fileHandleReader, parseElfDeps } from './elf';

export interface ElfFileDeps {
  /** dev:ino of the file reached (after symlinks): the loader's identity of a loaded object. */
  fileId: string;
  result: ElfResult;
}

export type ElfFileResult =
  | { ok: true; value: ElfFileDeps }
  | { ok: false; error: { code: 'OPEN_FAILED'; errno: string; message: string; cause?: unknown } };

const parsed = new LRUCache<string, ElfResult>({ max: 4096 });

function failed(path: string, what: string, err: unknown): ElfFileResult {
  const errno = (err as NodeJS.ErrnoException).code ?? 'EIO';
  return { ok: false, error: { code: 'OPEN_FAILED', errno, message: `cannot ${what} ${path}: ${errno}`, cause: err } };
}

function keyOf(st: BigIntStats): string {
  // ctime too: a chmod making the file unreadable must not be answered from memory.
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

const notRegular = (path: string): ElfResult => ({ ok: false, error: { code: 'NOT_ELF', message: `${path} is not a regular file` } });

/**
 * The parsed deps of `path` (symlinks followed, as the loader does). A known file costs one
 * stat; an unknown or changed one is opened and parsed with bounded reads.
 */
export async function readElfDepsCached(path: string): Promise<ElfFileResult> {
  let st: BigIntStats;
  try {
    st = await fsp.stat(path, { bigint: true });
  } catch (err) {
    return failed(path, 'stat', err);
  }
  if (!st.isFile()) return { ok: true, value: { fileId: `${st.dev}:${st.ino}`, result: notRegular(path) } };
  const known = parsed.get(keyOf(st));
  if (known) return { ok: true, value: { fileId: `${st.dev}:${st.ino}`, result: known } };

  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, 'r');
  } catch (err) {
    return failed(path, 'open', err);
  }
  try {
    // Key the parse by the open file's stat, so it matches the bytes read even if the path
    // was replaced in between.
    const fst = await fh.stat({ bigint: true });
    const fileId = `${fst.dev}:${fst.ino}`;
    if (!fst.isFile()) return { ok: true, value: { fileId, result: notRegular(path) } };
    const result = await parseElfDeps(fileHandleReader(fh));
    parsed.set(keyOf(fst), result);
    return { ok: true, value: { fileId, result } };
  } catch (err) {
    return failed(path, 'read', err);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Forget every parse (tests; memory pressure). */
export function clearElfDepsCache(): void {
  parsed.clear();
}
