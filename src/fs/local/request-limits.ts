// Bounds on what one peer can make the local file server hold at once. The agent is
// trusted with the user's files, not with the machine's memory: a broken or hostile peer
// must not be able to make outrun allocate without limit by asking for many big reads or by
// opening many requests at once.

/** Most requests (HTTP/2 streams) in flight at once; further ones wait in the peer's queue. */
export const MAX_CONCURRENT_REQUESTS = 128;
/** Largest request message accepted (a write's data and its header); larger ones are refused. */
export const MAX_REQUEST_BYTES = 16 * 1024 * 1024;
/** Bytes of read buffers allocated at once across the session; further reads wait their turn. */
export const MAX_READ_BYTES_IN_FLIGHT = 64 * 1024 * 1024;

/** gRPC server options that apply the request bounds above (merged over the channel options). */
export const SERVER_LIMIT_OPTIONS = {
  'grpc.max_concurrent_streams': MAX_CONCURRENT_REQUESTS,
  'grpc.max_receive_message_length': MAX_REQUEST_BYTES,
} as const;

/**
 * A budget of bytes shared by concurrent operations: `take(n)` waits until n bytes are free.
 * Waiters are served in order, so a big request is not starved by small ones. The queue is
 * bounded because the number of requests in flight is (MAX_CONCURRENT_REQUESTS).
 */
export class ByteBudget {
  private used = 0;
  private peakUsed = 0;
  private readonly waiting: { n: number; go: () => void }[] = [];

  constructor(readonly capacity: number) {}

  get inUse(): number {
    return this.used;
  }

  /** The most bytes ever held at once (tests assert the bound with it). */
  get peak(): number {
    return this.peakUsed;
  }

  /** Runs `fn` holding `n` bytes (at most the capacity) of the budget. */
  async with<T>(n: number, fn: () => Promise<T>): Promise<T> {
    const need = Math.min(Math.max(0, n), this.capacity);
    await this.take(need);
    try {
      return await fn();
    } finally {
      this.give(need);
    }
  }

  private take(n: number): Promise<void> {
    if (this.waiting.length === 0 && this.used + n <= this.capacity) {
      this.hold(n);
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push({ n, go: resolve }));
  }

  private hold(n: number): void {
    this.used += n;
    if (this.used > this.peakUsed) this.peakUsed = this.used;
  }

  private give(n: number): void {
    this.used -= n;
    while (this.waiting.length > 0 && this.used + this.waiting[0]!.n <= this.capacity) {
      const next = this.waiting.shift()!;
      this.hold(next.n);
      next.go();
    }
  }
}
