// Linux errno numbers travel as positive integers (0 = success). Node reports them as
// `code` strings; this maps them back without losing the exact error.
import { constants } from 'node:os';

const ERRNO = constants.errno as Record<string, number>;

export const EPERM = ERRNO.EPERM;
export const ENOENT = ERRNO.ENOENT;
export const EIO = ERRNO.EIO;
export const EBADF = ERRNO.EBADF;
export const EACCES = ERRNO.EACCES;
export const EINVAL = ERRNO.EINVAL;
export const EMFILE = ERRNO.EMFILE;
export const ENAMETOOLONG = ERRNO.ENAMETOOLONG;
export const ENOSYS = ERRNO.ENOSYS;
export const ENOTEMPTY = ERRNO.ENOTEMPTY;
export const EOPNOTSUPP = ERRNO.EOPNOTSUPP;
export const ERANGE = ERRNO.ERANGE;
export const ENODATA = ERRNO.ENODATA;
export const E2BIG = ERRNO.E2BIG;

/** The positive errno of a Node fs error; EIO for anything that is not one. */
export function errnoOf(err: unknown): number {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string' && typeof ERRNO[code] === 'number') return ERRNO[code];
  const n = (err as NodeJS.ErrnoException | undefined)?.errno;
  if (typeof n === 'number' && n !== 0) return Math.abs(n);
  return EIO;
}
