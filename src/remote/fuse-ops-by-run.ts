// RunRevalidation for today's FUSE layer (src/fs/fuse-ops.ts), done from outside it: that
// layer keeps its caches inside the operations it makes, with no way to drop them, so each
// run starts a new generation of operations (empty caches) over the same file client and
// write-behind, and the persistent cache is saved, reopened and revalidated through the
// client's probes, as at a session's start. Path operations go to the newest generation;
// operations on a handle go to the generation that opened it, under handle numbers given
// here (each generation numbers its own from the same ranges). A generation with no open
// handle left is let go. Meant to be replaced by the new FUSE layer implementing
// RunRevalidation itself (see run-revalidation.ts).
import type { Cb, PathOps as FuseOps } from '../fs/agent/path-ops';
import type { PersistentCache } from '../fs/agent/persistent-cache';
import type { WriteBehind } from '../fs/agent/write-behind';
import type { AskStale, RunRevalidation } from './run-revalidation';

/** Handle operations that change the file (or land its writes). */
const CHANGES_FILE: ReadonlySet<string> = new Set(['write', 'ftruncate', 'flush', 'fsync', 'release']);
/** Where each handle operation has its handle (fuse-native's argument order). */
const HANDLE_ARG: Readonly<Record<string, number>> = { read: 1, write: 1, flush: 1, fsync: 2, release: 1, ftruncate: 1, blobFd: 0 };
/** Operations that answer with a new handle: cb(err, handle, ...). */
const MAKES_HANDLE: ReadonlySet<string> = new Set(['open', 'create']);

interface Generation {
  ops: FuseOps;
  /** Inner handles of this generation still open. */
  open: number;
  landed: ((path: string) => void)[];
}

export type MakeOps = (persistent: PersistentCache | undefined, writeBehind: WriteBehind) => FuseOps;

export class FuseOpsByRun implements RunRevalidation {
  /** The operations given to the mount, for the session's whole life. */
  readonly ops: FuseOps = {};
  private current: Generation;
  private readonly live = new Set<Generation>();
  /** Our handle -> the generation and its own handle. */
  private readonly handles = new Map<number, { gen: Generation; inner: number; path: string; written?: boolean }>();
  private nextHandle = 1;
  /** The revalidation under way, and the one that will follow it (shared by every run asking meanwhile). */
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;

  constructor(
    private readonly make: MakeOps,
    private readonly writeBehind: WriteBehind,
    private persistentCache: PersistentCache | undefined,
    /** Opens the persistent cache afresh (from what the last save wrote). */
    private readonly reopen: () => Promise<PersistentCache | undefined>,
    /**
     * Drops what the kernel keeps (entries, attributes, pages, listings) at each run's start.
     * Not needed with fuse-native's layer in a master's session (attribute and negative
     * timeouts 0, path-based nodes); a layer that lets the kernel keep them must pass it.
     */
    private readonly forgetKernel?: () => Promise<void>,
  ) {
    writeBehind.onLanded((path) => {
      for (const g of this.live) for (const l of g.landed) l(path);
    });
    this.current = this.generation();
    const names = Object.keys(this.current.ops);
    for (const name of names) this.ops[name] = (...args: unknown[]) => this.call(name, args) as void;
  }

  /** The persistent cache the newest generation uses (what the agent saves at the end). */
  get persistent(): PersistentCache | undefined {
    return this.persistentCache;
  }

  private generation(): Generation {
    const gen: Generation = { ops: {}, open: 0, landed: [] };
    const wb = this.writeBehind;
    // The generation's listeners are ours to drop with it (WriteBehind keeps them for ever).
    const facade = new Proxy(wb, {
      get: (target, key) => {
        if (key === 'onLanded') return (l: (path: string) => void) => gen.landed.push(l);
        const v = Reflect.get(target, key, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    gen.ops = this.make(this.persistentCache, facade);
    this.live.add(gen);
    return gen;
  }

  private retireIfDone(gen: Generation): void {
    if (gen !== this.current && gen.open === 0) this.live.delete(gen);
  }

  /** Calls an operation of the right generation; what it returns (a synchronous one) comes back. */
  private call(name: string, args: unknown[]): unknown {
    const at = HANDLE_ARG[name];
    if (at !== undefined) {
      const ours = args[at] as number;
      const h = this.handles.get(ours);
      const last = args[args.length - 1];
      // A synchronous handle query (no callback), e.g. the blob behind a handle.
      if (typeof last !== 'function') {
        if (!h) return undefined;
        const inner = [...args];
        inner[at] = h.inner;
        return h.gen.ops[name]!(...inner);
      }
      const cb = last as Cb;
      if (!h) return cb(-9); // EBADF: not a handle we gave out
      const inner = [...args];
      inner[at] = h.inner;
      if (name === 'write' || name === 'ftruncate') h.written = true;
      // A file changed through an older generation's handle: the newest one's caches (and
      // the persistent entry) may hold it as it was, so they go. Rare: a run still writing
      // a file opened before a later run started.
      const stale = h.gen !== this.current && h.written && CHANGES_FILE.has(name);
      inner[inner.length - 1] = (...rest: unknown[]) => {
        if (name === 'release') {
          this.handles.delete(ours);
          h.gen.open--;
          this.retireIfDone(h.gen);
        }
        if (stale) this.forgetEverywhere(h.path);
        cb(...(rest as [number]));
      };
      return h.gen.ops[name]!(...inner);
    }
    const gen = this.current;
    if (MAKES_HANDLE.has(name)) {
      const cb = args[args.length - 1] as Cb;
      const inner = [...args];
      inner[inner.length - 1] = (err: number, fd?: number, ...rest: unknown[]) => {
        if (err || fd === undefined) return cb(err, fd, ...rest);
        const ours = this.allocate();
        this.handles.set(ours, { gen, inner: fd, path: args[0] as string });
        gen.open++;
        cb(0, ours, ...rest);
      };
      return gen.ops[name]!(...inner);
    }
    return gen.ops[name]!(...args);
  }

  /** What the newest generation knows goes (it starts again empty); so does the persistent entry. */
  private forgetEverywhere(path: string): void {
    this.persistentCache?.invalidate(path);
    const old = this.current;
    this.current = this.generation();
    this.retireIfDone(old);
  }

  private allocate(): number {
    // fuse-native carries handles as uint32; 0 is never given out.
    do this.nextHandle = this.nextHandle >= 0xfffffffe ? 1 : this.nextHandle + 1;
    while (this.handles.has(this.nextHandle));
    return this.nextHandle;
  }

  /**
   * One revalidation at a time. A run that asks while one is under way needs one that
   * begins after its asking: it joins the next, which serves every run that asked meanwhile
   * (16 runs starting together cost two revalidations, not sixteen).
   */
  runStarts(askStale: AskStale): Promise<void> {
    if (!this.running) return this.begin(askStale);
    this.queued ??= this.running.catch(() => undefined).then(() => {
      this.queued = undefined;
      return this.begin(askStale);
    });
    return this.queued;
  }

  private begin(askStale: AskStale): Promise<void> {
    const pass = this.startRun(askStale).finally(() => {
      if (this.running === pass) this.running = undefined;
    });
    this.running = pass;
    return pass;
  }

  private async startRun(askStale: AskStale): Promise<void> {
    if (this.persistentCache) {
      // What the session learned goes into the index, which is then revalidated as a start's is.
      await this.persistentCache.save();
      const fresh = await this.reopen();
      if (fresh) {
        const loading = fresh.load();
        const stale = await askStale(fresh.probes());
        await loading;
        if (stale === 'all') await fresh.dropAll();
        else await fresh.dropStale(stale);
      }
      this.persistentCache = fresh;
    }
    const old = this.current;
    this.current = this.generation();
    this.retireIfDone(old);
    await this.forgetKernel?.();
  }
}
