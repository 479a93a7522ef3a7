// The parts of fuse-native 2.2 that outrun uses (the package ships no types).
declare module 'fuse-native' {
  type Cb = (err: number, ...rest: any[]) => void;
  interface FuseStat {
    mode: number;
    uid: number;
    gid: number;
    size: number;
    dev?: number;
    nlink: number;
    ino: number;
    rdev: number;
    blksize: number;
    blocks: number;
    atime: number;
    mtime: number;
    ctime: number;
  }
  interface FuseOps {
    [op: string]: ((...args: any[]) => void) | undefined;
  }
  interface FuseOptions {
    timeout?: number | false;
    allowOther?: boolean;
    defaultPermissions?: boolean;
    debug?: boolean;
    fsname?: string;
    subtype?: string;
    autoCache?: boolean;
    maxRead?: number;
    attrTimeout?: number;
    entryTimeout?: number;
    mkdir?: boolean;
  }
  class Fuse {
    constructor(mnt: string, ops: FuseOps, opts?: FuseOptions);
    mnt: string;
    opts: FuseOptions;
    mount(cb: (err: Error | null) => void): void;
    protected _fuseOptions(): string;
    static readonly ENOENT: number;
    static readonly EIO: number;
  }
  export = Fuse;
  export type { Cb, FuseStat, FuseOps, FuseOptions };
}
