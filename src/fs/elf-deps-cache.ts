// Parsed ELF dependencies of local files, kept per process and keyed by the file's
// (dev, ino, size, mtime): a server asked again and again for the same programs and
// libraries opens each once and parses it once until it changes.
import { promises as fsp } from 'node:fs';
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

/** Open `path` (following symlinks, as the loader does), and return its parsed deps. */
export async function readElfDepsCached(path: string): Promise<ElfFileResult> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, 'r');
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code ?? 'EIO';
    return { ok: false, error: { code: 'OPEN_FAILED', errno, message: `cannot open ${path}: ${errno}`, cause: err } };
  }
  try {
    // Stat the open file, not the path: the key then matches the bytes parsed.
    const st = await fh.stat({ bigint: true });
    const fileId = `${st.dev}:${st.ino}`;
    if (!st.isFile()) {
      return { ok: true, value: { fileId, result: { ok: false, error: { code: 'NOT_ELF', message: `${path} is not a regular file` } } } };
    }
    const key = `${fileId}:${st.size}:${st.mtimeNs}`;
    let result = parsed.get(key);
    if (!result) {
      result = await parseElfDeps(fileHandleReader(fh));
      parsed.set(key, result);
    }
    return { ok: true, value: { fileId, result } };
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code ?? 'EIO';
    return { ok: false, error: { code: 'OPEN_FAILED', errno, message: `cannot stat ${path}: ${errno}`, cause: err } };
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Forget every parse (tests; memory pressure). */
export function clearElfDepsCache(): void {
  parsed.clear();
}
