// The client half of a relayed channel (src/remote/relay.ts): looks like the ssh2 channel
// it replaces (a Duplex for stdin/stdout, `stderr`, 'exit' then 'close', `close()`), but
// its bytes survive the connection: stdin is kept until the relay acknowledges it, stdout
// and stderr are counted as they arrive, and after the link comes back (reconnecting-link.ts)
// `relay-attach` joins a new channel to the same relay, each side says what it has, and
// each sends again exactly what the other lacks. The secret that proves the attach is ours
// travels in the first frame of each channel, never in argv.
import { randomBytes } from 'node:crypto';
import { Duplex, Readable } from 'node:stream';
import type { Client, ClientChannel } from 'ssh2';
import { ReceiveCursor, ReplayBuffer } from '../wire/replay-buffer';
import {
  ResumeFrame,
  ResumeFrameReader,
  dataResumeFrames,
  jsonResumeFrame,
  offsetResumeFrame,
  parseJsonPayload,
  payloadOffset,
  resumeFrame,
} from '../wire/resume-frames';
import { OUTPUT_BOUND, RELAY_HEARTBEAT_MS } from '../wire/relay-paths';
import { execChannel } from './command-channel';
import { shellQuote } from './shell-quote';
import type { ReconnectingLink } from './reconnecting-link';

/** Output received between acknowledgements at most: an eighth of what the relay may hold. */
const ACK_EVERY = OUTPUT_BOUND / 8;
/** Stdin held for the relay until acknowledged; past it, writers wait (backpressure). */
export const STDIN_BOUND = 8 * 1024 * 1024;

/** How long a closed channel waits to see whether its connection went with it. */
const SETTLE_MS = 500;
/** How long the end waits for the relay to take the BYE. */
const BYE_WAIT_MS = 2000;

export interface RelayProgram {
  /** The runtime's node argv on the remote (runtime.ts nodeArgv) and its agent.js. */
  node: string[];
  agentJs: string;
  /** What the relay runs. */
  program: string[];
}

export class ResumableChannel extends Duplex {
  readonly stderr: Readable;
  private readonly secret = randomBytes(32).toString('hex');
  private readonly stdin = new ReplayBuffer();
  private readonly got = [new ReceiveCursor(), new ReceiveCursor(), new ReceiveCursor()];
  /** What was last acknowledged of stdout and stderr (see ACK_EVERY). */
  private readonly acked = [0, 0, 0];
  private socket: string | undefined;
  /** The SSH channel now carrying us, once the relay said OPENED or RESUMED on it. */
  private ch: ClientChannel | undefined;
  private waitingWrite: (() => void) | undefined;
  private exited = false;
  finished = false;
  /** The first channel, from OPEN until the relay's OPENED (for byeNow). */
  private opening: ClientChannel | undefined;
  private readonly heartbeat: NodeJS.Timeout;
  /** Settles on 'close'. */
  readonly gone: Promise<void>;

  private constructor(private readonly link: ReconnectingLink, private readonly p: RelayProgram, private readonly log: (m: string) => void) {
    super({ autoDestroy: false, emitClose: false, allowHalfOpen: true });
    this.stderr = new Readable({ read: () => this.ch?.resume() });
    this.heartbeat = setInterval(() => this.sendAcks(), RELAY_HEARTBEAT_MS);
    this.heartbeat.unref();
    link.on('up', this.onLinkUp);
    link.on('gone', this.onLinkGone);
    this.gone = new Promise((r) => this.once('close', () => r()));
    link.track(this);
  }

  /** Starts `program` behind a relay on the link's connection. */
  static async open(link: ReconnectingLink, p: RelayProgram, limitMs: number, log: (m: string) => void): Promise<ResumableChannel> {
    const rc = new ResumableChannel(link, p, log);
    const ch = await execChannel(link.conn, shellQuote([...p.node, p.agentJs, 'relay', '--', ...p.program]), false);
    ch.write(jsonResumeFrame(ResumeFrame.OPEN, { secret: rc.secret, limitMs }));
    rc.opening = ch;
    try {
      await rc.adopt(ch, ResumeFrame.OPENED);
    } catch (err) {
      rc.end_('could not open');
      throw err;
    }
    // Ended (every way out) while it was opening, or the process is on its way out: the relay is told now.
    if (rc.finished || link.saidBye) {
      ch.write(resumeFrame(ResumeFrame.BYE, 0));
      ch.end();
    }
    return rc;
  }

  /** As ssh2's channel: the cast is the one place this stands in for it. */
  asChannel(): ClientChannel {
    return this as unknown as ClientChannel;
  }

  /** Uses `ch` once the relay's first frame (`expect`) is there; rejects if it does not come. */
  private adopt(ch: ClientChannel, expect: number): Promise<void> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const stderrTail: Buffer[] = [];
      // A write racing the connection's death fails as an event; the close that follows decides.
      ch.on('error', (err: Error) => this.log(`relay channel: ${err.message}`));
      ch.stderr.on('data', (d: Buffer) => {
        if (!settled) stderrTail.push(d);
        this.log(`remote ${d.toString().trim()}`);
      });
      const reader = new ResumeFrameReader((type, stream, payload) => {
        if (!settled) {
          settled = true;
          const j = parseJsonPayload<{ socket?: unknown; got?: unknown; message?: unknown }>(payload);
          if (type !== expect || j instanceof Error) return reject(new Error(type === ResumeFrame.REFUSED && !(j instanceof Error) ? `refused: ${String(j.message)}` : 'unexpected first frame'));
          if (expect === ResumeFrame.OPENED) {
            if (typeof j.socket !== 'string') return reject(new Error('no socket in OPENED'));
            this.socket = j.socket;
            this.ch = ch;
          } else {
            const err = this.resumeStdin(ch, Number(j.got));
            if (err) return reject(err);
            this.ch = ch;
          }
          return resolve();
        }
        if (ch === this.ch) this.frame(type, stream, payload);
      });
      ch.on('data', (d: Buffer) => {
        const err = reader.push(d);
        if (err) {
          this.log(`relay channel: ${err.message}`);
          ch.close();
        }
      });
      ch.on('close', () => {
        if (!settled) {
          settled = true;
          reject(new Error(`the relay channel closed${stderrTail.length ? `: ${Buffer.concat(stderrTail).toString().trim()}` : ''}`));
        }
        if (ch === this.ch) this.channelGone();
      });
    });
  }

  /** On a new channel: stdin again from what the relay has. */
  private resumeStdin(ch: ClientChannel, relayGot: number): Error | undefined {
    const replay = this.stdin.from(relayGot);
    if (replay instanceof Error) return replay;
    let at = relayGot;
    for (const c of replay) {
      for (const f of dataResumeFrames(0, at, c)) ch.write(f);
      at += c.length;
    }
    if (this.stdin.ended) ch.write(offsetResumeFrame(ResumeFrame.EOF, 0, this.stdin.total));
    this.releaseWriter();
    return undefined;
  }

  private frame(type: number, stream: number, payload: Buffer): void {
    switch (type) {
      case ResumeFrame.DATA: {
        if (stream !== 1 && stream !== 2) return;
        const at = payloadOffset(payload);
        const fresh = at instanceof Error ? at : this.got[stream]!.take(at, payload.subarray(8));
        if (fresh instanceof Error) return this.protocolError(fresh);
        if (!fresh.length) return;
        // The relay holds what is not acknowledged, up to its bound: acknowledged only by the
        // heartbeat, output could flow at no more than that bound per second (8 MB/s).
        if (this.got[stream]!.got - this.acked[stream]! >= ACK_EVERY) this.sendAck(stream);
        const more = stream === 1 ? this.push(fresh) : this.stderr.push(fresh);
        if (!more) this.ch?.pause();
        return;
      }
      case ResumeFrame.EOF: {
        if (stream !== 1 && stream !== 2) return;
        const at = payloadOffset(payload);
        const first = at instanceof Error ? at : this.got[stream]!.end(at);
        if (first instanceof Error) return this.protocolError(first);
        if (first) (stream === 1 ? this.push(null) : this.stderr.push(null));
        return;
      }
      case ResumeFrame.ACK: {
        if (stream !== 0) return;
        const at = payloadOffset(payload);
        const err = at instanceof Error ? at : this.stdin.ack(at);
        if (err) return this.protocolError(err);
        this.releaseWriter();
        return;
      }
      case ResumeFrame.EXIT: {
        if (this.exited) return;
        const j = parseJsonPayload<{ code?: unknown; signal?: unknown }>(payload);
        if (j instanceof Error) return this.protocolError(j);
        this.exited = true;
        this.sendAcks();
        const signal = typeof j.signal === 'string' ? j.signal.replace(/^SIG/, '') : undefined;
        this.emit('exit', typeof j.code === 'number' ? j.code : null, signal);
        this.end_('the program ended');
        return;
      }
      default:
        return;
    }
  }

  private protocolError(err: Error): void {
    this.log(`relay: ${err.message}`);
    this.end_('protocol error');
  }

  private sendAcks(): void {
    for (const s of [1, 2]) this.sendAck(s);
  }

  private sendAck(stream: number): void {
    if (!this.ch || this.finished) return;
    this.acked[stream] = this.got[stream]!.got;
    this.ch.write(offsetResumeFrame(ResumeFrame.ACK, stream, this.got[stream]!.got));
  }

  private releaseWriter(): void {
    if (this.waitingWrite && this.stdin.held <= STDIN_BOUND) {
      const cb = this.waitingWrite;
      this.waitingWrite = undefined;
      cb();
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const at = this.stdin.push(chunk);
    if (this.ch) for (const f of dataResumeFrames(0, at, chunk)) this.ch.write(f);
    if (this.stdin.held > STDIN_BOUND) this.waitingWrite = () => cb();
    else cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.stdin.ended) {
      this.stdin.finish();
      this.ch?.write(offsetResumeFrame(ResumeFrame.EOF, 0, this.stdin.total));
    }
    cb();
  }

  override _read(): void {
    this.ch?.resume();
  }

  /** The channel carrying us closed before the program's end was heard. */
  private channelGone(): void {
    this.ch = undefined;
    if (this.finished) return;
    // ssh2 closes the channels of a dying connection before it reports the connection's end:
    // only a connection still up a moment later is one the channel alone was lost on (then
    // one attach on it); otherwise the link comes back through onLinkUp.
    const conn = this.link.conn;
    setTimeout(() => {
      if (!this.finished && !this.ch && this.link.state === 'up' && this.link.conn === conn) void this.reattach(conn);
    }, SETTLE_MS);
  }

  private readonly onLinkUp = (conn: Client) => {
    if (!this.finished && !this.ch) void this.reattach(conn);
  };

  private readonly onLinkGone = () => this.end_('the connection did not come back');

  private async reattach(conn: Client): Promise<void> {
    if (!this.socket) return this.end_('nothing to attach to');
    try {
      const ch = await execChannel(conn, shellQuote([...this.p.node, this.p.agentJs, 'relay-attach', this.socket]), false);
      ch.write(jsonResumeFrame(ResumeFrame.ATTACH, { secret: this.secret, got: [this.got[1]!.got, this.got[2]!.got] }));
      await this.adopt(ch, ResumeFrame.RESUMED);
      this.log(`relay ${this.socket}: resumed (stdout at ${this.got[1]!.got}, stderr at ${this.got[2]!.got})`);
    } catch (err) {
      this.log(`relay ${this.socket}: cannot attach: ${(err as Error).message}`);
      // A link that dropped again comes back through onLinkUp; on a live one the relay is gone.
      setTimeout(() => {
        if (!this.finished && !this.ch && this.link.state === 'up' && this.link.conn === conn) this.end_('the relay is gone');
      }, SETTLE_MS);
    }
  }

  /** Done with the relay: tells it (BYE: it ends the program if still running), then 'close'. */
  private end_(why: string): void {
    if (this.finished) return;
    this.finished = true;
    this.log(`relay channel ends: ${why}`);
    clearInterval(this.heartbeat);
    this.link.off('up', this.onLinkUp);
    this.link.off('gone', this.onLinkGone);
    const ch = this.ch;
    this.ch = undefined;
    if (!this.got[1]!.ended) this.push(null);
    if (!this.got[2]!.ended) this.stderr.push(null);
    this.releaseWriter();
    if (!ch) return void setImmediate(() => this.emit('close'));
    // 'close' once the relay has taken the BYE and ended (its channel closes), bounded: sshd
    // drops what it has not yet handed to the relay when the connection ends right after.
    ch.write(resumeFrame(ResumeFrame.BYE, 0));
    ch.end();
    let closed = false;
    const emitClose = () => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      this.emit('close');
    };
    const timer = setTimeout(emitClose, BYE_WAIT_MS);
    ch.once('close', emitClose);
  }

  /**
   * Last words, synchronously, for an exit that cannot wait (Termination's hard limit): the
   * BYE goes out on the socket now, so the remote ends the program at once, not after the limit.
   */
  byeNow(): void {
    const ch = this.ch ?? this.opening;
    if (this.finished || !ch) return;
    ch.write(resumeFrame(ResumeFrame.BYE, 0));
  }

  /**
   * Resolves once what was written to the SSH channel so far (a BYE) went to the connection:
   * past the channel's window, which may hold it back. (An SSH signal request would not wait,
   * but sshd refuses it to root logins.)
   */
  handedOver(): Promise<void> {
    const ch = this.ch ?? this.opening;
    if (!ch || !ch.writable) return Promise.resolve();
    return new Promise((resolve) => ch.write(Buffer.alloc(0), () => resolve()));
  }

  /** As ssh2's close(): abandon the program (the relay ends it). */
  close(): void {
    this.end_('closed');
  }

  /** No pty through a relay: a run with one is not relayed (session.ts). */
  setWindow(): void {}
}
