// XattrRequest.op: which extended-attribute call a request stands for (both sides).
export const XATTR_GET = 1;
export const XATTR_LIST = 2;
export const XATTR_SET = 3;
export const XATTR_REMOVE = 4;
/** The kernel's XATTR_SIZE_MAX: the largest value or list. */
export const MAX_XATTR_BYTES = 64 * 1024;
