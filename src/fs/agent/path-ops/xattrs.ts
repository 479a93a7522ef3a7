// Extended attributes (XattrRequest.op), asked of the local side. The kernel asks for
// security.capability before every write to a file (to drop it): that answer, the length
// of an attribute or its absence, is kept for a second, per path.
import { ENODATA } from '../../shared/errno';
import { XATTR_GET, XATTR_REMOVE, XATTR_SET } from '../../shared/xattr-ops';
import { forget } from './invalidation';
import { bytes, wirePath, type Cb, type PathOpsState } from './state';

export function xattr(s: PathOpsState, path: string, op: number, name: Buffer, value: Buffer | undefined, flags: number, size: number, cb: Cb): void {
  const key = name.toString('latin1');
  const remember = (n: number) => {
    const known = s.xattrLengths.get(path) ?? new Map<string, number>();
    s.xattrLengths.set(path, known.set(key, n));
  };
  const cached = op === XATTR_GET && size === 0 ? s.xattrLengths.get(path)?.get(key) : undefined;
  if (cached !== undefined) return cached < 0 ? cb(cached) : cb(0, cached);
  const fresh = s.changes.since();
  s.call(
    'xattr',
    s.fs.Xattr({ path: wirePath(path), op, name, value, flags, size }),
    (err: number) => {
      if (op === XATTR_GET && size === 0 && err === -ENODATA && fresh(path)) remember(err);
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
