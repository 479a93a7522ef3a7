// The agent's inode table: which kernel node id stands for which local file. One node per
// local file (device + inode number), so hard links are one kernel inode and the kernel may
// cache attributes. Each node remembers the names it was found under (a parent node and a
// name), from which its current path is derived: a rename moves one name and every path
// below it follows. Nodes live as long as the kernel holds lookups on them: every LOOKUP or
// READDIRPLUS entry counts one, FORGET gives them back, and at zero the node is gone.
import type { CachedAttr } from './attr-cache';

export const ROOT_ID = 1;

export interface Node {
  readonly id: number;
  /** device:inode of the local file ('' for the root, whatever it is). */
  key: string;
  /** Lookups the kernel holds (the root's never end). */
  lookups: number;
  /** The name it is known by now; undefined once every name is gone (unlinked, still open). */
  parent?: Node;
  name?: string;
  /**
   * Other names (hard links) the kernel knows, as childKey strings; made only for a file
   * with a second name (a table of 150k nodes would otherwise hold 150k empty sets).
   */
  otherNames?: Set<string>;
  /** Of the attributes last told to the kernel, what the node handlers need: type and mode, link count. */
  mode?: number;
  nlink?: number;
  /** Handles open on it (by the kernel's opens). */
  opens: number;
  /** While it is open under a name no longer in the tree (see HiddenFiles). */
  hiddenPath?: string;
}

const fileType = (mode: number | null | undefined) => (mode ?? 0) & 0o170000;
/** Whether a node's (or attributes') mode is a directory's. */
export const isDirMode = (mode: number | null | undefined) => fileType(mode) === 0o040000;
/** Keeps on the node what it needs of the attributes told to the kernel. */
export function noteAttr(node: Node, attr: CachedAttr): void {
  node.mode = attr.mode ?? 0;
  node.nlink = attr.nlink ?? 1;
}
const childKey = (parentId: number, name: string) => `${parentId}/${name}`;
export const keyOf = (a: CachedAttr) => `${a.dev ?? 0}:${a.ino ?? 0}`;

export class InodeTable {
  private readonly byId = new Map<number, Node>();
  private readonly byKey = new Map<string, Node>();
  private readonly byName = new Map<string, Node>();
  private nextId = ROOT_ID + 1;
  readonly root: Node;

  constructor() {
    this.root = { id: ROOT_ID, key: '', lookups: 1, opens: 0 };
    this.byId.set(ROOT_ID, this.root);
  }

  get size(): number {
    return this.byId.size;
  }

  /** Every node (the root first). */
  all(): IterableIterator<Node> {
    return this.byId.values();
  }

  get(id: number): Node | undefined {
    return this.byId.get(id);
  }

  /** The node the kernel knows as `name` in `parent`, if any. */
  child(parent: Node, name: string): Node | undefined {
    return this.byName.get(childKey(parent.id, name));
  }

  /** The node's local path now, or undefined if it has no name left. */
  path(node: Node): string | undefined {
    if (node.hiddenPath) return node.hiddenPath;
    if (node === this.root) return '/';
    const parts: string[] = [];
    for (let n: Node | undefined = node; n !== this.root; n = n.parent) {
      if (!n || n.name === undefined) return undefined;
      parts.push(n.name);
    }
    return '/' + parts.reverse().join('/');
  }

  pathOf(parent: Node, name: string): string | undefined {
    const dir = this.path(parent);
    return dir === undefined ? undefined : dir === '/' ? '/' + name : `${dir}/${name}`;
  }

  /**
   * The kernel now knows `name` in `parent` as the file with `attr`: one more lookup on its
   * node (made if new). A known inode number of another file type is a new file that
   * reused the number: it gets a new node (the kernel would otherwise see a type change).
   */
  remember(parent: Node, name: string, attr: CachedAttr): Node {
    const key = keyOf(attr);
    let node = this.byKey.get(key);
    // The local filesystem reuses the inode numbers of deleted files: a known number of
    // another file type, or of a file that lost every name (unlinked, perhaps still open
    // under a hidden name), is a new file. It gets a new node; the old one lives on for
    // the kernel until it forgets it.
    if (node && ((node.mode !== undefined && fileType(node.mode) !== fileType(attr.mode)) || node.hiddenPath !== undefined || node.name === undefined)) {
      this.byKey.delete(key);
      node = undefined;
    }
    if (!node) {
      node = { id: this.nextId++, key, lookups: 0, opens: 0 };
      this.byId.set(node.id, node);
      this.byKey.set(key, node);
    }
    node.lookups++;
    noteAttr(node, attr);
    this.link(node, parent, name);
    return node;
  }

  /**
   * Up to `count` nodes, oldest first, that the kernel could be asked to drop: named, closed,
   * and not directories (a directory may be a mount point: dropping its entry would detach
   * what is mounted there, /proc, /sys and /dev among them).
   */
  *oldest(count: number): Generator<Node> {
    for (const node of this.byId.values()) {
      if (count <= 0) return;
      if (node === this.root || node.opens > 0 || !node.parent || node.name === undefined) continue;
      if (isDirMode(node.mode)) continue;
      count--;
      yield node;
    }
  }

  /** The kernel gave back `count` lookups of node `id`; at zero the node is forgotten. */
  forget(id: number, count: number): void {
    const node = this.byId.get(id);
    if (!node || node === this.root) return;
    node.lookups -= count;
    if (node.lookups > 0) return;
    this.byId.delete(id);
    if (this.byKey.get(node.key) === node) this.byKey.delete(node.key);
    for (const k of this.namesOf(node)) if (this.byName.get(k) === node) this.byName.delete(k);
    node.otherNames = undefined;
  }

  /** `name` in `parent` is gone (unlink, rmdir, or replaced by a rename). */
  unlinked(parent: Node, name: string): Node | undefined {
    const k = childKey(parent.id, name);
    const node = this.byName.get(k);
    if (!node) return undefined;
    this.byName.delete(k);
    if (node.parent === parent && node.name === name) {
      // Known by another name still (a hard link): that one is its path now.
      const other = node.otherNames?.values().next().value as string | undefined;
      if (other !== undefined) node.otherNames!.delete(other);
      if (other === undefined) {
        node.parent = undefined;
        node.name = undefined;
      } else {
        const slash = other.indexOf('/');
        node.parent = this.byId.get(Number(other.slice(0, slash)));
        node.name = other.slice(slash + 1);
      }
    } else node.otherNames?.delete(k);
    return node;
  }

  /** `name` in `parent` was renamed to `newName` in `newParent` (which it replaced, if it existed). */
  renamed(parent: Node, name: string, newParent: Node, newName: string): void {
    const node = this.byName.get(childKey(parent.id, name));
    this.unlinked(newParent, newName);
    if (!node) return;
    this.unlinked(parent, name);
    this.link(node, newParent, newName);
  }

  /** RENAME_EXCHANGE: the two names swap their files. */
  exchanged(parent: Node, name: string, newParent: Node, newName: string): void {
    const a = this.byName.get(childKey(parent.id, name));
    const b = this.byName.get(childKey(newParent.id, newName));
    if (a) this.unlinked(parent, name);
    if (b) this.unlinked(newParent, newName);
    if (a) this.link(a, newParent, newName);
    if (b) this.link(b, parent, name);
  }

  private link(node: Node, parent: Node, name: string): void {
    const k = childKey(parent.id, name);
    const previous = this.byName.get(k);
    if (previous && previous !== node) this.unlinked(parent, name);
    this.byName.set(k, node);
    if (node.parent && node.name !== undefined) {
      const current = childKey(node.parent.id, node.name);
      if (current !== k && this.byName.get(current) === node) (node.otherNames ??= new Set()).add(current);
    }
    node.otherNames?.delete(k);
    node.parent = parent;
    node.name = name;
  }

  /** Every name the node is known by, as childKey strings. */
  private *namesOf(node: Node): Generator<string> {
    if (node.parent && node.name !== undefined) yield childKey(node.parent.id, node.name);
    if (node.otherNames) yield* node.otherNames;
  }
}
