// Paths from the wire are checked before they touch the local disk: absolute, no NUL,
// no `.`/`..` components, no empty components, bounded length. The FUSE kernel only ever
// sends such paths; anything else is a hostile or broken peer.
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
