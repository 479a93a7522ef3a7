// Writes through the mount, acknowledged to the kernel at once and sent to the local side
// behind it. FUSE 2 hands us writes of at most 128 KiB and waits for each; a round trip per
// write made the link's latency the limit (8200 serial round trips per GiB). Here
// consecutive writes to a handle are gathered into runs of up to 4 MiB, up to four runs of a
// handle travel at once (a run that overlaps an earlier one waits for it, so the local side
// never reorders overlapping writes), and the bytes accepted but not yet on the local disk
// are bounded: past the bound, a write waits.
//
// Durability and errors follow NFS's close-to-open contract: flush (every close(2)) and
// fsync wait until all of the handle's writes are on the local side and return the first
// error any of them met, so a command that checks close or fsync learns of a failed write.
// Anything that reads or inspects a path with writes in flight (read, getattr, open,
// truncate, rename, listing of its directory, ...) waits for them first (see drainPath), so
// no one sees the file without them.
import { EIO } from '../shared/errno';

/** How a run asks the local side to sync the file once the run is written (see fsync). */
export type SyncAfter = 'sync' | 'datasync' | undefined;
/**
 * Sends one run; resolves to 0 or a positive errno, or to that and the file's attributes
 * once written (throws: transport failure).
 */
export type SendWrite = (handle: number, path: string, offset: number, data: Buffer, sync?: SyncAfter) => Promise<number | { errno: number; attr?: unknown }>;
/** Sends appends to be applied in this order; resolves to 0 or a positive errno for each. */
export type SendAppends = (writes: { handle: number; data: Buffer }[]) => Promise<number[]>;

/** An append taken and not yet on the local side. */
interface QueuedAppend {
  handle: number;
  s: HandleState;
  data: Buffer;
  /** The runs of the file dispatched before this append was taken: they go first. */
  after: Promise<void>[];
  done: Promise<void>;
  finished: () => void;
}

/**
 * The appends to one file, in the order they were made. One batch of them travels at a time
 * (its order is the file's order); what arrives meanwhile waits here and goes as the next
 * batch, so appends cost a round trip per batch, not per write.
 */
interface AppendQueue {
  waiting: QueuedAppend[];
  sending: boolean;
}

export const RUN_BYTES = 4 * 1024 * 1024;
export const MAX_PENDING_BYTES = 64 * 1024 * 1024;
/** Runs of one handle on their way at once. */
export const RUNS_IN_FLIGHT = 4;
/** A run that stops growing goes out after this long, so no write lingers in the agent. */
const IDLE_MS = 20;

interface HandleState {
  path: string;
  parts: Buffer[];
  start: number;
  length: number;
  /** Settles when every run dispatched so far has finished. */
  tail: Promise<void>;
  /** The last runs dispatched (their completions), for the in-flight bound. */
  recent: Promise<void>[];
  inFlight: number;
  /** First error met by a run since the last flush (positive errno). */
  error: number;
  /** Runs gathering or in flight (each counts once in busyPaths under `path`). */
  busy: number;
  timer?: NodeJS.Timeout;
}

const errnoOf = (r: number | { errno: number }) => (typeof r === 'number' ? r : r.errno);

/** The first error a handle's writes met since it was last reported, cleared (0 if none). */
function takeError(s: HandleState): number {
  const e = s.error;
  s.error = 0;
  return e;
}

export class WriteBehind {
  private readonly handles = new Map<number, HandleState>();
  /** Paths with bytes not yet on the local side: how many handles hold some. */
  private readonly busyPaths = new Map<string, number>();
  private pendingBytes = 0;
  private readonly waiters: (() => void)[] = [];
  /** Told the file's name each time a run is on the local side (see onLanded). */
  private readonly landedListeners: ((path: string) => void)[] = [];
  /** The file's attributes after a run, when they are the file's after all its writes. */
  private readonly attrListeners: ((path: string, attr: unknown) => void)[] = [];
  /** The last run (or append batch) dispatched per file, while writes of it travel. */
  private readonly lastRun = new Map<string, number>();
  private runSeq = 0;
  /** Runs dispatched and not yet finished, per file, in the order they were dispatched. */
  private readonly runsByPath = new Map<string, { start: number; end: number; done: Promise<void> }[]>();

  /** Appends waiting or travelling, per file. */
  private readonly appendQueues = new Map<string, AppendQueue>();

  constructor(
    private readonly send: SendWrite,
    private readonly maxPending = MAX_PENDING_BYTES,
    private readonly runBytes = RUN_BYTES,
    private readonly sendAppends: SendAppends = (writes) =>
      // Without a batch request: one after another (still taken at once).
      writes.reduce<Promise<number[]>>(
        (acc, w) => acc.then(async (errnos) => [...errnos, errnoOf(await this.send(w.handle, '', 0, w.data))]),
        Promise.resolve([]),
      ),
  ) {}

  get bytesPending(): number {
    return this.pendingBytes;
  }

  /** `listener(path)` runs each time writes to `path` reach the local side (or fail there). */
  onLanded(listener: (path: string) => void): void {
    this.landedListeners.push(listener);
  }

  /**
   * `listener(path, attr)` is told the attributes a run's reply carried when that run was
   * the file's last one dispatched and nothing of the file is left gathering or travelling:
   * then they are the file's after every write made through here (replies to concurrent
   * runs may arrive in another order than the local side applied them, so no other case).
   */
  onAttrKnown(listener: (path: string, attr: unknown) => void): void {
    this.attrListeners.push(listener);
  }

  /** Whether `path` has writes not yet on the local side. */
  busy(path: string): boolean {
    return this.busyPaths.has(path);
  }

  /**
   * Accepts a write. Resolves to 0 once the bytes are taken (at once, unless too much is
   * pending), or to a positive errno a previous write of this handle met (reported once).
   */
  async write(handle: number, path: string, offset: number, data: Buffer): Promise<number> {
    const s = this.state(handle, path, offset);
    if (s.error) return takeError(s);
    while (this.pendingBytes + data.length > this.maxPending && this.pendingBytes > 0) {
      this.dispatch(handle, s); // what we hold counts: let it go rather than wait on it
      await new Promise<void>((r) => this.waiters.push(r));
    }
    // Runs are ordered when they are dispatched (see dispatch): a run of another handle of
    // the file, still gathering, that this write overlaps was written before it, so it
    // goes now. Left gathering, it could be sent after this one (at its close, say) and
    // overwrite it (seen: a pwrite lost under an append made before it).
    const end = offset + data.length;
    for (const [h, o] of this.handles) {
      if (o !== s && o.length > 0 && o.path === s.path && o.start < end && offset < o.start + o.length) this.dispatch(h, o);
    }
    if (s.length > 0 && (offset !== s.start + s.length || s.length + data.length > this.runBytes)) this.dispatch(handle, s);
    if (s.length === 0) {
      s.start = offset;
      this.markBusy(s, +1);
    }
    s.parts.push(data);
    s.length += data.length;
    this.pendingBytes += data.length;
    if (s.length >= this.runBytes) this.dispatch(handle, s);
    else {
      clearTimeout(s.timer);
      s.timer = setTimeout(() => this.dispatch(handle, s!), IDLE_MS);
    }
    return 0;
  }

  private state(handle: number, path: string, offset = 0): HandleState {
    let s = this.handles.get(handle);
    if (!s) {
      s = { path, parts: [], start: offset, length: 0, tail: Promise.resolve(), recent: [], inFlight: 0, error: 0, busy: 0 };
      this.handles.set(handle, s);
    }
    return s;
  }

  /**
   * Accepts a write to a handle opened with O_APPEND: it lands where the file ends when it
   * is applied, so appends to a file (of any handle) are applied in the order they were
   * taken, after every write to the file taken before them. Resolves as write() does.
   */
  async append(handle: number, path: string, data: Buffer): Promise<number> {
    const s = this.state(handle, path);
    if (s.error) return takeError(s);
    while (this.pendingBytes + data.length > this.maxPending && this.pendingBytes > 0) {
      await new Promise<void>((r) => this.waiters.push(r));
    }
    // What any handle of the file gathered positionally was written before: it goes first.
    for (const [h, other] of this.handles) if (other.path === s.path && other.length > 0) this.dispatch(h, other);
    let finished!: () => void;
    const done = new Promise<void>((r) => (finished = r));
    const q = this.appendQueues.get(s.path) ?? { waiting: [], sending: false };
    this.appendQueues.set(s.path, q);
    // Runs dispatched later wait for this append (see dispatch), so only the earlier ones
    // may be waited for: a later one here would wait for us in turn.
    const after = (this.runsByPath.get(s.path) ?? []).map((r) => r.done);
    q.waiting.push({ handle, s, data, after, done, finished });
    this.pendingBytes += data.length;
    this.markBusy(s, +1);
    s.tail = Promise.all([s.tail, done]).then(() => undefined);
    if (!q.sending) this.sendAppendBatch(s.path, q);
    return 0;
  }

  /** Sends the oldest appends waiting for `path` (up to a run's bytes) as one request. */
  private sendAppendBatch(path: string, q: AppendQueue): void {
    q.sending = true;
    const batch: QueuedAppend[] = [];
    let bytes = 0;
    // A batch ends where a positional run was dispatched between two appends: that run
    // waits for the appends before it and the ones after it wait for the run.
    const sameRunsBefore = (a: QueuedAppend) => a.after.length === batch[0]!.after.length && a.after.every((p, i) => p === batch[0]!.after[i]);
    while (
      q.waiting.length > 0 &&
      (batch.length === 0 || (bytes + q.waiting[0]!.data.length <= this.runBytes && sameRunsBefore(q.waiting[0]!)))
    ) {
      const a = q.waiting.shift()!;
      batch.push(a);
      bytes += a.data.length;
    }
    // Every run of the file dispatched before these appends were taken goes first; the batch
    // counts as overlapping everything, so runs dispatched later wait for it (see dispatch).
    const runs = this.runsByPath.get(path) ?? [];
    this.runsByPath.set(path, runs);
    const before = [...new Set(batch.flatMap((a) => a.after))];
    let finished!: () => void;
    const run = { start: 0, end: Infinity, done: new Promise<void>((r) => (finished = r)) };
    runs.push(run);
    const seq = this.startRun(path);
    void Promise.all(before).then(async () => {
      let errnos: number[];
      try {
        errnos = await this.sendAppends(batch.map((a) => ({ handle: a.handle, data: a.data })));
      } catch {
        errnos = batch.map(() => EIO);
      }
      batch.forEach((a, i) => {
        const errno = errnos[i] ?? EIO;
        if (errno && !a.s.error) a.s.error = errno;
        this.markBusy(a.s, -1);
        this.pendingBytes -= a.data.length;
        this.landed(a.s.path, path);
        a.finished();
      });
      runs.splice(runs.indexOf(run), 1);
      if (runs.length === 0 && this.runsByPath.get(path) === runs) this.runsByPath.delete(path);
      this.endRun(path, seq);
      finished();
      this.waiters.splice(0).forEach((w) => w());
      if (q.waiting.length > 0) this.sendAppendBatch(path, q);
      else {
        q.sending = false;
        if (this.appendQueues.get(path) === q) this.appendQueues.delete(path);
      }
    });
  }

  /**
   * Sends what the handle has gathered. Up to RUNS_IN_FLIGHT runs of a handle travel at
   * once, but a run never starts before an earlier one (of any handle) that overlaps it on
   * the same file has finished: the local side applies overlapping writes in the order the
   * command made them, and disjoint ones commute.
   */
  private dispatch(handle: number, s: HandleState, sync?: SyncAfter): void {
    clearTimeout(s.timer);
    s.timer = undefined;
    if (s.length === 0) return;
    const data = s.parts.length === 1 ? s.parts[0]! : Buffer.concat(s.parts, s.length);
    const offset = s.start;
    const end = offset + data.length;
    s.parts = [];
    s.length = 0;
    s.inFlight++;
    const path = s.path;
    const runs = this.runsByPath.get(path) ?? [];
    this.runsByPath.set(path, runs);
    const before = runs.filter((r) => r.start < end && offset < r.end).map((r) => r.done);
    // Appends to the file taken before this run and still waiting to travel go first too.
    const appends = this.appendQueues.get(path)?.waiting;
    if (appends?.length) before.push(appends[appends.length - 1]!.done);
    if (s.recent.length >= RUNS_IN_FLIGHT) before.push(s.recent[s.recent.length - RUNS_IN_FLIGHT]!);
    let finished!: () => void;
    const run = { start: offset, end, done: new Promise<void>((r) => (finished = r)) };
    runs.push(run);
    s.recent.push(run.done);
    if (s.recent.length > RUNS_IN_FLIGHT) s.recent.shift();
    const seq = this.startRun(path);
    const task = Promise.all(before).then(async () => {
      let errno: number;
      let attr: unknown;
      try {
        const r = await this.send(handle, path, offset, data, sync);
        errno = errnoOf(r);
        attr = typeof r === 'number' ? undefined : r.attr;
      } catch {
        errno = EIO;
      }
      if (errno && !s.error) s.error = errno;
      s.inFlight--;
      runs.splice(runs.indexOf(run), 1);
      if (runs.length === 0 && this.runsByPath.get(path) === runs) this.runsByPath.delete(path);
      this.markBusy(s, -1);
      this.pendingBytes -= data.length;
      this.landed(s.path, path);
      const last = this.endRun(path, seq);
      if (last && !errno && attr !== undefined && s.path === path && !this.busyPaths.has(path)) {
        for (const l of this.attrListeners) l(path, attr);
      }
      finished();
      this.waiters.splice(0).forEach((w) => w());
    });
    s.tail = Promise.all([s.tail, task]).then(() => undefined);
  }

  /** A run (or append batch) of `path` is dispatched: its number, for endRun. */
  private startRun(path: string): number {
    this.lastRun.set(path, ++this.runSeq);
    return this.runSeq;
  }

  /** The run numbered `seq` landed: whether it was the file's last one dispatched. */
  private endRun(path: string, seq: number): boolean {
    if (this.lastRun.get(path) !== seq) return false;
    this.lastRun.delete(path);
    return true;
  }

  /** Writes reached the file now named `path` (sent under `sentAs`, if renamed since). */
  private landed(path: string, sentAs: string): void {
    for (const l of this.landedListeners) {
      l(path);
      if (sentAs !== path) l(sentAs);
    }
  }

  private markBusy(s: HandleState, delta: number): void {
    // +1 when a run starts gathering, -1 when it is on the local side; see write/dispatch.
    s.busy += delta;
    const n = (this.busyPaths.get(s.path) ?? 0) + delta;
    if (n > 0) this.busyPaths.set(s.path, n);
    else this.busyPaths.delete(s.path);
  }

  /**
   * Everything the handle wrote is on the local side; resolves to the first error since the
   * last flush (0 if none) and clears it.
   */
  async flush(handle: number, sync?: SyncAfter): Promise<number> {
    const s = this.handles.get(handle);
    if (!s) return 0;
    this.dispatch(handle, s, sync);
    await s.tail;
    return takeError(s);
  }

  /**
   * fsync(2): everything the handle wrote is on the local side and synced there. When the
   * handle's last writes are still gathering and nothing of it travels, they go with the
   * sync in one request (`synced`), saving a round trip per fsync (sqlite makes three a
   * transaction); otherwise the caller syncs once the flush is done.
   */
  async flushAndSync(handle: number, datasync: boolean): Promise<{ errno: number; synced: boolean }> {
    const s = this.handles.get(handle);
    const synced = !!s && s.length > 0 && s.inFlight === 0 && !this.appendQueues.has(s.path);
    return { errno: await this.flush(handle, synced ? (datasync ? 'datasync' : 'sync') : undefined), synced };
  }

  /** The handle is closed for good: flush, then forget it. */
  async release(handle: number): Promise<number> {
    const e = await this.flush(handle);
    this.handles.delete(handle);
    return e;
  }

  /** Waits until no handle has bytes in flight for `path` (errors stay with their handles). */
  async drainPath(path: string): Promise<void> {
    if (!this.busy(path)) return;
    await Promise.all([...this.handles].filter(([, s]) => s.path === path).map(([h]) => this.flushKeepingError(h)));
  }

  /** Waits for every path directly in `dir` (a listing carries their sizes). */
  async drainDir(dir: string): Promise<void> {
    const prefix = dir === '/' ? '/' : dir + '/';
    const inDir = (p: string) => p.startsWith(prefix) && !p.slice(prefix.length).includes('/');
    await Promise.all([...this.busyPaths.keys()].filter(inDir).map((p) => this.drainPath(p)));
  }

  /** Waits for every path at or under `path` (a directory renamed or removed). */
  async drainTree(path: string): Promise<void> {
    const prefix = path === '/' ? '/' : path + '/';
    await Promise.all([...this.busyPaths.keys()].filter((p) => p === path || p.startsWith(prefix)).map((p) => this.drainPath(p)));
  }

  /** Waits for everything (session end). */
  async drainAll(): Promise<void> {
    await Promise.all([...this.handles.keys()].map((h) => this.flushKeepingError(h)));
  }

  /** A file renamed while open: its handles now write to (and are waited for under) the new name. */
  renamed(from: string, to: string): void {
    const prefix = from + '/';
    for (const s of this.handles.values()) {
      if (s.path === from) s.path = to;
      else if (s.path.startsWith(prefix)) s.path = to + s.path.slice(from.length);
    }
    for (const [p, q] of [...this.appendQueues]) {
      const moved = p === from ? to : p.startsWith(prefix) ? to + p.slice(from.length) : undefined;
      if (moved === undefined) continue;
      this.appendQueues.delete(p);
      this.appendQueues.set(moved, q);
    }
    this.busyPaths.clear();
    for (const s of this.handles.values()) if (s.busy > 0) this.busyPaths.set(s.path, (this.busyPaths.get(s.path) ?? 0) + s.busy);
  }

  private async flushKeepingError(handle: number): Promise<void> {
    const s = this.handles.get(handle);
    if (!s) return;
    this.dispatch(handle, s);
    await s.tail;
  }
}
