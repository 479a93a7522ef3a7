// Changes to names and their metadata: mkdir, mknod, rmdir, unlink, rename, symlink, link,
// chmod, chown, utimens. Each forgets what it made stale once the local side did it. An
// open file unlinked or renamed over is kept under a hidden name (see hidden-files.ts).
import type { pb } from '../../../wire/schema';
import type { CachedAttr } from '../attr-cache';
import { HiddenFiles } from '../hidden-files';
import { EIO, ENOTEMPTY } from '../../shared/errno';
import { changed, forget, forgetTree, moveOpen } from './invalidation';
import type { Reading } from './reading';
import { wirePath, type Cb, type PathOpsState } from './state';

export class Namespace {
  constructor(
    private readonly s: PathOpsState,
    private readonly reading: Reading,
  ) {}

  mkdir(path: string, mode: number, cb: Cb): void {
    this.s.simple('mkdir', this.s.fs.Mkdir({ path: wirePath(path), mode }), cb, () => forget(this.s, path));
  }

  mknod(path: string, mode: number, dev: number, cb: Cb): void {
    this.s.simple('mknod', this.s.fs.Mknod({ path: wirePath(path), mode, rdev: dev }), cb, () => forget(this.s, path));
  }

  rmdir(path: string, cb: Cb): void {
    if (this.s.hidden.hasUnder(path)) return cb(-ENOTEMPTY);
    this.s.simple('rmdir', this.s.fs.Rmdir({ path: wirePath(path) }), cb, () => forgetTree(this.s, path));
  }

  unlink(path: string, cb: Cb): void {
    const { cache } = this.s;
    if (this.s.hidden.remove(path)) return cb(0); // unlinked already, when it was hidden
    const before = cache.get(path); // unlinking changes the link count under its other names
    this.s.simple('unlink', this.s.fs.Unlink({ path: wirePath(path) }), cb, () => {
      if (before && before !== 'missing') cache.set(path, before);
      forget(this.s, path, true);
    });
  }

  /** flags: renameat2's RENAME_NOREPLACE, RENAME_EXCHANGE (done by the local side). */
  rename(src: string, dest: string, flags: number | Cb, maybeCb?: Cb): void {
    const cb = typeof flags === 'function' ? flags : maybeCb!;
    const renameFlags = typeof flags === 'number' ? flags : 0;
    if (HiddenFiles.isHiddenName(dest)) return this.unlinkOpenFile(src, dest, cb);
    this.s.simple('rename', this.s.fs.Rename({ from: wirePath(src), to: wirePath(dest), flags: renameFlags }), cb, () => {
      this.s.wb.renamed(src, dest);
      this.s.hidden.moved(src, dest);
      moveOpen(this.s, src, dest);
      changed(this.s, src);
      changed(this.s, dest);
      forgetTree(this.s, src);
      forgetTree(this.s, dest);
    });
  }

  symlink(target: string, path: string, cb: Cb): void {
    this.s.simple('symlink', this.s.fs.Symlink({ target: wirePath(target), path: wirePath(path) }), cb, () => forget(this.s, path));
  }

  link(existing: string, path: string, cb: Cb): void {
    this.s.simple('link', this.s.fs.Link({ target: wirePath(existing), path: wirePath(path) }), cb, () => {
      forget(this.s, existing, true);
      forget(this.s, path, true);
    });
  }

  chmod(path: string, mode: number, cb: Cb): void {
    this.s.simple('chmod', this.s.fs.Chmod({ path: wirePath(path), mode }), cb, () => forget(this.s, path));
  }

  chown(path: string, uid: number, gid: number, cb: Cb): void {
    this.s.simple('chown', this.s.fs.Chown({ path: wirePath(path), uid, gid }), cb, () => forget(this.s, path));
  }

  /** Times as timespecs (nanoseconds); null: the local side's "now"; omitted: left as they are. */
  utimens(
    path: string,
    atime: pb.Timespec.$Properties | null,
    mtime: pb.Timespec.$Properties | null,
    atimeOmit: boolean,
    mtimeOmit: boolean,
    cb: Cb,
  ): void {
    this.s.simple('utimens', this.s.fs.Utimens({ path: wirePath(path), atime, mtime, atimeOmit, mtimeOmit }), cb, () =>
      forget(this.s, path),
    );
  }

  /** Unlinks `src`, which is open, where it is to be renamed to `hiddenPath` (see hidden-files.ts). */
  private unlinkOpenFile(src: string, hiddenPath: string, cb: Cb): void {
    const { cache, open } = this.s;
    const known = cache.get(src);
    const attr: Promise<CachedAttr | undefined> =
      known && known !== 'missing'
        ? Promise.resolve(known)
        : this.s.fs.Getattr({ path: wirePath(src) }).then((r) => r.attr ?? undefined);
    // Handles opened from the caches have no file open on the local side; once the name is
    // gone they could not get one (their reads after a change go to the file itself): they
    // get it now, while the name is there.
    const reopened = [...open]
      .filter(([fd, f]) => this.s.isLocalHandle(fd) && f.path === src)
      .map(([, f]) => (f.reopened ??= this.reading.reopen(src)));
    Promise.allSettled([attr, ...reopened]).then(() => attr).then(
      (a) =>
        this.s.simple('unlink', this.s.fs.Unlink({ path: wirePath(src) }), cb, () => {
          this.s.hidden.add(hiddenPath, a ?? {});
          moveOpen(this.s, src, hiddenPath);
          changed(this.s, src);
          changed(this.s, hiddenPath);
          cache.invalidate(src, true);
        }),
      () => cb(-EIO),
    );
  }
}
