// Paths from the wire are checked before they touch the local disk: absolute, no NUL,
// no `.`/`..` components, no empty components, bounded length. The FUSE kernel only ever
// sends such paths; anything else is a hostile or broken peer.
import { EINVAL, ENAMETOOLONG } from '../shared/errno';

export const PATH_MAX = 4096;
const NAME_MAX = 255;

/** The path as a Buffer for node:fs, or null if it must be refused (caller answers EINVAL). */
export function checkWirePath(path: Uint8Array | null | undefined): Buffer | null {
  if (!path || path.length === 0 || path.length >= PATH_MAX) return null;
  const buf = Buffer.isBuffer(path) ? path : Buffer.from(path.buffer, path.byteOffset, path.length);
  if (buf[0] !== 0x2f) return null; // must start with '/'
  if (buf.length === 1) return buf;
  if (buf.includes(0)) return null;
  let start = 1;
  for (let i = 1; i <= buf.length; i++) {
    if (i === buf.length || buf[i] === 0x2f) {
      const len = i - start;
      if (len === 0 || len > NAME_MAX) return null;
      if (buf[start] === 0x2e && (len === 1 || (len === 2 && buf[start + 1] === 0x2e))) return null;
      start = i + 1;
    }
  }
  return buf;
}

/** A symlink target: any bytes but NUL, bounded. */
export function checkLinkTarget(target: Uint8Array | null | undefined): Buffer | null {
  if (!target || target.length === 0 || target.length >= PATH_MAX) return null;
  const buf = Buffer.isBuffer(target) ? target : Buffer.from(target.buffer, target.byteOffset, target.length);
  return buf.includes(0) ? null : buf;
}

/**
 * The errno for a path or link target refused above: ENAMETOOLONG when only its length is
 * wrong (a whole path of PATH_MAX bytes or more, or a name over NAME_MAX), as the local
 * kernel would answer; EINVAL for anything malformed.
 */
export function refusedPathErrno(path: Uint8Array | null | undefined, isLinkTarget = false): number {
  if (!path || path.length === 0 || path.includes(0)) return EINVAL;
  if (path.length >= PATH_MAX) return ENAMETOOLONG;
  if (isLinkTarget) return EINVAL;
  const names = Buffer.from(path.buffer, path.byteOffset, path.length).toString('latin1').split('/');
  return names.some((n) => n.length > NAME_MAX) ? ENAMETOOLONG : EINVAL;
}
