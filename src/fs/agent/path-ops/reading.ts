// Opening and reading: a read-only open is answered from the content cache or a blob of
// the persistent cache when the file is unchanged, else opened on the local side (a file in
// the cached trees is then fetched whole, once). Reads go through each handle's read-ahead.
import { constants as FS } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { FileReadAhead } from '../read-ahead';
import { MAX_BLOB_BYTES } from '../persistent-cache';
import { EIO } from '../../shared/errno';
import { sameVersion } from '../../shared/fingerprint';
import { readFully } from '../../shared/read-fully';
import { changed, wroteData } from './invalidation';
import { takePrefetched } from './prefetched';
import { bytes, ErrnoError, wirePath, type Cb, type PathOpsState } from './state';

/** Largest file kept whole by the agent between opens. */
const MAX_CACHED_FILE = 8 * 1024 * 1024;

const readOnly = (flags: number) => (flags & 3) === FS.O_RDONLY && !(flags & FS.O_TRUNC);

export class Reading {
  constructor(private readonly s: PathOpsState) {}

  open(path: string, flags: number, cb: Cb): void {
    const { cache, contents, counters, persist } = this.s;
    if (readOnly(flags)) {
      const known = contents.lookup(path, cache.get(path));
      counters.inc(known ? 'content.hit' : 'content.miss');
      if (known) {
        const fd = this.s.newLocalHandle();
        this.track(fd, path, known, true);
        return cb(0, fd);
      }
      const blob = this.s.persists(path) ? persist!.blob(path) : undefined;
      const current = cache.get(path);
      if (blob && (!current || (current !== 'missing' && sameVersion(current, blob.attr)))) {
        return void persist!.blobs.open(blob.hash, blob.attr.size ?? 0).then((fh) => {
          if (!fh) return this.openRpc(path, flags, cb);
          counters.inc('persist.content-hit');
          const fd = this.s.newLocalHandle();
          this.track(fd, path, undefined, false, fh);
          cb(0, fd);
        });
      }
    }
    this.openRpc(path, flags, cb);
  }

  /** The blob file a handle reads from (a whole file in the persistent cache), if any. */
  blobFd(fd: number): number | undefined {
    const f = this.s.open.get(fd);
    return f?.blob && !f.stale ? f.blob.fd : undefined;
  }

  read(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb): void {
    const { wb } = this.s;
    if (wb.busy(path)) {
      // Our own writes first; what was read ahead before them is stale.
      return void wb.drainPath(path).then(() => {
        for (const o of this.s.open.values()) if (o.path === path) o.ra.clear();
        this.readNow(path, fd, buf, len, pos, cb);
      });
    }
    this.readNow(path, fd, buf, len, pos, cb);
  }

  release(path: string, fd: number, cb: Cb): void {
    // The handle's writes reach the local side before the handle is closed there.
    if (this.s.isLocalHandle(fd)) return this.releaseNow(path, fd, cb);
    void this.s.wb.release(fd).then(() => this.releaseNow(path, fd, cb));
  }

  /** Starts keeping the state of an open handle (what it read ahead, where from). */
  track(handle: number, path: string, data?: Buffer, wholeFile = false, blob?: FileHandle): void {
    const { open } = this.s;
    // A handle with no local side (opened from the content cache or a blob) reads those
    // bytes while they are current, even after the window budget dropped its window. Once
    // the file changed through the mount, it is opened for real: the command's fd reads the
    // file's current bytes, as locally.
    const fetch = async (offset: number, size: number): Promise<Buffer> => {
      const entry = open.get(handle);
      if (!this.s.isLocalHandle(handle)) return this.fetchRange(handle, offset, size);
      if (entry && !entry.stale) {
        if (blob) return readFully(blob, Buffer.allocUnsafe(size), offset);
        if (wholeFile && data) return data.subarray(Math.min(offset, data.length), Math.min(offset + size, data.length));
      }
      // By the name the file has now (renamed since, say: see moveOpen).
      const real = entry ? await (entry.reopened ??= this.reopen(entry.path)) : 0;
      return this.fetchRange(real, offset, size);
    };
    const ra = new FileReadAhead(fetch, this.s.budget);
    if (data && data.length > 0) ra.seed(data, wholeFile);
    else if (wholeFile) ra.seed(Buffer.alloc(0), true);
    open.get(handle)?.ra.clear();
    open.set(handle, { path, ra, blob });
  }

  /** A real handle on the local side for a file read so far from a cache. */
  reopen(path: string): Promise<number> {
    return this.s.fs.Open({ path: wirePath(path), flags: FS.O_RDONLY }).then((r) => {
      if (r.errno !== 0) throw new ErrnoError(r.errno);
      return r.handle;
    });
  }

  /** One Read RPC (at most the local side's 4 MiB). */
  private fetchRange(handle: number, offset: number, size: number): Promise<Buffer> {
    this.s.counters.inc('read.fetch');
    return this.s.fs.Read({ handle, offset, size }).then((r) => {
      if (r.errno !== 0) throw new ErrnoError(r.errno);
      this.s.counters.inc('read.fetched-bytes', r.data.length);
      return bytes(r.data);
    });
  }

  /** A whole file through parallel reads of an open handle (for the persistent cache). */
  private async fetchWhole(handle: number, size: number): Promise<Buffer> {
    const chunk = 4 * 1024 * 1024;
    const out = Buffer.allocUnsafe(size);
    const starts: number[] = [];
    for (let at = 0; at < size; at += chunk) starts.push(at);
    const worker = async () => {
      for (let at = starts.shift(); at !== undefined; at = starts.shift()) {
        const data = await this.fetchRange(handle, at, Math.min(chunk, size - at));
        if (data.length !== Math.min(chunk, size - at)) throw new ErrnoError(EIO); // changed meanwhile
        data.copy(out, at);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    return out;
  }

  /**
   * Opens through the local side. A read-only open of a file in the cached trees fetches
   * the whole file (once: later sessions open it from the persistent cache's blob).
   */
  private openRpc(path: string, flags: number, cb: Cb): void {
    const { cache, contents, counters, persist, appending } = this.s;
    const fresh = this.s.changes.since();
    this.s.call('open', this.s.fs.Open({ path: wirePath(path), flags }), cb, (r) => {
      // The file changed while it was opened: its attributes and bytes in the reply may be
      // older than that change, and this handle reads the file itself.
      const current = fresh(path);
      if (r.prefetched.length > 0) takePrefetched(this.s, r.prefetched, fresh);
      if (flags & FS.O_TRUNC) wroteData(this.s, path); // truncation drops a capability
      if (!current) {
        if (flags & FS.O_APPEND) appending.add(r.handle);
        this.track(r.handle, path);
        return cb(0, r.handle);
      }
      if (r.attr) cache.set(path, r.attr);
      if (r.wholeFile) contents.remember(path, r.attr, bytes(r.data));
      const size = Number(r.attr?.size ?? 0);
      const keep = readOnly(flags) && r.attr && this.s.persists(path) && ((r.attr.mode ?? 0) & FS.S_IFMT) === FS.S_IFREG;
      if (keep && r.wholeFile) void persist!.recordContent(path, r.attr!, bytes(r.data)).catch(() => undefined);
      if (keep && !r.wholeFile && size <= MAX_BLOB_BYTES) {
        counters.inc('persist.content-fetch');
        return void this.fetchWhole(r.handle, size).then(
          (data) => {
            void persist!.recordContent(path, r.attr!, data).catch(() => undefined);
            this.track(r.handle, path, data, true);
            cb(0, r.handle);
          },
          // Could not have it whole (changed while read, say): read it as any other file.
          () => {
            this.track(r.handle, path);
            cb(0, r.handle);
          },
        );
      }
      if (flags & FS.O_APPEND) appending.add(r.handle);
      this.track(r.handle, path, r.wholeFile ? bytes(r.data) : undefined, r.wholeFile);
      cb(0, r.handle);
    });
  }

  private readNow(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb): void {
    let f = this.s.open.get(fd);
    if (!f) {
      this.track(fd, path);
      f = this.s.open.get(fd)!;
    }
    f.ra.read(pos, len).then(
      (data) => {
        data.copy(buf, 0, 0, Math.min(data.length, len));
        cb(Math.min(data.length, len));
      },
      (err) => {
        if (err instanceof ErrnoError) return cb(-err.errno);
        this.s.opts.onRpcError?.('read', err);
        cb(-EIO);
      },
    );
  }

  /** Release once the handle's writes are on the local side. */
  private releaseNow(path: string, fd: number, cb: Cb): void {
    const { open, appending, cache, contents } = this.s;
    const f = open.get(fd);
    open.delete(fd);
    appending.delete(fd);
    void f?.blob?.close().catch(() => undefined);
    if (f && !f.written && !f.blob) {
      // A file read from start to end is kept for the next open of it.
      const attr = cache.get(path);
      if (attr && attr !== 'missing' && (attr.size ?? Infinity) <= MAX_CACHED_FILE) {
        void f.ra.wholeContent(attr.size ?? 0).then((data) => {
          if (data) contents.remember(path, attr, data);
          f.ra.clear();
        });
      } else f.ra.clear();
    } else f?.ra.clear();
    if (this.s.isLocalHandle(fd)) {
      void f?.reopened?.then((handle) => this.s.fs.Release({ handle }), () => undefined);
      return cb(0);
    }
    // Closing changes nothing on disk unless the handle wrote.
    this.s.simple('release', this.s.fs.Release({ handle: fd }), cb, () => f?.written && changed(this.s, path));
  }
}
