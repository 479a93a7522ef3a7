// The SSH connection of a direct run, as something that may come back: when the connection
// dies (keepalives unanswered, reset), a new one is made with the same resolved settings and
// the same host key checks, backing off from 0.5 s, doubling to 5 s, for up to `limitMs`.
// Those who carry state across it (resumable-channel.ts, remote-signal.ts) wait for `up()`.
// Past the limit the link is gone for good: today's way out (255, the remote cleans up).
import { EventEmitter } from 'node:events';
import type { Client } from 'ssh2';
import { sshSocket } from './ssh-connect';

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 5000;

export type LinkState = 'up' | 'down' | 'gone' | 'closed';

/** A relayed channel as the link sees it: what must be said before the connection ends. */
export interface Farewell {
  close(): void;
  byeNow(): void;
  /** Resolves once what was written to it went to the connection. */
  handedOver(): Promise<void>;
  gone: Promise<void>;
}

export class ReconnectingLink extends EventEmitter {
  state: LinkState = 'up';
  /** The connection that is up (the last one while down). */
  conn: Client;
  /** When the link was last lost (for the final message). */
  lostFor = 0;

  constructor(
    first: Client,
    private readonly connect: () => Promise<Client>,
    readonly limitMs: number,
    /** One line for the user (the link lost, the link back). */
    private readonly say: (line: string) => void,
    private readonly log: (msg: string) => void,
  ) {
    super();
    this.setMaxListeners(0);
    this.conn = first;
    this.watch(first);
  }

  private watch(conn: Client): void {
    conn.on('error', (err: Error) => this.log(`connection error: ${err.message}`));
    conn.on('close', () => {
      if (conn === this.conn && this.state === 'up') void this.reconnect();
    });
  }

  /** The connection while it is up. */
  get current(): Client | undefined {
    return this.state === 'up' ? this.conn : undefined;
  }

  /** The connection once it is up; rejects when the link is gone for good. */
  up(): Promise<Client> {
    if (this.state === 'up') return Promise.resolve(this.conn);
    if (this.state !== 'down') return Promise.reject(new Error(`the link is ${this.state}`));
    return new Promise((resolve, reject) => {
      const onUp = (c: Client) => {
        this.off('gone', onGone);
        resolve(c);
      };
      const onGone = () => {
        this.off('up', onUp);
        reject(new Error('the link is gone'));
      };
      this.once('up', onUp);
      this.once('gone', onGone);
    });
  }

  private async reconnect(): Promise<void> {
    this.state = 'down';
    const lostAt = performance.now();
    this.emit('down');
    this.say(`the connection is lost; reconnecting for up to ${this.limitMs / 1000} s`);
    let delay = FIRST_DELAY_MS;
    let attempts = 0;
    while (performance.now() - lostAt < this.limitMs && this.state === 'down') {
      attempts++;
      try {
        const left = this.limitMs - (performance.now() - lostAt);
        const conn = await withTimeout(this.connect(), Math.max(1000, left));
        if (this.state !== 'down') {
          conn.end();
          return;
        }
        this.conn = conn;
        this.watch(conn);
        this.state = 'up';
        this.log(`reconnected after ${attempts} attempts`);
        this.say(`the connection is back after ${((performance.now() - lostAt) / 1000).toFixed(1)} s`);
        this.emit('up', conn);
        return;
      } catch (err) {
        this.log(`reconnect attempt ${attempts}: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(MAX_DELAY_MS, delay * 2);
    }
    if (this.state !== 'down') return;
    this.lostFor = performance.now() - lostAt;
    this.state = 'gone';
    this.emit('gone');
  }

  /** What must be said on the connection before it ends (the relays' BYE), with its end. */
  private readonly farewells = new Set<Farewell>();

  /** Set by byeNow: a relayed channel that finishes opening after it says BYE at once. */
  saidBye = false;

  /** At process exit: every relayed channel still open says BYE, without waiting. */
  byeNow(): void {
    this.saidBye = true;
    if (this.state === 'up') for (const ch of this.farewells) ch.byeNow();
  }

  /**
   * Resolves once what was written to the relayed channels so far has left this process, or
   * after `ms`: a BYE queued behind a large write would die with us otherwise. Only what is
   * queued now is waited for (an empty write's callback comes after those before it): the
   * file server goes on answering meanwhile, and the queue may never be empty.
   */
  flushed(ms: number): Promise<void> {
    const sock = sshSocket(this.conn);
    if (this.state !== 'up' || !sock || sock.destroyed) return Promise.resolve();
    const all = Promise.all([...this.farewells].map((ch) => ch.handedOver())).then(
      () =>
        new Promise<void>((resolve) => {
          while (sock.writableCorked > 0) sock.uncork();
          if (sock.writableLength === 0 || sock.destroyed) resolve();
          else sock.write(Buffer.alloc(0), () => resolve());
        }),
    );
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      void all.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** A relayed channel: told to end, and waited for (bounded), before the connection ends. */
  track(ch: Farewell): void {
    this.farewells.add(ch);
    void ch.gone.then(() => this.farewells.delete(ch));
  }

  /**
   * Every way out: no more reconnecting; every relayed channel still open says BYE (so the
   * remote ends its program now, not after the limit), then the connection ends.
   */
  async close(): Promise<void> {
    const was = this.state;
    const open = [...this.farewells];
    for (const ch of open) ch.close();
    if (was === 'up' && open.length) {
      await Promise.race([Promise.all(open.map((c) => c.gone)), new Promise((r) => setTimeout(r, 2500))]);
    }
    this.state = 'closed';
    this.conn.end();
    if (was === 'down') this.emit('gone');
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no connection within ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(timer));
}
