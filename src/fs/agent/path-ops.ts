// The agent's path operations, which fuse-nodes.ts calls for kernel requests: each turns
// a request into an RPC to the local file server (or a cache hit) and the reply into what
// the kernel expects. Errors keep their exact errno; a failed RPC (link down) becomes EIO
// so that a command never hangs on a dead connection. The operations live by concern in
// path-ops/; this file puts them together and holds every operation back while writes
// to its paths are still on their way.
import { Counters } from './counters';
import type { FsClient } from './rpc-client';
import { Attributes } from './path-ops/attributes';
import { Directories } from './path-ops/directories';
import { Namespace } from './path-ops/namespace';
import { Reading } from './path-ops/reading';
import { PathOpsState, type PathOps, type PathOpsOptions } from './path-ops/state';
import { makeWriteBehind, Writing } from './path-ops/writing';
import { xattr } from './path-ops/xattrs';

export type { Cb, PathOps, PathOpsOptions } from './path-ops/state';
export { makeWriteBehind } from './path-ops/writing';

/**
 * Operations that must not run while writes to their path are still on the way (they would
 * see the file without them), and which of their arguments are paths: 'dir' waits for the
 * directory's entries, 'tree' for everything under it.
 */
const WAITS_FOR_WRITES: Record<string, ('path' | 'dir' | 'tree')[]> = {
  getattr: ['path'],
  readlink: ['path'],
  open: ['path'],
  create: ['path'],
  truncate: ['path'],
  ftruncate: ['path'],
  utimens: ['path'],
  chmod: ['path'],
  chown: ['path'],
  unlink: ['path'],
  link: ['path', 'path'],
  rename: ['tree', 'tree'],
  rmdir: ['tree'],
  readdir: ['dir'],
};

export function makePathOps(fs: FsClient, opts: PathOpsOptions): PathOps {
  const counters = opts.counters ?? new Counters();
  const wb = opts.writeBehind ?? makeWriteBehind(fs);
  const ops = byConcern(new PathOpsState(fs, { ...opts, writeBehind: wb }, counters, wb));
  for (const [name, fn] of Object.entries(ops)) {
    const waits = WAITS_FOR_WRITES[name];
    ops[name] = (...args: unknown[]) => {
      // Every path operation is counted by name (the kernel's requests by opcode: fuse.*).
      counters.inc(`op.${name}`);
      if (waits && wb.bytesPending > 0) {
        const drains = waits.map((kind, i) => {
          const p = args[i] as string;
          return kind === 'path' ? (wb.busy(p) ? wb.drainPath(p) : undefined) : kind === 'dir' ? wb.drainDir(p) : wb.drainTree(p);
        });
        if (drains.some(Boolean)) {
          counters.inc('write.waited');
          return void Promise.all(drains).then(() => fn!(...args));
        }
      }
      return fn!(...args);
    };
  }
  return ops;
}

/** Every operation by name, each from the file of its concern. */
function byConcern(s: PathOpsState): PathOps {
  const dirs = new Directories(s);
  dirs.seed(s.opts.warm);
  const attrs = new Attributes(s, dirs);
  const reading = new Reading(s);
  const writing = new Writing(s, reading);
  const names = new Namespace(s, reading);
  return {
    getattr: attrs.getattr.bind(attrs),
    readlink: attrs.readlink.bind(attrs),
    access: attrs.access.bind(attrs),
    statfs: attrs.statfs.bind(attrs),
    readdir: dirs.readdir.bind(dirs),
    open: reading.open.bind(reading),
    blobFd: reading.blobFd.bind(reading),
    read: reading.read.bind(reading),
    release: reading.release.bind(reading),
    create: writing.create.bind(writing),
    write: writing.write.bind(writing),
    flush: writing.flush.bind(writing),
    fsync: writing.fsync.bind(writing),
    truncate: writing.truncate.bind(writing),
    ftruncate: writing.ftruncate.bind(writing),
    mkdir: names.mkdir.bind(names),
    mknod: names.mknod.bind(names),
    rmdir: names.rmdir.bind(names),
    unlink: names.unlink.bind(names),
    rename: names.rename.bind(names),
    symlink: names.symlink.bind(names),
    link: names.link.bind(names),
    chmod: names.chmod.bind(names),
    chown: names.chown.bind(names),
    utimens: names.utimens.bind(names),
    xattr: (path: string, op: number, name: Buffer, value: Buffer | undefined, flags: number, size: number, cb) =>
      xattr(s, path, op, name, value, flags, size, cb),
  };
}
