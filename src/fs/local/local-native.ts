// The local file server's native addon (src/client/local-addon/local-fs.c): extended
// attributes, utimensat with nanoseconds and UTIME_OMIT, renameat2 flags, flock (a host pool's
// slots, src/client/pool/slots.ts). Each call returns
// its result or a negative errno. Without the addon (not built) the server answers as Node
// alone can: EOPNOTSUPP for xattrs, microsecond times, no rename flags.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface LocalNative {
  getxattr(path: Buffer, name: Buffer, size: number): Buffer | number;
  listxattr(path: Buffer, size: number): Buffer | number;
  setxattr(path: Buffer, name: Buffer, value: Buffer, flags: number): number;
  removexattr(path: Buffer, name: Buffer): number;
  /** nsec may be UTIME_NOW or UTIME_OMIT. */
  utimens(path: Buffer, aSec: number, aNsec: number, mSec: number, mNsec: number): number;
  rename(from: Buffer, to: Buffer, flags: number): number;
  /** op: LOCK_EX or LOCK_UN, or'ed with LOCK_NB. */
  flock(fd: number, op: number): number;
}

export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

export const UTIME_NOW = (1 << 30) - 1;
export const UTIME_OMIT = (1 << 30) - 2;

let loaded: LocalNative | null | undefined;

/** dist/local-addon/local-fs.node: above dist/src/client (the bundle) and dist/src/fs/local (tests). */
const CANDIDATES = ['../../local-addon/local-fs.node', '../../../local-addon/local-fs.node'];

export function localNative(): LocalNative | undefined {
  if (loaded === undefined) {
    const file = CANDIDATES.map((c) => join(__dirname, c)).find((f) => existsSync(f));
    try {
      loaded = file ? (require(file) as LocalNative) : null;
    } catch {
      loaded = null;
    }
  }
  return loaded ?? undefined;
}
