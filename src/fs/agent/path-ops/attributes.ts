// Attributes and lookups: getattr from the caches (the hidden files, the attribute cache,
// the persistent cache, a listing of the parent) before the local side; link targets kept
// as long as their link's attributes; access and statfs asked each time.
import { toByteString } from '../byte-string';
import { timespecToMs } from '../../shared/attr';
import { EIO, ENOENT } from '../../shared/errno';
import { sameVersion } from '../../shared/fingerprint';
import type { Directories } from './directories';
import { takePrefetched } from './prefetched';
import { parentOf, wirePath, type Cb, type PathOpsState } from './state';

export class Attributes {
  constructor(
    private readonly s: PathOpsState,
    private readonly dirs: Directories,
  ) {}

  getattr(path: string, cb: Cb): void {
    const { cache, counters, persist } = this.s;
    const hiddenAttr = this.s.hidden.get(path);
    if (hiddenAttr) return cb(0, hiddenAttr);
    const hit = cache.get(path);
    counters.inc(hit ? 'attr.hit' : 'attr.miss');
    if (hit === 'missing') return cb(-ENOENT);
    if (hit) return cb(0, hit);
    if (this.s.persists(path)) {
      const kept = persist!.attr(path);
      if (kept) {
        counters.inc('persist.hit');
        return kept === 'missing' ? cb(-ENOENT) : cb(0, kept);
      }
      counters.inc('persist.miss');
    }
    const listed = cache.fromListing(path);
    if (listed === 'absent') {
      counters.inc('attr.absent-from-listing');
      cache.setMissing(path);
      return cb(-ENOENT);
    }
    // A miss in a directory of moderate size: list it whole (one round trip answers this
    // name and every sibling, present or not: PATH and library searches probe many).
    const parent = parentOf(path);
    const parentAttr = parent === undefined ? undefined : cache.get(parent);
    if (listed === undefined && parent !== undefined && parentAttr && parentAttr !== 'missing' && this.dirs.listable(parent, parentAttr)) {
      return void this.dirs.list(parent).then((ok) => {
        const again = ok ? cache.get(path) : undefined;
        if (again === 'missing' || (ok && cache.fromListing(path) === 'absent')) return cb(-ENOENT);
        if (again) return cb(0, again);
        this.getattrRpc(path, cb);
      });
    }
    this.getattrRpc(path, cb);
  }

  readlink(path: string, cb: Cb): void {
    const { cache, counters, persist, links } = this.s;
    // A link's target changes only with its ctime: kept as long as its attributes are.
    const attr = cache.get(path);
    const known = links.get(path);
    if (known && attr && attr !== 'missing' && known.ino === attr.ino && known.ctime === timespecToMs(attr.ctime)) {
      counters.inc('readlink.hit');
      return cb(0, known.target);
    }
    const kept = this.s.persists(path) ? persist!.linkTarget(path) : undefined;
    const keptAttr = kept !== undefined ? persist!.attr(path) : undefined;
    if (kept !== undefined && (!attr || (attr !== 'missing' && keptAttr !== 'missing' && sameVersion(attr, keptAttr)))) {
      counters.inc('persist.readlink-hit');
      return cb(0, kept);
    }
    counters.inc('readlink.miss');
    this.s.call('readlink', this.s.fs.Readlink({ path: wirePath(path) }), cb, (r) => {
      const target = toByteString(r.target);
      const linkAttr = r.attr ?? (attr && attr !== 'missing' ? attr : undefined);
      if (linkAttr) links.set(path, { target, ino: linkAttr.ino ?? 0, ctime: timespecToMs(linkAttr.ctime) });
      if (r.attr && this.s.persists(path)) persist!.recordLink(path, r.attr, target);
      cb(0, target);
    });
  }

  access(path: string, mode: number, cb: Cb): void {
    this.s.simple('access', this.s.fs.Access({ path: wirePath(path), mask: mode }), cb);
  }

  statfs(path: string, cb: Cb): void {
    this.s.call('statfs', this.s.fs.Statfs({ path: wirePath(path) }), cb, (r) =>
      cb(0, {
        bsize: r.bsize,
        frsize: r.frsize,
        blocks: r.blocks,
        bfree: r.bfree,
        bavail: r.bavail,
        files: r.files,
        ffree: r.ffree,
        favail: r.ffree,
        fsid: 0,
        flag: 0,
        namemax: r.namemax,
      }),
    );
  }

  private getattrRpc(path: string, cb: Cb): void {
    const { cache, persist } = this.s;
    const fresh = this.s.changes.since();
    this.s.fs.Getattr({ path: wirePath(path) }).then(
      (r) => {
        if (r.errno === ENOENT && fresh(path)) {
          cache.setMissing(path);
          if (this.s.persists(path)) persist!.recordAttr(path, undefined);
        }
        if (r.errno !== 0) return cb(-r.errno);
        if (r.prefetched?.length) takePrefetched(this.s, r.prefetched, fresh);
        if (fresh(path)) {
          cache.set(path, r.attr!);
          if (this.s.persists(path)) persist!.recordAttr(path, r.attr!);
        }
        cb(0, r.attr!);
      },
      (err) => {
        this.s.opts.onRpcError?.('getattr', err);
        cb(-EIO);
      },
    );
  }
}
