// What says "this file is still the one we cached": a short hash of the attributes that any
// change to a file's content, name binding or metadata alters. ctime is in it, and the kernel
// sets ctime (to the nanosecond) on every write, truncate, chmod, chown, link and rename, and
// nobody can set it back; ino and size catch a file replaced by another. atime is left out
// (reading must not invalidate). Both sides compute it the same way from a wire Attr.
import { createHash } from 'node:crypto';
import type { pb } from '../wire/schema';

export const FINGERPRINT_BYTES = 8;
const MISSING = Buffer.from('missing\0');

/** The fingerprint of a path's attributes, or of its absence (`undefined`). */
export function fingerprint(attr: pb.Attr.$Properties | null | undefined): Buffer {
  if (!attr) return MISSING;
  const t = (ts: pb.Timespec.$Properties | null | undefined) => `${Number(ts?.sec ?? 0)}.${ts?.nsec ?? 0}`;
  const key = [attr.ino, attr.mode, attr.nlink, attr.uid, attr.gid, attr.rdev, attr.size, t(attr.mtime), t(attr.ctime)]
    .map((v) => (typeof v === 'string' ? v : String(Number(v ?? 0))))
    .join(':');
  return createHash('sha256').update(key).digest().subarray(0, FINGERPRINT_BYTES);
}

/** Whether two attribute sets describe the same version of a file. */
export const sameVersion = (a: pb.Attr.$Properties | null | undefined, b: pb.Attr.$Properties | null | undefined) =>
  fingerprint(a).equals(fingerprint(b));
