// Kernel requests on nodes, answered by the agent's path operations (path-ops.ts). The
// kernel speaks in node ids and names; this file turns them into paths through the inode
// table, calls the path operation, and tells the kernel what it may cache: entries and
// attributes for their timeouts, a file's pages across opens while its version (mtime and
// size) is unchanged, a directory's listing likewise, and, where the kernel offers
// passthrough, a file whose whole content sits in the persistent cache is read straight
// from that blob by the kernel.
import { fromByteString, toByteString } from './byte-string';
import { constants as OS } from 'node:os';
import { constants as FS, fstatSync } from 'node:fs';
import type { CachedAttr } from './attr-cache';
import type { PathOps } from './path-ops';
import { InodeTable, isDirMode, noteAttr, type Node } from './inode-table';
import { LRUCache } from 'lru-cache';
import type { Counters } from './counters';
import { XATTR_GET, XATTR_LIST, XATTR_REMOVE, XATTR_SET } from '../shared/xattr-ops';
import { FATTR, FOPEN, FSYNC_FDATASYNC, GETATTR_FH, Opcode, RENAME_EXCHANGE, RENAME_NOREPLACE } from '../../remote/fuse/protocol';
import {
  attrOut,
  attrOutOfEntry,
  direntSize,
  entryOut,
  names,
  notifyInvalEntry,
  notifyInvalInode,
  openOut,
  statfsOut,
  u64,
  writeDirent,
  writeOut,
  type InHeader,
} from '../../remote/fuse/wire-types';
import type { Handler, HandlerResult, Negotiated } from '../../remote/fuse/connection';

const E = OS.errno;

export interface NodeSettings {
  entryTimeoutS: number;
  attrTimeoutS: number;
  negativeTimeoutS: number;
  /** Nodes held before the kernel is asked to drop the oldest (default MAX_NODES). */
  maxNodes?: number;
}

/** What the handlers need of the connection. */
export interface KernelLink {
  negotiated(): Negotiated | undefined;
  /** Resolves once the kernel has taken it (written from another thread: see fuse-kernel.c). */
  notify(message: Buffer): Promise<void>;
  backingOpen(fileFd: number): number;
  backingClose(id: number): void;
  /** GETATTR of the node is answered natively with this fuse_attr_out until ttlMs pass. */
  attrSet(nodeid: number, attrOut: Buffer, ttlMs: number): void;
  /** ...no longer; nor are read-only opens of it (see passthroughHold). */
  attrDrop(nodeid: number): void;
  /**
   * The addon owns the backing ids of passed-through nodes, counts their opens and answers
   * read-only opens of them itself while their attributes are current (native-opens.c).
   * Hold: the node's backing id for one more open JS passes through (0: none; -EBUSY: one
   * for another blob is still open). Adopt: the addon takes a new id, held once.
   */
  passthroughHold(nodeid: number, blob: number): number;
  passthroughAdopt(nodeid: number, blob: number, backingId: number): boolean;
  passthroughRelease(nodeid: number): void;
  /** The native opens still open, counted by JS from now on (their releases reach it). */
  passthroughTakeOpens(nodeid: number): number;
  /** No more native opens of the node; the passed-through opens still open. */
  passthroughStop(nodeid: number): number;
}

/** Per node: how its pages and listing may be kept (its passthrough backing is the addon's). */
interface CacheState {
  pageVersion?: string;
  listVersion?: string;
  cachedOpens: number;
}

const versionOf = (a: CachedAttr | undefined) =>
  a ? `${a.mtime?.sec ?? 0}.${a.mtime?.nsec ?? 0}:${a.size ?? 0}` : undefined;
const readOnly = (flags: number) => (flags & 3) === FS.O_RDONLY && !(flags & FS.O_TRUNC);
const isDot = (n: string) => n === '.' || n === '..';
/** Handles of opens the addon answered (native-opens.c: NATIVE_HANDLE_TAG). */
const isNativeHandle = (fh: number) => fh >= 2 ** 62;
/** Where an open file with no name left is known to the path operations (see HiddenFiles). */
const hiddenPathOf = (node: Node) => `/.fuse_hidden${node.id.toString(16).padStart(16, '0')}`;
const UNCHANGED_ID = 0xffffffff;
/**
 * Past this many nodes the kernel is asked to drop the oldest names it holds (it would
 * keep every name of a `find /` while memory lasts); their nodes go when it forgets them.
 */
const MAX_NODES = 150_000;
const SWEEP_NODES = 30_000;

interface DirListing {
  node: Node;
  names?: string[];
  attrs?: (CachedAttr | undefined)[];
}

/** Calls a path operation and gives back its callback's arguments (first: 0 or -errno). */
function caller(ops: PathOps) {
  return (op: string, ...args: unknown[]): Promise<any[]> =>
    new Promise((resolve) => {
      const fn = ops[op];
      if (!fn) return resolve([-E.ENOSYS]);
      fn(...args, (...res: any[]) => resolve(res));
    });
}

export class FuseNodes {
  readonly table = new InodeTable();
  private readonly state = new Map<number, CacheState>();
  private readonly handles = new Map<number, { node: Node; passthrough: boolean }>();
  /**
   * Listings being read, by directory handle; with no OPENDIR (handle 0), by node, a few
   * kept (the kernel reads a listing once into its cache and then from there).
   */
  private readonly dirs = new Map<number, DirListing>();
  private readonly listings = new LRUCache<number, DirListing>({ max: 256 });
  private nextDirHandle = 1;
  private readonly call: (op: string, ...args: unknown[]) => Promise<any[]>;

  constructor(
    private readonly ops: PathOps,
    private readonly kernel: KernelLink,
    private readonly s: NodeSettings,
    private readonly counters?: Counters,
  ) {
    this.call = caller(ops);
  }

  /** The handlers, by opcode. */
  handlers(): Partial<Record<number, Handler>> {
    const h: Partial<Record<number, Handler>> = {
      [Opcode.LOOKUP]: (r, b) => this.lookup(r, b),
      [Opcode.FORGET]: (r, b) => this.forget(r.nodeid, u64(b, 0)),
      [Opcode.BATCH_FORGET]: (_r, b) => {
        const count = b.readUInt32LE(0);
        for (let i = 0; i < count && 8 + 16 * i + 16 <= b.length; i++) this.forget(u64(b, 8 + 16 * i), u64(b, 16 + 16 * i));
      },
      [Opcode.GETATTR]: (r, b) => this.getattr(r, b),
      [Opcode.SETATTR]: (r, b) => this.setattr(r, b),
      [Opcode.READLINK]: (r) => this.withPath(r, async (p) => {
        const [err, target] = await this.call('readlink', p);
        return err ? -err : fromByteString(target as string);
      }),
      [Opcode.SYMLINK]: (r, b) => {
        const [name, target] = names(b, 2).map((n) => toByteString(n));
        return this.make(r, name!, (p) => this.call('symlink', target, p));
      },
      [Opcode.MKNOD]: (r, b) => {
        const mode = b.readUInt32LE(0);
        const rdev = b.readUInt32LE(4);
        return this.make(r, toByteString(names(b.subarray(16), 1)[0]!), (p) => this.call('mknod', p, mode, rdev));
      },
      [Opcode.MKDIR]: (r, b) => {
        const mode = b.readUInt32LE(0);
        return this.make(r, toByteString(names(b.subarray(8), 1)[0]!), (p) => this.call('mkdir', p, mode));
      },
      [Opcode.UNLINK]: (r, b) => this.unlink(r, toByteString(names(b, 1)[0]!)),
      [Opcode.RMDIR]: (r, b) => this.rmdir(r, toByteString(names(b, 1)[0]!)),
      [Opcode.RENAME]: (r, b) => this.rename(r, u64(b, 0), 0, b.subarray(8)),
      [Opcode.RENAME2]: (r, b) => this.rename(r, u64(b, 0), b.readUInt32LE(8), b.subarray(16)),
      [Opcode.LINK]: (r, b) => this.link(r, u64(b, 0), toByteString(names(b.subarray(8), 1)[0]!)),
      [Opcode.OPEN]: (r, b) => this.open(r, b.readUInt32LE(0)),
      [Opcode.CREATE]: (r, b) => this.create(r, b.readUInt32LE(0), b.readUInt32LE(4), toByteString(names(b.subarray(16), 1)[0]!)),
      [Opcode.READ]: (r, b) => this.read(r, u64(b, 0), u64(b, 8), b.readUInt32LE(16)),
      [Opcode.WRITE]: (r, b) => this.write(r, u64(b, 0), u64(b, 8), b.subarray(40, 40 + b.readUInt32LE(16))),
      [Opcode.STATFS]: async () => {
        const [err, st] = await this.call('statfs', '/');
        if (err) return -err;
        return statfsOut({ ...st, namelen: st.namemax });
      },
      [Opcode.RELEASE]: (r, b) => this.release(r, u64(b, 0)),
      [Opcode.FLUSH]: (r, b) => this.withPath(r, async (p) => -(await this.call('flush', p, u64(b, 0)))[0], true),
      [Opcode.FSYNC]: (r, b) =>
        this.withPath(r, async (p) => -(await this.call('fsync', p, b.readUInt32LE(8) & FSYNC_FDATASYNC, u64(b, 0)))[0], true),
      [Opcode.OPENDIR]: (r) => this.opendir(r),
      [Opcode.READDIR]: (r, b) => this.readdir(r, u64(b, 0), u64(b, 8), b.readUInt32LE(16), false),
      [Opcode.READDIRPLUS]: (r, b) => this.readdir(r, u64(b, 0), u64(b, 8), b.readUInt32LE(16), true),
      [Opcode.RELEASEDIR]: (_r, b) => {
        this.dirs.delete(u64(b, 0));
        return [];
      },
      [Opcode.FSYNCDIR]: () => [],
      [Opcode.GETXATTR]: (r, b) => this.xattrRead(r, XATTR_GET, b.readUInt32LE(0), names(b.subarray(8), 1)[0]!),
      [Opcode.LISTXATTR]: (r, b) => this.xattrRead(r, XATTR_LIST, b.readUInt32LE(0), Buffer.alloc(0)),
      [Opcode.SETXATTR]: (r, b) => {
        const size = b.readUInt32LE(0);
        const flags = b.readUInt32LE(4);
        const [name] = names(b.subarray(8), 1);
        const value = b.subarray(8 + name!.length + 1, 8 + name!.length + 1 + size);
        return this.xattrChange(r, XATTR_SET, name!, value, flags);
      },
      [Opcode.REMOVEXATTR]: (r, b) => this.xattrChange(r, XATTR_REMOVE, names(b, 1)[0]!),
      [Opcode.ACCESS]: (r, b) => this.withPath(r, async (p) => -(await this.call('access', p, b.readUInt32LE(0)))[0]),
    };
    return h;
  }

  /**
   * Drops what the kernel holds of `path` (its entry, attributes and pages), for changes
   * the agent learns of outside a kernel request (a later run through a kept session).
   */
  invalidatePath(path: string): void {
    let node: Node | undefined = this.table.root;
    let parent: Node | undefined;
    let name = '';
    for (const part of path.split('/').filter(Boolean)) {
      parent = node;
      name = part;
      node = node && this.table.child(node, part);
      if (!node) break;
    }
    if (node) {
      this.kernel.attrDrop(node.id);
      void this.kernel.notify(notifyInvalInode(node.id));
      const st = this.state.get(node.id);
      if (st) st.pageVersion = st.listVersion = undefined;
    }
    // Never the entry of a directory: it may be a mount point, and dropping the entry
    // would detach what is mounted there (/proc, /sys, /dev).
    const isDir = node && isDirMode(node.mode);
    if (parent && !isDir) void this.kernel.notify(notifyInvalEntry(parent.id, fromByteString(name)));
  }

  private forget(id: number, count: number): void {
    this.table.forget(id, count);
    if (this.table.get(id)) return;
    this.kernel.attrDrop(id);
    this.dropAsked.delete(id);
    this.state.delete(id);
    this.listings.delete(id);
  }

  /**
   * Drops what the kernel holds of every node (attributes; names of everything but
   * directories, which may be mount points) and what the addon would repeat, and resolves
   * once the kernel has taken it: for a run that must see every change made before it.
   */
  async invalidateAll(): Promise<void> {
    const sent: Promise<void>[] = [];
    for (const node of this.table.all()) {
      this.kernel.attrDrop(node.id);
      const st = this.state.get(node.id);
      if (st) st.pageVersion = st.listVersion = undefined;
      sent.push(this.kernel.notify(notifyInvalInode(node.id, -1, 0)));
      const isDir = isDirMode(node.mode);
      if (!isDir && node.parent && node.name !== undefined) sent.push(this.kernel.notify(notifyInvalEntry(node.parent.id, fromByteString(node.name))));
    }
    this.listings.clear();
    await Promise.all(sent);
  }

  private st(node: Node): CacheState {
    let s = this.state.get(node.id);
    if (!s) this.state.set(node.id, (s = { cachedOpens: 0 }));
    return s;
  }

  private withPath(r: InHeader, fn: (path: string, node: Node) => Promise<HandlerResult>, byHandle = false): Promise<HandlerResult> | number {
    const node = this.table.get(r.nodeid);
    if (!node) return E.ESTALE;
    // Operations on an open handle go by the handle: a file with no name left still has one.
    const p = this.table.path(node) ?? (byHandle ? hiddenPathOf(node) : undefined);
    if (p === undefined) return E.ENOENT;
    return fn(p, node);
  }

  private sweeping = false;
  /** Nodes the kernel was asked to drop (see bound), until it forgets them. */
  private readonly dropAsked = new Set<number>();

  /** Keeps the table bounded (see MAX_NODES): inval_entry for the oldest names. */
  private bound(): void {
    const max = this.s.maxNodes ?? MAX_NODES;
    if (this.sweeping || this.table.size <= max) return;
    this.sweeping = true;
    this.counters?.inc('fuse.sweeps');
    const sent: Promise<void>[] = [];
    let left = Math.ceil((max * SWEEP_NODES) / MAX_NODES);
    for (const node of this.table.oldest(Infinity)) {
      if (left <= 0) break;
      if (this.dropAsked.has(node.id)) continue; // asked before: its FORGET may be on its way
      this.dropAsked.add(node.id);
      left--;
      sent.push(this.kernel.notify(notifyInvalEntry(node.parent!.id, fromByteString(node.name!))));
    }
    void Promise.all(sent).finally(() => (this.sweeping = false));
  }

  private entry(parent: Node, name: string, attr: CachedAttr): Buffer {
    this.bound();
    const node = this.table.remember(parent, name, attr);
    const out = entryOut(node.id, attr, this.s.entryTimeoutS, this.s.attrTimeoutS);
    this.told(node, attr, attrOutOfEntry(out));
    return out;
  }

  /** The kernel was told these attributes: the addon may repeat them while they are valid. */
  private told(node: Node, attr: CachedAttr, out?: Buffer): void {
    if (this.s.attrTimeoutS > 0) this.kernel.attrSet(node.id, out ?? attrOut(attr, this.s.attrTimeoutS), this.s.attrTimeoutS * 1000);
  }

  /** What the addon would repeat of these nodes is no longer so (they are being changed). */
  private changing(...nodes: (Node | undefined)[]): void {
    for (const n of nodes) if (n) this.kernel.attrDrop(n.id);
  }

  private async lookup(r: InHeader, b: Buffer): Promise<HandlerResult> {
    const parent = this.table.get(r.nodeid);
    if (!parent) return E.ESTALE;
    const name = toByteString(names(b, 1)[0]!);
    const p = this.table.pathOf(parent, name);
    if (p === undefined) return E.ENOENT;
    const [err, attr] = await this.call('getattr', p);
    // A name that does not exist is cached too (a node id of 0), for the negative timeout.
    if (err === -E.ENOENT && this.s.negativeTimeoutS > 0) return entryOut(0, undefined, this.s.negativeTimeoutS, 0);
    if (err) return -err;
    return this.entry(parent, name, attr);
  }

  private getattr(r: InHeader, b: Buffer): Promise<HandlerResult> | number {
    void (b.readUInt32LE(0) & GETATTR_FH);
    return this.withPath(r, async (p, node) => {
      const [err, attr] = await this.call('getattr', p);
      if (err) return -err;
      // The name now holds another kind of file: this node is not it.
      if (node.mode !== undefined && (node.mode ^ (attr.mode ?? 0)) & 0o170000) return E.ESTALE;
      noteAttr(node, attr);
      const out = attrOut(attr, this.s.attrTimeoutS);
      this.told(node, attr, out);
      return out;
    });
  }

  private setattr(r: InHeader, b: Buffer): Promise<HandlerResult> | number {
    const valid = b.readUInt32LE(0);
    const fh = u64(b, 8);
    return this.withPath(r, async (p, node) => {
      this.changing(node);
      const fail = (res: any[]) => (res[0] ? -res[0] : 0);
      let err = 0;
      if (valid & FATTR.SIZE) {
        const size = u64(b, 16);
        err = fail(valid & FATTR.FH ? await this.call('ftruncate', p, fh, size) : await this.call('truncate', p, size));
        if (err) return err;
      }
      if (valid & FATTR.MODE) {
        err = fail(await this.call('chmod', p, b.readUInt32LE(68)));
        if (err) return err;
      }
      if (valid & (FATTR.UID | FATTR.GID)) {
        const uid = valid & FATTR.UID ? b.readUInt32LE(76) : UNCHANGED_ID;
        const gid = valid & FATTR.GID ? b.readUInt32LE(80) : UNCHANGED_ID;
        err = fail(await this.call('chown', p, uid, gid));
        if (err) return err;
      }
      if (valid & (FATTR.ATIME | FATTR.MTIME)) {
        // A time not being set is left as it is (touch -m): UTIME_OMIT on the local side.
        const time = (set: number, isNow: number, secOff: number, nsecOff: number) =>
          !(valid & set) || valid & isNow ? null : { sec: Number(b.readBigInt64LE(secOff)), nsec: b.readUInt32LE(nsecOff) };
        const atime = time(FATTR.ATIME, FATTR.ATIME_NOW, 32, 56);
        const mtime = time(FATTR.MTIME, FATTR.MTIME_NOW, 40, 60);
        err = fail(await this.call('utimens', p, atime, mtime, !(valid & FATTR.ATIME), !(valid & FATTR.MTIME)));
        if (err) return err;
      }
      const [e2, attr] = await this.call('getattr', p);
      if (e2) return -e2;
      noteAttr(node, attr);
      const out = attrOut(attr, this.s.attrTimeoutS);
      this.told(node, attr, out);
      return out;
    });
  }

  /** mknod, mkdir, symlink: the operation, then the new name's entry. */
  private async make(r: InHeader, name: string, op: (path: string) => Promise<any[]>): Promise<HandlerResult> {
    const parent = this.table.get(r.nodeid);
    if (!parent) return E.ESTALE;
    const p = this.table.pathOf(parent, name);
    if (p === undefined) return E.ENOENT;
    this.changing(parent);
    const [err] = await op(p);
    if (err) return -err;
    const [e2, attr] = await this.call('getattr', p);
    if (e2) return -e2;
    return this.entry(parent, name, await this.ownAs(r, parent, p, attr));
  }

  /**
   * A command that changed its uid (or gid) makes files owned by it, as locally: the local
   * side made the file as the user outrun runs as, and gives it away where it may (root).
   * In a set-group-ID directory the group is the directory's, as locally.
   */
  private async ownAs(r: InHeader, parent: Node, path: string, attr: CachedAttr): Promise<CachedAttr> {
    const gid = (parent.mode ?? 0) & 0o2000 ? attr.gid : r.gid;
    if (attr.uid === r.uid && attr.gid === gid) return attr;
    const [err] = await this.call('chown', path, r.uid, gid);
    if (err) return attr;
    const [e2, owned] = await this.call('getattr', path);
    return e2 ? attr : owned;
  }

  /** getxattr, listxattr: size 0 asks for the length only (struct fuse_getxattr_out). */
  private xattrRead(r: InHeader, op: number, size: number, name: Buffer): Promise<HandlerResult> | number {
    return this.withPath(r, async (p) => {
      const [err, value] = await this.call('xattr', p, op, Buffer.from(name), undefined, 0, size);
      if (err) return -err;
      if (size === 0) {
        const out = Buffer.alloc(8);
        out.writeUInt32LE(value as number, 0);
        return out;
      }
      return (value as Buffer).length > size ? E.ERANGE : (value as Buffer);
    });
  }

  private xattrChange(r: InHeader, op: number, name: Buffer, value?: Buffer, flags = 0): Promise<HandlerResult> | number {
    return this.withPath(r, async (p, node) => {
      this.changing(node);
      const [err] = await this.call('xattr', p, op, Buffer.from(name), value && Buffer.from(value), flags, 0);
      return err ? -err : [];
    });
  }

  private async unlink(r: InHeader, name: string): Promise<HandlerResult> {
    const parent = this.table.get(r.nodeid);
    if (!parent) return E.ESTALE;
    const p = this.table.pathOf(parent, name);
    if (p === undefined) return E.ENOENT;
    const node = this.table.child(parent, name);
    this.changing(parent, node);
    // Open and about to lose its last name: the path operations keep answering for it
    // under a hidden name (see HiddenFiles) outside every directory, so rmdir still works.
    if (node && this.mustHide(node)) {
      const err = await this.hide(node, p);
      if (!err) this.table.unlinked(parent, name);
      return err || [];
    }
    const [err] = await this.call('unlink', p);
    if (err) return -err;
    this.table.unlinked(parent, name);
    return [];
  }

  /**
   * An open file losing its last name must stay readable through its handles. Opens the
   * addon answered count from here on (their releases then reach us too).
   */
  private mustHide(node: Node): boolean {
    node.opens += this.kernel.passthroughTakeOpens(node.id);
    return node.opens > 0 && (node.nlink ?? 1) <= 1 && !isDirMode(node.mode);
  }

  /**
   * Unlinks the open file at `path` for real; the path operations keep answering for it
   * under a hidden name (see HiddenFiles) that lies in no directory, so rmdir works.
   */
  private async hide(node: Node, path: string): Promise<number> {
    const hidden = hiddenPathOf(node);
    const [err] = await this.call('rename', path, hidden);
    if (err) return -err;
    node.hiddenPath = hidden;
    return 0;
  }

  private async rmdir(r: InHeader, name: string): Promise<HandlerResult> {
    const parent = this.table.get(r.nodeid);
    if (!parent) return E.ESTALE;
    const p = this.table.pathOf(parent, name);
    if (p === undefined) return E.ENOENT;
    this.changing(parent, this.table.child(parent, name));
    const [err] = await this.call('rmdir', p);
    if (err) return -err;
    this.table.unlinked(parent, name);
    return [];
  }

  private async rename(r: InHeader, newDir: number, flags: number, b: Buffer): Promise<HandlerResult> {
    const [name, newName] = names(b, 2).map((n) => toByteString(n));
    const parent = this.table.get(r.nodeid);
    const newParent = this.table.get(newDir);
    if (!parent || !newParent) return E.ESTALE;
    const from = this.table.pathOf(parent, name!);
    const to = this.table.pathOf(newParent, newName!);
    if (from === undefined || to === undefined) return E.ENOENT;
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return E.EINVAL;
    const replaced = this.table.child(newParent, newName!);
    this.changing(parent, newParent, this.table.child(parent, name!), replaced);
    // A file replaced while open keeps its content for its handles, as a file unlinked does.
    if (!(flags & RENAME_EXCHANGE) && replaced && replaced !== this.table.child(parent, name!) && this.mustHide(replaced)) {
      const e = await this.hide(replaced, to);
      if (e) return e;
      this.table.unlinked(newParent, newName!);
    }
    const [err] = await this.call('rename', from, to, flags);
    if (err) return -err;
    if (flags & RENAME_EXCHANGE) this.table.exchanged(parent, name!, newParent, newName!);
    else this.table.renamed(parent, name!, newParent, newName!);
    return [];
  }

  private async link(r: InHeader, oldId: number, newName: string): Promise<HandlerResult> {
    const parent = this.table.get(r.nodeid);
    const old = this.table.get(oldId);
    if (!parent || !old) return E.ESTALE;
    const existing = this.table.path(old);
    const p = this.table.pathOf(parent, newName);
    if (existing === undefined || p === undefined) return E.ENOENT;
    this.changing(parent, old);
    const [err] = await this.call('link', existing, p);
    if (err) return -err;
    const [e2, attr] = await this.call('getattr', p);
    if (e2) return -e2;
    return this.entry(parent, newName, attr);
  }

  /**
   * How the kernel may treat an open file's pages: passed through to the blob holding its
   * whole content (read-only opens, where offered); kept from earlier opens while the
   * file's version is the one they were read at; or, while other opens of it are passed
   * through, not cached at all (the kernel allows no cached open beside a passthrough one).
   */
  private async openFlags(node: Node, path: string, fh: number, flags: number, attr?: CachedAttr): Promise<[number, number]> {
    const st = this.st(node);
    const blobFd = this.kernel.negotiated()?.passthrough && readOnly(flags) ? this.ops.blobFd?.(fh) : undefined;
    if (blobFd !== undefined && st.cachedOpens === 0) {
      const id = this.backingFor(node, blobFd);
      if (id > 0) {
        this.handles.set(fh, { node, passthrough: true });
        this.counters?.inc('fuse.passthrough-opens');
        // A read-only close has nothing to flush.
        return [FOPEN.PASSTHROUGH | FOPEN.NOFLUSH, id];
      }
      this.counters?.inc(`fuse.passthrough-refused.${-id}`);
    }
    this.handles.set(fh, { node, passthrough: false });
    // No cached open beside passed-through ones (the kernel refuses the mix), nor after it.
    if (this.kernel.passthroughStop(node.id) > 0) return [FOPEN.DIRECT_IO, 0];
    st.cachedOpens++;
    if (!attr) {
      const [err, a] = await this.call('getattr', path);
      attr = err ? undefined : a;
    }
    const version = versionOf(attr);
    const keep = version !== undefined && st.pageVersion === version;
    // Another version than the kernel last saw (changed on this machine): its size and
    // times must go too, before the command reads (the kernel reads up to the size it holds).
    if (!keep && st.pageVersion !== undefined) {
      this.kernel.attrDrop(node.id);
      await this.kernel.notify(notifyInvalInode(node.id, -1, 0));
      this.counters?.inc('fuse.invalidated-at-open');
    }
    st.pageVersion = version;
    return [keep ? FOPEN.KEEP_CACHE : 0, 0];
  }

  /** The backing id an open of the node passes through to its blob with, or -errno. */
  private backingFor(node: Node, blobFd: number): number {
    // The blob's inode number tells blobs apart: a newer version of the file is another blob.
    const blob = fstatSync(blobFd).ino;
    const held = this.kernel.passthroughHold(node.id, blob);
    if (held !== 0) return held;
    const id = this.kernel.backingOpen(blobFd);
    if (id <= 0) return id;
    if (this.kernel.passthroughAdopt(node.id, blob, id)) return id;
    this.kernel.backingClose(id);
    return -E.EBUSY;
  }

  private open(r: InHeader, flags: number): Promise<HandlerResult> | number {
    return this.withPath(r, async (p, node) => {
      if (flags & FS.O_TRUNC) this.changing(node);
      const [err, fh] = await this.call('open', p, flags);
      if (err) return -err;
      node.opens++;
      const [openFlags, backing] = await this.openFlags(node, p, fh, flags);
      return openOut(fh, openFlags, backing);
    });
  }

  private async create(r: InHeader, flags: number, mode: number, name: string): Promise<HandlerResult> {
    const parent = this.table.get(r.nodeid);
    if (!parent) return E.ESTALE;
    const p = this.table.pathOf(parent, name);
    if (p === undefined) return E.ENOENT;
    this.changing(parent, this.table.child(parent, name));
    const [err, fh, created] = await this.call('create', p, flags, mode);
    if (err) return -err;
    let attr = created as CachedAttr | undefined;
    if (!attr) {
      const [e2, a] = await this.call('getattr', p);
      if (e2) return -e2;
      attr = a;
    }
    attr = await this.ownAs(r, parent, p, attr!);
    const entry = this.entry(parent, name, attr!);
    const node = this.table.child(parent, name)!;
    node.opens++;
    const [openFlags] = await this.openFlags(node, p, fh, FS.O_WRONLY /* a new file is never passed through */, attr);
    return [entry, openOut(fh, openFlags)];
  }

  private read(r: InHeader, fh: number, offset: number, size: number): Promise<HandlerResult> | number {
    return this.withPath(r, async (p) => {
      const buf = Buffer.allocUnsafe(size);
      const [n] = await this.call('read', p, fh, buf, size, offset);
      return n < 0 ? -n : buf.subarray(0, n);
    }, true);
  }

  private write(r: InHeader, fh: number, offset: number, data: Buffer): Promise<HandlerResult> | number {
    return this.withPath(r, async (p, node) => {
      this.changing(node);
      const [n] = await this.call('write', p, fh, data, data.length, offset);
      return n < 0 ? -n : writeOut(n);
    }, true);
  }

  private async release(r: InHeader, fh: number): Promise<HandlerResult> {
    const h = this.handles.get(fh);
    this.handles.delete(fh);
    const node = h?.node ?? this.table.get(r.nodeid);
    const p = node && (this.table.path(node) ?? hiddenPathOf(node));
    // An open the addon answered, released here since its file lost its name: JS counts it.
    if (p !== undefined && !isNativeHandle(fh)) await this.call('release', p, fh);
    if (node) {
      node.opens = Math.max(0, node.opens - 1);
      const st = this.st(node);
      // Passed-through opens are counted by the addon (see backingFor).
      if (h?.passthrough) this.kernel.passthroughRelease(node.id);
      else if (h) st.cachedOpens = Math.max(0, st.cachedOpens - 1);
      // The last close of a file unlinked while open: its hidden name goes too.
      if (node.hiddenPath && node.opens === 0) await this.call('unlink', node.hiddenPath);
    }
    return [];
  }

  private opendir(r: InHeader): Promise<HandlerResult> | number {
    // Where the kernel can do without OPENDIR, it keeps listings by itself (FOPEN_CACHE_DIR
    // | FOPEN_KEEP_CACHE) and starts over whenever the directory's mtime changed.
    if (this.kernel.negotiated()?.noOpendir) return E.ENOSYS;
    return this.withPath(r, async (p, node) => {
      const [err, attr] = await this.call('getattr', p);
      if (err) return -err;
      const fh = this.nextDirHandle++;
      this.dirs.set(fh, { node });
      // The kernel keeps a listing (4.20 on) while the directory's version is unchanged.
      const st = this.st(node);
      const version = versionOf(attr);
      const keep = st.listVersion === version;
      st.listVersion = version;
      const cacheDir = (this.kernel.negotiated()?.minor ?? 0) >= 28;
      return openOut(fh, cacheDir ? FOPEN.CACHE_DIR | (keep ? FOPEN.KEEP_CACHE : 0) : 0);
    });
  }

  private async readdir(r: InHeader, fh: number, offset: number, size: number, plus: boolean): Promise<HandlerResult> {
    let d = fh ? this.dirs.get(fh) : this.listings.get(r.nodeid);
    if (!d && !fh) {
      const node = this.table.get(r.nodeid);
      if (!node) return E.ESTALE;
      this.listings.set(r.nodeid, (d = { node }));
    }
    if (!d) return E.EBADF;
    const p = this.table.path(d.node);
    if (p === undefined) return E.ENOENT;
    // A listing is taken at the start (and again at a rewind) and read from there on.
    if (offset === 0 || !d.names) {
      const [err, list, attrs] = await this.call('readdir', p);
      if (err) return -err;
      d.names = list;
      d.attrs = attrs;
    }
    const out = Buffer.alloc(size);
    let used = 0;
    for (let i = offset; i < d.names!.length; i++) {
      const name = d.names![i]!;
      const nameBytes = fromByteString(name);
      const need = direntSize(nameBytes.length, plus);
      if (used + need > size) break;
      const attr = d.attrs![i];
      // Every entry with a node id counts as a lookup: only those sent get one.
      let node: Node | undefined;
      if (plus && attr && !isDot(name)) {
        this.bound();
        node = this.table.remember(d.node, name, attr);
      }
      const at = used;
      used += writeDirent(
        out,
        used,
        { name: nameBytes, ino: attr?.ino ?? 1, mode: attr?.mode ?? 0, nextOffset: i + 1, nodeid: node?.id ?? 0, attr },
        plus,
        this.s.entryTimeoutS,
        this.s.attrTimeoutS,
      );
      if (node) this.told(node, attr!, attrOutOfEntry(out, at));
    }
    return out.subarray(0, used);
  }
}
