// A master: a background process, per local user and destination, that holds the SSH
// connection, the remote agent with its mount and warm caches, and the local file server,
// and runs the commands of the runs attached to its socket, each on its own SSH channel
// with its own spec (cwd, environment, identity), terminal, signals and exit status.
//
// It claims its socket before connecting, so runs started meanwhile wait for it instead of
// starting masters of their own. It ends after its idle time, at `-O exit`, when the
// connection or the agent ends, or on SIGTERM/SIGINT/SIGHUP; every way out shuts the agent
// down (nothing is left on the remote) and removes its socket and key.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Client, PseudoTtyOptions } from 'ssh2';
import { OutrunError, asOutrunError } from './errors';
import type { AgentSession, AgentSessionOptions } from './agent-session';
import { openCommandChannel, type CommandChannel } from './command-channel';
import { RemoteSignals, type RemoteSignalName } from './remote-signal';
import { Frame, FrameReader, MUX_VERSION, dataFrames, jsonFrame, parseJson, parseRunFrame } from './mux-frames';
import { keyPathOf, privateDir } from './control-path';
import { uidOfSpec, viewOfSpec } from './exec-spec-uid';

const SIGNAL_NAMES: ReadonlySet<string> = new Set(['INT', 'TERM', 'HUP', 'QUIT', 'USR1', 'USR2', 'PIPE', 'KILL', 'HANGUP', 'TIMEOUT']);
/** A command channel that takes longer than this to open means the link is gone. */
const EXEC_TIMEOUT_MS = 15_000;
/** How long a run waits for a channel when the remote refuses more (sshd's MaxSessions). */
const CHANNEL_WAIT_MS = 10_000;
/** How often a master checks that its socket is still its own. */
const SOCKET_CHECK_MS = 5_000;

export interface MasterOptions {
  socketPath: string;
  /** Idle milliseconds before the master ends, or 'forever'. */
  persist: number | 'forever';
  log: (msg: string) => void;
}

/** What connecting gives the master: the connection and the agent session's options. */
export interface MasterConnection {
  conn: Client;
  remoteDir: string;
  agent: Omit<AgentSessionOptions, 'conn' | 'remoteDir'>;
  /** The remote cannot run local programs (another architecture, no binfmt_misc handler):
   * chroot runs get this refusal, --no-chroot runs go ahead. */
  chrootRefusal?: OutrunError;
}

type Claim = { server: net.Server; key: Buffer; ino: number } | 'taken' | OutrunError;

/** Listens on the socket, or finds another master there (live or starting). */
export async function claimSocket(socketPath: string): Promise<Claim> {
  const unsafe = privateDir(path.dirname(socketPath), true);
  if (unsafe) return unsafe;
  for (let attempt = 0; attempt < 2; attempt++) {
    const key = randomBytes(32);
    const keyPath = keyPathOf(socketPath);
    const tmp = `${keyPath}.${process.pid}`;
    try {
      fs.writeFileSync(tmp, key.toString('hex'), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      return new OutrunError('CONTROL_PATH_UNSAFE', `cannot write the master's key ${tmp}: ${(err as Error).message}`);
    }
    const server = net.createServer();
    const listened = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      server.once('error', resolve);
      const old = process.umask(0o177);
      server.listen(socketPath, () => resolve(undefined));
      process.umask(old);
    });
    if (!listened) {
      fs.renameSync(tmp, keyPath);
      return { server, key, ino: fs.statSync(socketPath).ino };
    }
    fs.rmSync(tmp, { force: true });
    if (listened.code !== 'EADDRINUSE') return new OutrunError('CONTROL_PATH_UNSAFE', `cannot listen on ${socketPath}: ${listened.message}`);
    // Someone's socket is there: a live master answers; a dead one's socket is replaced.
    const live = await new Promise<boolean>((resolve) => {
      const s = net.connect(socketPath, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (live) return 'taken';
    fs.rmSync(socketPath, { force: true });
  }
  return 'taken';
}

export class Master {
  private session: AgentSession | undefined;
  private connection: MasterConnection | undefined;
  private readonly ready: Promise<OutrunError | undefined>;
  private setReady!: (err: OutrunError | undefined) => void;
  private active = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private ending = false;
  private runCounter = 0;
  /** Resolved (and replaced) each time an attached run ends: a channel may be free. */
  private runEnded: Promise<void> = Promise.resolve();
  private signalRunEnded: () => void = () => undefined;

  constructor(
    private readonly opts: MasterOptions,
    private readonly claim: { server: net.Server; key: Buffer; ino: number },
  ) {
    this.ready = new Promise((r) => (this.setReady = r));
    const renew = () => {
      this.runEnded = new Promise<void>((r) => (this.signalRunEnded = () => (r(), renew())));
    };
    renew();
    claim.server.on('connection', (s) => this.serve(s));
    const check = setInterval(() => {
      if (!this.ownsSocket()) {
        this.opts.log('the socket is no longer ours; ending');
        void this.end('socket taken');
      }
    }, SOCKET_CHECK_MS);
    check.unref();
    for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, () => void this.end(sig));
  }

  /** Connects (through `connect`) and starts the agent; the runs waiting are then served. */
  async start(connect: () => Promise<MasterConnection>): Promise<OutrunError | undefined> {
    try {
      this.connection = await connect();
      const { conn } = this.connection;
      conn.on('close', () => void this.end('the connection ended'));
      conn.on('error', (err: Error) => this.opts.log(`connection: ${err.message}`));
      // grpc-js and protobufjs: loaded once connected (master-main.ts loads them during the probe).
      const { AgentSession } = await import('./agent-session');
      this.session = await AgentSession.start({ conn, remoteDir: this.connection.remoteDir, ...this.connection.agent });
      void this.session.agentClosed.then((st) => void this.end(`the agent ended (status ${st ?? 'unknown'})`));
      this.setReady(undefined);
      this.idle();
      return undefined;
    } catch (err) {
      const e = asOutrunError(err);
      this.setReady(e);
      await this.end(`start failed: ${e.message}`);
      return e;
    }
  }

  private ownsSocket(): boolean {
    try {
      return fs.statSync(this.opts.socketPath).ino === this.claim.ino;
    } catch {
      return false;
    }
  }

  private idle(): void {
    clearTimeout(this.idleTimer);
    if (this.active > 0 || this.opts.persist === 'forever' || this.ending) return;
    this.idleTimer = setTimeout(() => void this.end('idle'), this.opts.persist);
  }

  /** Stops taking runs (the socket goes first: a run started now starts its own master). */
  private unlisten(): void {
    // Checked first: closing the server unlinks the socket path, whoever's it is by now.
    const ours = this.ownsSocket();
    if (ours) fs.rmSync(keyPathOf(this.opts.socketPath), { force: true });
    if (this.claim.server.listening) this.claim.server.close();
    if (ours) fs.rmSync(this.opts.socketPath, { force: true });
  }

  async end(reason: string): Promise<void> {
    if (this.ending) return;
    this.ending = true;
    this.opts.log(`master ends: ${reason}`);
    clearTimeout(this.idleTimer);
    this.unlisten();
    setTimeout(() => process.exit(0), 8000).unref();
    if (this.session && this.session.agentEnded === null) await this.session.shutdown(`master ends: ${reason}`, false).catch(() => undefined);
    await this.session?.close();
    this.connection?.conn.end();
    process.exit(0);
  }

  /** One connection on the socket: a check, an exit request, or a run. */
  private serve(sock: net.Socket): void {
    let hello = false;
    let run: AttachedRun | undefined;
    const fail = (code: string, message: string) => {
      sock.end(jsonFrame(Frame.FAILED, { code, message }));
    };
    const reader = new FrameReader((type, payload) => {
      if (!hello) {
        if (type !== Frame.HELLO) return void sock.destroy();
        const h = parseJson<{ version?: unknown; key?: unknown; request?: unknown }>(payload);
        const given = !(h instanceof Error) && typeof h.key === 'string' ? Buffer.from(h.key, 'utf8') : Buffer.alloc(0);
        const want = Buffer.from(this.claim.key.toString('hex'), 'utf8');
        // The key proves the peer can read this user's files (see control-path.ts).
        if (given.length !== want.length || !timingSafeEqual(given, want)) return void sock.destroy();
        hello = true;
        if (h instanceof Error || h.version !== MUX_VERSION) return fail('MASTER_UNAVAILABLE', `the master speaks mux version ${MUX_VERSION}`);
        sock.write(jsonFrame(Frame.WELCOME, { pid: process.pid }));
        if (h.request === 'check') return void sock.end();
        if (h.request === 'exit') {
          sock.end();
          return void this.end('exit requested');
        }
        if (h.request !== 'run') return fail('MASTER_UNAVAILABLE', 'unknown request');
        return;
      }
      if (!run) {
        if (type !== Frame.RUN) return void sock.destroy();
        const r = parseRunFrame(payload);
        if (r instanceof Error) return fail('MASTER_UNAVAILABLE', r.message);
        // The file server runs as this user: it serves commands of this user only.
        if (uidOfSpec(r.spec) !== process.getuid!()) return fail('MASTER_UNAVAILABLE', 'the run is not of the master\'s user');
        run = new AttachedRun(sock, `r${++this.runCounter}${randomBytes(4).toString('hex')}`, this.opts.log);
        this.active++;
        clearTimeout(this.idleTimer);
        void this.runOne(run, r.pty as PseudoTtyOptions | false, r.spec).finally(() => {
          this.active--;
          this.signalRunEnded();
          this.idle();
        });
        return;
      }
      run.frame(type, payload);
    });
    sock.on('data', (d: Buffer) => {
      if (reader.push(d)) sock.destroy();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => run?.peerGone());
  }

  /**
   * Opens a channel, bounded in time: a channel that does not open means the link is gone
   * (throws); one the remote refuses (it answered, with a reason) is 'refused'.
   */
  private async openChannel<T>(open: () => Promise<T>): Promise<T | 'refused'> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        open(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no command channel within ${EXEC_TIMEOUT_MS / 1000} s`)), EXEC_TIMEOUT_MS);
        }),
      ]);
    } catch (e) {
      const cause = (e as { cause?: { reason?: unknown } }).cause;
      if (typeof cause?.reason === 'number') return 'refused';
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  private async runOne(run: AttachedRun, pty: PseudoTtyOptions | false, spec: Buffer): Promise<void> {
    const err = await this.ready;
    if (err || !this.session || !this.connection || this.ending) {
      return run.failed('MASTER_UNAVAILABLE', err ? `the master could not start: ${err.message}` : 'the master is ending');
    }
    const { conn, remoteDir, chrootRefusal } = this.connection;
    if (chrootRefusal && viewOfSpec(spec) !== 'host') return run.failed(chrootRefusal.code, chrootRefusal.message, chrootRefusal.hint);
    const session = this.session;
    // The agent revalidates its caches while the command's channel opens (it needs no agent).
    const t0 = performance.now();
    const revalidated = session.beginRun().then(() => this.opts.log(`run ${run.name}: caches revalidated in ${(performance.now() - t0).toFixed(0)} ms`));
    revalidated.catch(() => undefined);
    let cc: CommandChannel;
    const waitUntil = Date.now() + CHANNEL_WAIT_MS;
    try {
      for (;;) {
        const opened = await this.openChannel(() => openCommandChannel(conn, remoteDir, session.sessionDir, pty, (b) => run.stdout(b), run.name));
        if (opened !== 'refused') {
          cc = opened;
          break;
        }
        // The connection is alive but takes no more sessions now: wait for a run to end.
        if (Date.now() > waitUntil) return run.failed('MASTER_BUSY', 'the remote refuses more sessions on this connection (MaxSessions)');
        await Promise.race([this.runEnded, new Promise((r) => setTimeout(r, 500))]);
      }
    } catch (e) {
      // A master that cannot open a channel has lost its link: it makes way for a new one.
      this.unlisten();
      run.failed('MASTER_UNAVAILABLE', (e as Error).message);
      return void this.end(`cannot run commands: ${(e as Error).message}`);
    }
    try {
      await revalidated;
    } catch (e) {
      cc.ch.close();
      return run.failed('AGENT_FAILED', (e as Error).message);
    }
    this.opts.log(`run ${run.name}: started ${(performance.now() - t0).toFixed(0)} ms after it asked`);
    const signals = new RemoteSignals(conn, `${remoteDir}/outrun-helper`, session.sessionDir, this.opts.log, cc.ended, run.name);
    await run.relay(cc, spec, (name) => signals.send(name));
  }
}

/** One attached run: its command channel joined to its connection on the socket. */
class AttachedRun {
  private cc: CommandChannel | undefined;
  private sendSignal: ((name: RemoteSignalName) => void) | undefined;
  private pendingSignals: RemoteSignalName[] = [];
  private gone = false;
  private finished = false;

  constructor(
    private readonly sock: net.Socket,
    readonly name: string,
    private readonly log: (msg: string) => void,
  ) {}

  stdout(b: Buffer): void {
    for (const f of dataFrames(Frame.STDOUT, b)) this.sock.write(f);
  }

  failed(code: string, message: string, hint?: string): void {
    this.finished = true;
    this.sock.end(jsonFrame(Frame.FAILED, { code, message, ...(hint ? { hint } : {}) }));
  }

  /** Frames from the run, once its command is under way. */
  frame(type: number, payload: Buffer): void {
    const ch = this.cc?.ch;
    switch (type) {
      case Frame.STDIN:
        if (ch && !ch.write(payload)) {
          this.sock.pause();
          ch.once('drain', () => this.sock.resume());
        }
        return;
      case Frame.STDIN_END:
        ch?.end();
        return;
      case Frame.WINDOW: {
        const w = parseJson<{ rows?: unknown; cols?: unknown }>(payload);
        if (!(w instanceof Error) && Number.isInteger(w.rows) && Number.isInteger(w.cols)) ch?.setWindow(w.rows as number, w.cols as number, 0, 0);
        return;
      }
      case Frame.SIGNAL: {
        const name = payload.toString('utf8');
        if (!SIGNAL_NAMES.has(name)) return;
        if (this.sendSignal) this.sendSignal(name as RemoteSignalName);
        else this.pendingSignals.push(name as RemoteSignalName);
        return;
      }
      default:
        this.sock.destroy();
    }
  }

  /** The run's process went away without waiting for the end: its command is hung up. */
  peerGone(): void {
    this.gone = true;
    if (this.finished || !this.cc) return;
    this.log(`run ${this.name}: the attached run went away; hanging up its command`);
    this.sendSignal?.('HANGUP');
    setTimeout(() => this.cc?.ch.close(), 2000).unref();
  }

  async relay(cc: CommandChannel, spec: Buffer, sendSignal: (name: RemoteSignalName) => void): Promise<void> {
    this.cc = cc;
    const { ch } = cc;
    if (cc.ready) ch.write(spec);
    this.sock.write(jsonFrame(Frame.STARTED, { ready: cc.ready }));
    this.sendSignal = sendSignal;
    for (const s of this.pendingSignals.splice(0)) sendSignal(s);
    if (this.gone) this.peerGone();
    // Output waits while the run does not take it (its local reader is slow).
    const forward = (type: number) => (d: Buffer) => {
      let ok = true;
      for (const f of dataFrames(type, d)) ok = this.sock.write(f) && ok;
      if (!ok) {
        ch.pause();
        ch.stderr.pause();
        this.sock.once('drain', () => {
          ch.resume();
          ch.stderr.resume();
        });
      }
    };
    ch.on('data', forward(Frame.STDOUT));
    ch.stderr.on('data', forward(Frame.STDERR));
    ch.resume();
    const status = await cc.ended;
    this.finished = true;
    if (!this.gone) this.sock.end(jsonFrame(Frame.STATUS, { status: status ?? null }));
  }
}

