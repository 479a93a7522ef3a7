// Extended attributes (XattrRequest.op), asked of the local side. The kernel asks for
// security.capability before every write to a file (to drop it) and at every exec of it:
// that answer, the length of an attribute or its absence, is kept per path. Setting or
// removing an attribute changes the file's ctime, so an answer given while the file had
// attributes we still hold is kept as long as they are the current ones (a program run a
// thousand times in a build asks once); an answer for a file whose attributes we do not hold
// is kept for a second.
import { ENODATA } from '../../shared/errno';
import { fingerprint } from '../../shared/fingerprint';
import { XATTR_GET, XATTR_REMOVE, XATTR_SET } from '../../shared/xattr-ops';
import { forget } from './invalidation';
import { bytes, wirePath, type Cb, type PathOpsState } from './state';

/** Known xattr lengths (or -errno) of one path, and the file version they were read at. */
export interface KnownXattrs {
  version?: string;
  lengths: Map<string, number>;
}

/** How long answers tied to a version are kept (they are dropped with it anyway). */
const VERSIONED_TTL_MS = 10 * 60_000;

/** The version of `path` the caches hold now (attribute cache, then the persistent one). */
function currentVersion(s: PathOpsState, path: string): string | undefined {
  const held = s.cache.get(path);
  if (held && held !== 'missing') return fingerprint(held).toString('hex');
  const kept = s.persists(path) ? s.persist!.attr(path) : undefined;
  return kept && kept !== 'missing' ? fingerprint(kept).toString('hex') : undefined;
}


export function xattr(s: PathOpsState, path: string, op: number, name: Buffer, value: Buffer | undefined, flags: number, size: number, cb: Cb): void {
  const key = name.toString('latin1');
  const version = currentVersion(s, path);
  const remember = (n: number) => {
    const held = s.xattrLengths.get(path);
    const same = held && held.version === version;
    const lengths = same ? held.lengths : new Map<string, number>();
    lengths.set(key, n);
    if (!same) s.xattrLengths.set(path, { version, lengths }, version !== undefined ? { ttl: VERSIONED_TTL_MS } : undefined);
  };
  // An absence answers a read of any size; a length only a question for the length.
  const k = op === XATTR_GET ? s.xattrLengths.get(path) : undefined;
  const cached = k && (k.version === undefined || k.version === version) ? k.lengths.get(key) : undefined;
  if (cached !== undefined && (cached < 0 || size === 0)) return cached < 0 ? cb(cached) : cb(0, cached);
  const fresh = s.changes.since();
  s.call(
    'xattr',
    s.fs.Xattr({ path: wirePath(path), op, name, value, flags, size }),
    (err: number) => {
      if (op === XATTR_GET && err === -ENODATA && fresh(path)) remember(err);
      cb(err);
    },
    (r) => {
      if (op === XATTR_SET || op === XATTR_REMOVE) {
        forget(s, path);
        return cb(0);
      }
      if (size === 0) {
        if (op === XATTR_GET && fresh(path)) remember(r.size);
        return cb(0, r.size);
      }
      cb(0, bytes(r.value));
    },
  );
}
