// The two halves of a resumable byte stream (src/remote/relay.ts, src/client/resumable-channel.ts).
// Every byte has an offset from the stream's start. The sender keeps what it sent until the
// receiver acknowledges it (ReplayBuffer), so that after a new connection it can send again
// exactly what the receiver lacks; the receiver counts what it took (ReceiveCursor), so that
// what arrives twice is dropped: no byte lost, none repeated.

/** What a sender keeps until acknowledged; bounded by its owner (it stops taking more). */
export class ReplayBuffer {
  private chunks: Buffer[] = [];
  /** Offset of the first byte still held. */
  private base = 0;
  /** Offset of the next byte to be pushed (= bytes pushed in all). */
  private end = 0;
  /** Whether the stream's end was pushed (it is replayed too, at offset `end`). */
  ended = false;

  /** Bytes held (sent or not, not yet acknowledged). */
  get held(): number {
    return this.end - this.base;
  }

  get total(): number {
    return this.end;
  }

  /** Appends `data`; returns its offset. */
  push(data: Buffer): number {
    if (this.ended) throw new Error('push after the end of the stream');
    const at = this.end;
    if (data.length) {
      this.chunks.push(data);
      this.end += data.length;
    }
    return at;
  }

  finish(): void {
    this.ended = true;
  }

  /** The receiver has every byte below `offset`: they are dropped. A bad offset is an error. */
  ack(offset: number): Error | undefined {
    if (!Number.isSafeInteger(offset) || offset > this.end) return new Error(`acknowledged ${offset} of ${this.end} bytes sent`);
    while (this.base < offset) {
      const c = this.chunks[0]!;
      const drop = offset - this.base;
      if (c.length <= drop) {
        this.chunks.shift();
        this.base += c.length;
      } else {
        this.chunks[0] = c.subarray(drop);
        this.base += drop;
      }
    }
    return undefined;
  }

  /**
   * What to send again to a receiver that has everything below `offset` (it said so on
   * resuming): the bytes from there on. Bytes below what is held were acknowledged and are
   * gone; asking for them, or for bytes never sent, is an error (the peer is not ours).
   */
  from(offset: number): Buffer[] | Error {
    if (!Number.isSafeInteger(offset) || offset < this.base || offset > this.end) {
      return new Error(`asked to resume at ${offset}, holding ${this.base}..${this.end}`);
    }
    const err = this.ack(offset);
    if (err) return err;
    return [...this.chunks];
  }
}

/** What a receiver took of a stream. */
export class ReceiveCursor {
  /** Bytes taken (the offset of the next byte expected). */
  got = 0;
  ended = false;

  /**
   * Data that starts at `offset`: returns the part not taken yet (empty if all of it was),
   * or an error when it would leave a gap.
   */
  take(offset: number, data: Buffer): Buffer | Error {
    if (!Number.isSafeInteger(offset) || offset > this.got) return new Error(`data at ${offset}, expected ${this.got}`);
    const fresh = data.subarray(Math.min(data.length, this.got - offset));
    this.got += fresh.length;
    return fresh;
  }

  /** The end at `offset`: true the first time only; an end before bytes not yet taken is an error. */
  end(offset: number): boolean | Error {
    if (offset !== this.got) return new Error(`end at ${offset}, have ${this.got}`);
    if (this.ended) return false;
    this.ended = true;
    return true;
  }
}
