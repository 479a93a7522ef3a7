// Writing: writes are taken at once and sent behind (see write-behind.ts); close and fsync
// wait for them and carry their errors; O_APPEND writes travel in the order they were taken.
import { constants as FS } from 'node:fs';
import { EIO } from '../../shared/errno';
import type { FsClient } from '../rpc-client';
import { WriteBehind } from '../write-behind';
import { changed, wroteData } from './invalidation';
import type { Reading } from './reading';
import { wirePath, type Cb, type PathOpsState } from './state';

/** The writes of a session go through this: each run of them is one Write RPC. */
export function makeWriteBehind(fs: FsClient): WriteBehind {
  const result = (r: { errno?: number | null; written?: number | null }, data: Buffer) =>
    r.errno ? r.errno : r.written === data.length ? 0 : EIO;
  return new WriteBehind(
    (handle, _path, offset, data, sync) =>
      fs.Write({ handle, offset, data, sync: sync === 'sync', datasync: sync === 'datasync' }).then((r) => ({ errno: result(r, data), attr: r.attr ?? undefined })),
    undefined,
    undefined,
    (writes) =>
      fs.Appends({ writes: writes.map((w) => ({ handle: w.handle, offset: 0, data: w.data })) }).then((r) =>
        writes.map((w, i) => (r.replies[i] ? result(r.replies[i]!, w.data) : EIO)),
      ),
  );
}

export class Writing {
  constructor(
    private readonly s: PathOpsState,
    private readonly reading: Reading,
  ) {}

  /** Makes and opens a file in one round trip, with the open's real flags (O_APPEND too). */
  create(path: string, flags: number, mode: number, cb: Cb): void {
    this.s.call('create', this.s.fs.Create({ path: wirePath(path), flags, mode }), cb, (r) => {
      // A file this made (O_EXCL) or emptied (O_TRUNC drops it) has no capability.
      if (flags & (FS.O_EXCL | FS.O_TRUNC)) wroteData(this.s, path);
      else changed(this.s, path);
      if (flags & FS.O_APPEND) this.s.appending.add(r.handle);
      this.reading.track(r.handle, path);
      if (r.attr) this.s.cache.set(path, r.attr);
      cb(0, r.handle, r.attr ?? undefined);
    });
  }

  write(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb): void {
    const { wb } = this.s;
    // The kernel's buffer is only ours until cb: copy it before it is kept.
    const data = Buffer.from(buf.subarray(0, len));
    const f = this.s.open.get(fd);
    if (f) f.written = true;
    wroteData(this.s, path);
    this.s.counters.inc('write.bytes', len);
    this.s.hidden.wrote(path, pos + len);
    // Taken now, sent behind; an error comes back at flush or fsync. O_APPEND: the local
    // side appends wherever the file ends when a write is applied, so such writes travel
    // in the order they were taken (several to a request).
    if (this.s.appending.has(fd)) return void wb.append(fd, path, data).then((errno) => cb(errno ? -errno : len));
    void wb.write(fd, path, pos, data).then((errno) => cb(errno ? -errno : len));
  }

  flush(_path: string, fd: number, cb: Cb): void {
    // close(2): everything this handle wrote is on the local side, or close says why not.
    void this.s.wb.flush(fd).then((errno) => {
      if (errno) return cb(-errno);
      const f = this.s.open.get(fd);
      if (f?.written) changed(this.s, f.path);
      cb(0);
    });
  }

  fsync(_path: string, datasync: number, fd: number, cb: Cb): void {
    if (this.s.isLocalHandle(fd)) return cb(0); // opened read-only from the content cache
    void this.s.wb.flushAndSync(fd, !!datasync).then(({ errno, synced }) => {
      if (errno) return cb(-errno);
      if (synced) return cb(0);
      this.s.simple('fsync', this.s.fs.Fsync({ handle: fd, datasync: !!datasync }), cb);
    });
  }

  truncate(path: string, size: number, cb: Cb): void {
    this.s.simple('truncate', this.s.fs.Truncate({ path: wirePath(path), size }), cb, () => changed(this.s, path));
  }

  ftruncate(path: string, fd: number, size: number, cb: Cb): void {
    this.s.simple('ftruncate', this.s.fs.Truncate({ path: wirePath(path), size, handle: fd }), cb, () => {
      this.s.hidden.truncated(path, size);
      changed(this.s, path);
    });
  }
}
