// One FUSE connection: the request loop over /dev/fuse. The native addon reads requests on
// its own threads and hands them here; this file negotiates INIT (taking each newer kernel
// feature only where the kernel offers it), dispatches by opcode to the filesystem's
// handlers, and writes their replies. What a request means is the handlers' business.
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { constants as OS } from 'node:os';
import {
  DEFAULT_MAX_PAGES,
  IN_HEADER_SIZE,
  Init,
  KERNEL_MINOR_VERSION,
  KERNEL_VERSION,
  MAX_PAGES,
  OPCODE_NAMES,
  OUT_HEADER_SIZE,
  Opcode,
  PAGE_SIZE,
} from './protocol';
import { decodeInHeader, outHeader, type InHeader } from './wire-types';

/** The native addon (src/remote/fuse-addon/fuse-kernel.c). */
export interface KernelAddon {
  openDevice(): number;
  mount(target: string, data: string, flags: number): void;
  unmount(target: string): void;
  startReader(fd: number, bufferSize: number, onRequest: (req: Buffer | undefined, errno: number) => void): void;
  reply(fd: number, ...buffers: Buffer[]): number;
  notify(fd: number, message: Buffer, id: number): void;
  onNotified(cb: (id: number) => void): void;
  backingOpen(fd: number, fileFd: number): number;
  backingClose(fd: number, id: number): number;
  close(fd: number): void;
  attrSet(nodeid: number, attrOut: Buffer, ttlMs: number): void;
  attrDrop(nodeid: number): void;
  /** [GETATTRs answered by the addon, nodes it holds attributes of, OPENs it answered] */
  attrStats(): [number, number, number];
  // Passed-through nodes: see native-opens.c.
  passthroughHold(nodeid: number, blob: number): number;
  passthroughAdopt(fd: number, nodeid: number, blob: number, backingId: number): number;
  passthroughRelease(nodeid: number): void;
  passthroughTakeOpens(nodeid: number): number;
  passthroughStop(nodeid: number): number;
}

/** The addon sits next to agent.js in the runtime, and in dist/runtime-addon in a build tree. */
export function loadKernelAddon(): KernelAddon {
  const candidates = [join(__dirname, 'fuse-kernel.node'), join(__dirname, '../../../runtime-addon/fuse-kernel.node')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`the FUSE addon is missing (looked for ${candidates.join(', ')}): run npm run build`);
  return require(found) as KernelAddon;
}

/** An errno name for an addon error (it carries only the number). */
export function errnoName(errno: number): string {
  return Object.entries(OS.errno).find(([, n]) => n === errno)?.[0] ?? `errno ${errno}`;
}

/** What a handler answers: reply bytes, a positive errno, or nothing (FORGET has no reply). */
export type HandlerResult = Buffer | Buffer[] | number | void;
export type Handler = (h: InHeader, body: Buffer) => HandlerResult | Promise<HandlerResult>;

/** What INIT settled, for the handlers. */
export interface Negotiated {
  minor: number;
  /** Flags the kernel offered and we took. */
  flags: bigint;
  maxWrite: number;
  maxPages: number;
  /** Opens may be passed through to a backing file (FUSE_PASSTHROUGH). */
  passthrough: boolean;
  /** The kernel opens directories without asking us when OPENDIR answers ENOSYS (5.1 on). */
  noOpendir: boolean;
}

export interface ConnectionOptions {
  /** Ask for passthrough where offered (needs CAP_SYS_ADMIN in the initial user namespace). */
  passthrough: boolean;
  /** Called for every request, by opcode name (for --stats). */
  count?(opname: string): void;
  /** Handler failures that became EIO (for the agent's log). */
  onError?(opname: string, err: unknown): void;
}

/** Features we take when offered; the rest we never ask for. */
const WANTED =
  Init.ASYNC_READ |
  Init.ATOMIC_O_TRUNC |
  Init.BIG_WRITES |
  Init.AUTO_INVAL_DATA |
  Init.DO_READDIRPLUS |
  Init.ASYNC_DIO |
  Init.PARALLEL_DIROPS |
  Init.MAX_PAGES |
  Init.CACHE_SYMLINKS |
  Init.INIT_EXT;
/** Async reads (read-ahead) are background requests: let more of them be in flight. */
const MAX_BACKGROUND = 64;
const CONGESTION_THRESHOLD = 48;
const READER_THREADS = 2;
/** FILESYSTEM_MAX_STACK_DEPTH: our mount over a backing file on at most one stacked layer. */
const MAX_STACK_DEPTH = 2;

export class FuseConnection {
  negotiated: Negotiated | undefined;
  private initialised!: (n: Negotiated) => void;
  private failed!: (err: Error) => void;
  /** Resolves once INIT is answered. */
  readonly ready = new Promise<Negotiated>((resolve, reject) => {
    this.initialised = resolve;
    this.failed = reject;
  });
  private ending!: (errno: number) => void;
  /** Resolves with the errno that ended the connection (ENODEV: unmounted). */
  readonly ended = new Promise<number>((r) => (this.ending = r));
  private readers = 0;

  constructor(
    readonly addon: KernelAddon,
    readonly fd: number,
    private readonly handlers: Partial<Record<number, Handler>>,
    private readonly opts: ConnectionOptions,
  ) {}

  start(): void {
    const size = MAX_PAGES * PAGE_SIZE + PAGE_SIZE;
    for (let i = 0; i < READER_THREADS; i++) {
      this.readers++;
      this.addon.startReader(this.fd, size, (req, errno) => {
        if (req) return this.dispatch(req);
        if (--this.readers === 0) {
          this.failed(new Error(`the FUSE connection ended before INIT (${errnoName(errno)})`));
          this.ending(errno);
        }
      });
    }
  }

  reply(unique: bigint, error: number, payload: Buffer[] = []): void {
    const len = OUT_HEADER_SIZE + payload.reduce((n, b) => n + b.length, 0);
    // -ENOENT: the request was interrupted and the kernel no longer waits for it.
    this.addon.reply(this.fd, outHeader(len, -error, unique), ...payload);
  }

  private nextNotice = 1;
  private readonly noticesWritten = new Map<number, () => void>();

  /** Sends a notification; resolves once it is written (the kernel has acted on it). */
  notify(message: Buffer): Promise<void> {
    if (this.noticesWritten.size === 0 && this.nextNotice === 1) {
      this.addon.onNotified((id) => {
        this.noticesWritten.get(id)?.();
        this.noticesWritten.delete(id);
      });
    }
    const id = this.nextNotice++;
    return new Promise((resolve) => {
      this.noticesWritten.set(id, resolve);
      this.addon.notify(this.fd, message, id);
    });
  }

  private dispatch(req: Buffer): void {
    if (req.length < IN_HEADER_SIZE) return;
    const h = decodeInHeader(req);
    const body = req.subarray(IN_HEADER_SIZE, h.len);
    const name = OPCODE_NAMES[h.opcode] ?? `op${h.opcode}`;
    this.opts.count?.(name);
    if (h.opcode === Opcode.INIT) return this.init(h, body);
    if (h.opcode === Opcode.INTERRUPT) return; // answered when the request itself is
    if (h.opcode === Opcode.DESTROY) return this.reply(h.unique, 0);
    const handler = this.handlers[h.opcode];
    if (!handler) return this.reply(h.unique, OS.errno.ENOSYS);
    const done = (r: HandlerResult) => {
      if (r === undefined) return;
      if (typeof r === 'number') return this.reply(h.unique, r);
      this.reply(h.unique, 0, Array.isArray(r) ? r : [r]);
    };
    const fail = (err: unknown) => {
      this.opts.onError?.(name, err);
      this.reply(h.unique, OS.errno.EIO);
    };
    try {
      const r = handler(h, body);
      if (r instanceof Promise) r.then(done, fail);
      else done(r);
    } catch (err) {
      fail(err);
    }
  }

  private init(h: InHeader, body: Buffer): void {
    const major = body.readUInt32LE(0);
    const minor = body.readUInt32LE(4);
    const maxReadahead = body.readUInt32LE(8);
    let offered = BigInt(body.readUInt32LE(12));
    if (offered & Init.INIT_EXT && body.length >= 20) offered |= BigInt(body.readUInt32LE(16)) << 32n;
    if (major !== KERNEL_VERSION) {
      // A newer major asks us to answer with ours; an older one we cannot speak.
      this.reply(h.unique, major < KERNEL_VERSION ? OS.errno.EPROTO : 0, major < KERNEL_VERSION ? [] : [initOut(KERNEL_VERSION, KERNEL_MINOR_VERSION, 0, 0n, 0, 0)]);
      if (major < KERNEL_VERSION) this.failed(new Error(`the kernel speaks FUSE ${major}.${minor}; outrun needs 7.27 or later`));
      return;
    }
    let flags = offered & WANTED;
    if (this.opts.passthrough && offered & Init.PASSTHROUGH) flags |= Init.PASSTHROUGH;
    const maxPages = flags & Init.MAX_PAGES ? MAX_PAGES : DEFAULT_MAX_PAGES;
    const n: Negotiated = {
      minor: Math.min(minor, KERNEL_MINOR_VERSION),
      flags,
      maxWrite: maxPages * PAGE_SIZE,
      maxPages,
      passthrough: (flags & Init.PASSTHROUGH) !== 0n,
      noOpendir: (offered & Init.NO_OPENDIR_SUPPORT) !== 0n,
    };
    this.negotiated = n;
    // A backing file may itself sit on a stacked filesystem (overlayfs: depth 1): allow that.
    this.reply(h.unique, 0, [initOut(KERNEL_VERSION, n.minor, maxReadahead, flags, n.maxWrite, maxPages, n.passthrough ? MAX_STACK_DEPTH : 0)]);
    this.initialised(n);
  }
}

/** struct fuse_init_out (64 bytes since 7.23). */
function initOut(major: number, minor: number, maxReadahead: number, flags: bigint, maxWrite: number, maxPages: number, stackDepth = 0): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt32LE(major, 0);
  b.writeUInt32LE(minor, 4);
  b.writeUInt32LE(maxReadahead, 8);
  b.writeUInt32LE(Number(flags & 0xffffffffn), 12);
  b.writeUInt16LE(MAX_BACKGROUND, 16);
  b.writeUInt16LE(CONGESTION_THRESHOLD, 18);
  b.writeUInt32LE(maxWrite, 20);
  b.writeUInt32LE(1, 24); // time_gran: nanoseconds
  b.writeUInt16LE(maxPages, 28);
  b.writeUInt32LE(Number(flags >> 32n), 32);
  b.writeUInt32LE(stackDepth, 36);
  return b;
}
