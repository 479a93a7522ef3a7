// Reads of an open file, served from windows fetched in few, large RPCs. The kernel asks
// FUSE for at most 128 KiB at a time; one round trip per 128 KiB would make the link's
// latency, not its bandwidth, the limit. A window starts at 256 KiB and doubles (to 4 MiB)
// while the file is read sequentially (a read that jumps elsewhere fetches only itself), and
// the next window is fetched while the current one is being consumed. Concurrent reads that fall in a window being fetched wait for it
// instead of asking again. Windows are dropped on any change to the file through the mount.

export type FetchRange = (offset: number, size: number) => Promise<Buffer>;

interface Window {
  start: number;
  /** Bytes asked for; fewer came back only at end of file. */
  asked: number;
  data: Promise<Buffer>;
  bytes: number;
}

export const FIRST_WINDOW = 256 * 1024;
export const MAX_WINDOW = 4 * 1024 * 1024;
const WINDOWS_PER_FILE = 4;
/** Windows fetched ahead of the one being read, while reading is sequential. */
const WINDOWS_AHEAD = 2;

/** Bytes held in windows across all open files, bounded. */
export class WindowBudget {
  private used = 0;
  private readonly files = new Set<FileReadAhead>();

  constructor(readonly maxBytes = 128 * 1024 * 1024) {}

  /** Account for `bytes`, dropping the least recently used files' windows if over budget. */
  take(file: FileReadAhead, bytes: number): void {
    this.used += bytes;
    this.files.delete(file);
    this.files.add(file);
    for (const other of this.files) {
      if (this.used <= this.maxBytes) break;
      if (other !== file) other.clear();
    }
  }

  give(file: FileReadAhead, bytes: number): void {
    this.used -= bytes;
    if (bytes > 0 && !file.holding) this.files.delete(file);
  }

  get bytesHeld(): number {
    return this.used;
  }
}

export class FileReadAhead {
  private windows: Window[] = [];
  private nextSize = FIRST_WINDOW;
  private lastEnd = -1;

  constructor(
    private readonly fetch: FetchRange,
    private readonly budget: WindowBudget,
  ) {}

  get holding(): boolean {
    return this.windows.length > 0;
  }

  /** The file's first bytes, known already (a small file's open reply). */
  seed(data: Buffer, wholeFile: boolean): void {
    // A whole file is a window as large as anything that could be asked: reads past the
    // end are answered "end of file" without a round trip.
    this.add({ start: 0, asked: wholeFile ? Number.MAX_SAFE_INTEGER : data.length, data: Promise.resolve(data), bytes: data.length });
  }

  /** Up to `len` bytes at `offset` (fewer only at end of file). */
  async read(offset: number, len: number): Promise<Buffer> {
    const sequential = offset === this.lastEnd;
    this.lastEnd = offset + len;
    let w = this.windows.find((x) => offset >= x.start && offset + len <= x.start + x.asked);
    if (!w) {
      if (sequential || offset === 0) {
        this.nextSize = sequential ? Math.min(this.nextSize * 2, MAX_WINDOW) : FIRST_WINDOW;
        w = this.startFetch(offset, Math.max(len, this.nextSize));
      } else {
        // A jump: only what was asked. A database read page by page in random order had
        // a 256 KiB window fetched for each 4 KiB page (sqlite's integrity check: 57x the
        // file's bytes). Reading on from here grows windows again from the first size.
        this.nextSize = FIRST_WINDOW / 2;
        w = this.startFetch(offset, len);
      }
    }
    const data = await w.data;
    const from = offset - w.start;
    const out = from >= data.length ? data.subarray(0, 0) : data.subarray(from, Math.min(from + len, data.length));
    // Reading on in order, past the middle of a window: have the next one on its way
    // before this one runs out (not sooner, so a file read only in part costs little more).
    // Two windows ahead: one on the wire while the other is being read and encoded on the
    // local side keeps both machines' cores busy.
    const pastMiddle = offset + len > w.start + w.asked / 2;
    if (sequential && pastMiddle && data.length === w.asked) {
      let end = w.start + w.asked;
      for (let ahead = 0; ahead < WINDOWS_AHEAD; ahead++) {
        const next = this.windows.find((x) => x.start === end);
        if (!next) {
          this.nextSize = Math.min(this.nextSize * 2, MAX_WINDOW);
          this.startFetch(end, this.nextSize).data.catch(() => undefined);
          end += this.nextSize;
        } else end = next.start + next.asked;
      }
    }
    return out;
  }

  /**
   * The whole file, if what was read ahead covers all `size` bytes of it from offset 0
   * (a file read from start to end), for the content cache.
   */
  async wholeContent(size: number): Promise<Buffer | undefined> {
    const parts: Buffer[] = [];
    let at = 0;
    for (const w of [...this.windows].sort((a, b) => a.start - b.start)) {
      if (w.start > at) return undefined;
      const data = await w.data.catch(() => undefined);
      if (!data) return undefined;
      if (w.start + data.length <= at) continue;
      parts.push(data.subarray(at - w.start));
      at = w.start + data.length;
      if (data.length < w.asked) break; // end of file
    }
    return at === size ? Buffer.concat(parts, size) : undefined;
  }

  /** The file changed (write, truncate): what was read ahead is stale. */
  clear(): void {
    const held = this.windows.reduce((n, w) => n + w.bytes, 0);
    this.windows = [];
    this.budget.give(this, held);
  }

  private startFetch(offset: number, size: number): Window {
    const w: Window = { start: offset, asked: size, data: this.fetch(offset, size), bytes: size };
    w.data.then(
      (buf) => {
        // Only what arrived is held; a failed or short window must not linger as "known".
        if (this.windows.includes(w)) {
          this.budget.give(this, w.bytes - buf.length);
          w.bytes = buf.length;
        }
      },
      () => this.drop(w),
    );
    this.add(w);
    return w;
  }

  private add(w: Window): void {
    this.windows.push(w);
    this.budget.take(this, w.bytes);
    while (this.windows.length > WINDOWS_PER_FILE) this.drop(this.windows[0]!);
  }

  private drop(w: Window): void {
    const i = this.windows.indexOf(w);
    if (i < 0) return;
    this.windows.splice(i, 1);
    this.budget.give(this, w.bytes);
  }
}
