// File contents the agent keeps on the remote's disk between sessions, each named by the
// sha256 of its bytes (so two paths with the same content share one file, and a blob's name
// proves what it holds). Written to a temporary name and renamed, so a reader never sees a
// partial blob; several sessions may write the same blob at once. Only root can enter the
// directory.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { removeOnExit, settled } from './exit-cleanup';

const HASH_RE = /^[0-9a-f]{64}$/;
/** Blobs younger than this are never collected: another session may be about to index them. */
const GRACE_MS = 10 * 60 * 1000;

export const sha256Hex = (data: Buffer) => createHash('sha256').update(data).digest('hex');

export class BlobStore {
  constructor(readonly dir: string) {}

  async init(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  private pathOf(hash: string): string {
    if (!HASH_RE.test(hash)) throw new Error(`not a blob name: ${hash}`);
    return join(this.dir, hash);
  }

  /** Stores `data`; returns its name. */
  async put(data: Buffer): Promise<string> {
    const hash = sha256Hex(data);
    const final = this.pathOf(hash);
    const exists = await fsp.stat(final).then((st) => st.size === data.length, () => false);
    if (exists) return hash;
    const tmp = `${final}.tmp-${randomBytes(6).toString('hex')}`;
    removeOnExit(tmp);
    try {
      await fsp.writeFile(tmp, data, { mode: 0o600, flag: 'wx' });
      await fsp.rename(tmp, final);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    } finally {
      settled(tmp);
    }
    return hash;
  }

  /** Opens a blob for reading, if it is still there with the expected size. */
  async open(hash: string, size: number): Promise<FileHandle | undefined> {
    let fh: FileHandle | undefined;
    try {
      fh = await fsp.open(this.pathOf(hash), 'r');
      if ((await fh.stat()).size === size) return fh;
    } catch {
      // gone (collected by another session) or unreadable: the caller fetches instead
    }
    await fh?.close().catch(() => undefined);
    return undefined;
  }

  /**
   * Removes blobs that no index references any more (`keep`), and leftovers of interrupted
   * writes, once they are older than the grace period.
   */
  async collect(keep: ReadonlySet<string>, now = Date.now()): Promise<number> {
    let removed = 0;
    for (const name of await fsp.readdir(this.dir).catch(() => [] as string[])) {
      const hash = name.slice(0, 64);
      if (keep.has(name)) continue;
      if (!HASH_RE.test(hash)) continue;
      const p = join(this.dir, name);
      const st = await fsp.stat(p).catch(() => undefined);
      if (!st || now - st.mtimeMs < GRACE_MS) continue;
      await fsp.rm(p, { force: true });
      removed++;
    }
    return removed;
  }
}
