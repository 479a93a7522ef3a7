// The relay: what stands between sshd and a session's process (the agent, or the exec
// helper that runs the command) so that the process outlives the SSH connection. Started as
// `node agent.js relay -- PROGRAM ARGS...` on an SSH channel, it runs PROGRAM with pipes of
// its own and carries its stdin, stdout, stderr and exit status as resumable streams
// (src/wire/resume-frames.ts, replay-buffer.ts). When the channel goes quiet or closes it
// keeps PROGRAM running, holds its output (up to OUTPUT_BOUND per stream, then stops reading
// it: the program blocks on its writes) and waits for the client to come back through
// `node agent.js relay-attach SOCKET` on a new connection. The socket lives in a 0700
// directory of its own; an attach must present the session's secret, which came over the
// first channel's stdin (never argv). Past the limit the client gave, the relay ends PROGRAM
// and removes its directory: nothing of the session is left.
import { spawn, type ChildProcess } from 'node:child_process';
import { timingSafeEqual } from 'node:crypto';
import { appendFileSync, chmodSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReceiveCursor, ReplayBuffer } from '../wire/replay-buffer';
import {
  ResumeFrame,
  ResumeFrameReader,
  dataResumeFrames,
  jsonResumeFrame,
  offsetResumeFrame,
  parseJsonPayload,
  payloadOffset,

} from '../wire/resume-frames';
import { OUTPUT_BOUND, RELAY_DIR_PREFIX, RELAY_HEARTBEAT_MS, RELAY_SILENCE_MS, validRelaySocket } from '../wire/relay-paths';

/** After an end is ordered: time for the program to end by itself before it is killed. */
const KILL_AFTER_MS = 5000;

interface Transport {
  write(b: Buffer): void;
  close(): void;
}

/** Set once the relay has its directory: the log is kept there too (it goes with the relay). */
let logFile: string | undefined;

const log = (msg: string) => {
  // The first channel's stderr; after it is gone there is nobody to tell, but a relay that
  // stays (waiting for the client) can be asked why: its directory's log.
  try {
    process.stderr.write(`relay: ${msg}\n`);
  } catch {
    /* gone */
  }
  if (logFile) {
    try {
      appendFileSync(logFile, `${new Date().toISOString()} ${msg}\n`, { mode: 0o600 });
    } catch {
      /* a full disk does not stop the relay */
    }
  }
};

export function runRelay(argv: string[]): void {
  if (argv[0] !== '--' || argv.length < 2) {
    log('usage: relay -- PROGRAM ARGS...');
    process.exit(2);
  }
  const program = argv.slice(1);
  sweepStaleRelays();
  // sshd hangs up its session when the connection goes; we stay for the client's return.
  process.on('SIGHUP', () => undefined);
  // Writes to a channel that is gone fail later, as events: never a reason to die.
  process.stderr.on('error', () => undefined);
  let relay: Relay | undefined;
  process.on('SIGTERM', () => (relay ? relay.end('terminated') : process.exit(143)));
  const stdio: Transport = {
    write: (b) => void process.stdout.write(b),
    close: () => {
      process.stdin.pause();
    },
  };
  // The first frame is OPEN, with the secret and the limit.
  const opening = new ResumeFrameReader((type, _stream, payload) => {
    if (relay) return relay.frame(stdio, type, _stream, payload);
    const open = type === ResumeFrame.OPEN ? parseJsonPayload<{ secret?: unknown; limitMs?: unknown }>(payload) : new Error('not OPEN');
    if (open instanceof Error || typeof open.secret !== 'string' || !/^[0-9a-f]{64}$/.test(open.secret) || !Number.isSafeInteger(open.limitMs)) {
      log('bad first frame');
      process.exit(2);
    }
    relay = new Relay(program, Buffer.from(open.secret, 'hex'), Math.max(0, open.limitMs as number), stdio);
  });
  process.stdin.on('data', (d: Buffer) => {
    if (relay && !relay.isCurrent(stdio)) return;
    relay?.heard(stdio);
    if (opening.push(d)) (relay ? relay.lost(stdio, 'bad frame') : process.exit(2));
  });
  process.stdin.on('end', () => (relay ? relay.lost(stdio, 'the channel closed') : process.exit(2)));
  process.stdin.on('error', () => relay?.lost(stdio, 'the channel failed'));
  process.stdout.on('error', () => relay?.lost(stdio, 'the channel failed'));
}

class Relay {
  private readonly dir: string;
  private readonly socketPath: string;
  private readonly child: ChildProcess;
  private readonly stdin = new ReceiveCursor();
  private readonly out = [undefined, new ReplayBuffer(), new ReplayBuffer()] as const;
  private exitInfo: { code: number | null; signal: string | null } | undefined;
  private childGone = false;
  private current: Transport | undefined;
  private lastHeard = performance.now();
  /** When the client went away (undefined: it is here). */
  private awaySince: number | undefined;
  private ending = false;

  constructor(program: string[], private readonly secret: Buffer, private readonly limitMs: number, first: Transport) {
    this.dir = mkdtempSync(join(tmpdir(), RELAY_DIR_PREFIX));
    chmodSync(this.dir, 0o700);
    logFile = join(this.dir, 'log');
    // However we exit (even an internal error), our directory goes with us. The program
    // ends by itself once its pipes close (the agent, at end of file; the command with it).
    process.on('exit', () => rmSync(this.dir, { recursive: true, force: true }));
    this.socketPath = join(this.dir, 's');
    const server = createServer((s) => this.attaching(s));
    server.listen(this.socketPath, () => chmodSync(this.socketPath, 0o600));
    server.on('error', (err) => this.end(`cannot listen: ${err.message}`));
    server.unref();
    // Its own session: sshd's hang-up of ours must not reach it.
    this.child = spawn(program[0]!, program.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.child.on('error', (err) => {
      log(`cannot start ${program[0]}: ${err.message}`);
      this.childEnded(127, null);
    });
    this.child.stdin!.on('error', () => undefined);
    this.child.stdin!.on('drain', () => this.sendAck());
    for (const s of [1, 2] as const) {
      const from = s === 1 ? this.child.stdout! : this.child.stderr!;
      from.on('data', (d: Buffer) => {
        const at = this.out[s].push(d);
        if (this.current) for (const f of dataResumeFrames(s, at, d)) this.current.write(f);
        // Held output is bounded: the program waits on its writes until the client takes some.
        if (this.out[s].held > OUTPUT_BOUND) from.pause();
      });
      from.on('end', () => {
        this.out[s].finish();
        this.current?.write(offsetResumeFrame(ResumeFrame.EOF, s, this.out[s].total));
        this.maybeExit();
      });
    }
    this.child.on('exit', (code, signal) => this.childEnded(code, signal));
    this.current = first;
    first.write(jsonResumeFrame(ResumeFrame.OPENED, { socket: this.socketPath }));
    setInterval(() => this.tick(), RELAY_HEARTBEAT_MS);
  }

  isCurrent(t: Transport): boolean {
    return this.current === t;
  }

  heard(t: Transport): void {
    if (t === this.current) this.lastHeard = performance.now();
  }

  private childEnded(code: number | null, signal: string | null): void {
    if (this.exitInfo) return;
    this.exitInfo = { code, signal };
    this.childGone = true;
    this.maybeExit();
  }

  private exitReady(): boolean {
    return !!this.exitInfo && this.out[1].ended && this.out[2].ended;
  }

  private maybeExit(): void {
    if (this.exitReady()) this.current?.write(jsonResumeFrame(ResumeFrame.EXIT, this.exitInfo));
  }

  /** Stdin bytes handed to the program's pipe (not merely taken): what the client may forget. */
  private sendAck(): void {
    const handed = this.stdin.got - (this.child.stdin?.writableLength ?? 0);
    this.current?.write(offsetResumeFrame(ResumeFrame.ACK, 0, Math.max(0, handed)));
  }

  private tick(): void {
    const now = performance.now();
    if (this.current) {
      this.sendAck();
      if (now - this.lastHeard > RELAY_SILENCE_MS) this.lost(this.current, `nothing heard for ${RELAY_SILENCE_MS / 1000} s`);
      return;
    }
    if (this.awaySince !== undefined && now - this.awaySince > this.limitMs) {
      this.end(`the client did not come back within ${this.limitMs / 1000} s`);
    }
  }

  lost(t: Transport, why: string): void {
    if (t !== this.current) return;
    log(`client away: ${why}`);
    this.current = undefined;
    t.close();
    this.awaySince = performance.now();
  }

  frame(t: Transport, type: number, stream: number, payload: Buffer): void {
    if (t !== this.current) return;
    switch (type) {
      case ResumeFrame.DATA: {
        if (stream !== 0) return;
        const at = payloadOffset(payload);
        const fresh = at instanceof Error ? at : this.stdin.take(at, payload.subarray(8));
        if (fresh instanceof Error) return this.lost(t, `stdin: ${fresh.message}`);
        if (fresh.length && this.child.stdin && !this.child.stdin.destroyed) {
          if (this.child.stdin.write(fresh)) this.sendAck();
        } else this.sendAck();
        return;
      }
      case ResumeFrame.EOF: {
        const at = payloadOffset(payload);
        const first = at instanceof Error ? at : this.stdin.end(at);
        if (first instanceof Error) return this.lost(t, `stdin end: ${first.message}`);
        if (first) this.child.stdin?.end();
        return;
      }
      case ResumeFrame.ACK: {
        if (stream !== 1 && stream !== 2) return;
        const at = payloadOffset(payload);
        const err = at instanceof Error ? at : this.out[stream].ack(at);
        if (err) return this.lost(t, `ack: ${err.message}`);
        if (this.out[stream].held <= OUTPUT_BOUND) (stream === 1 ? this.child.stdout : this.child.stderr)?.resume();
        return;
      }
      case ResumeFrame.BYE:
        this.end('the client is done');
        return;
      default:
        return;
    }
  }

  /** A connection on the socket: a client coming back, if it knows the secret. */
  private attaching(s: Socket): void {
    s.on('error', () => undefined);
    const timer = setTimeout(() => s.destroy(), 10_000);
    let t: Transport | undefined;
    const reader = new ResumeFrameReader((type, stream, payload) => {
      if (t) return this.frame(t, type, stream, payload);
      clearTimeout(timer);
      const a = type === ResumeFrame.ATTACH ? parseJsonPayload<{ secret?: unknown; got?: unknown }>(payload) : new Error('not ATTACH');
      const secret = !(a instanceof Error) && typeof a.secret === 'string' && /^[0-9a-f]{64}$/.test(a.secret) ? Buffer.from(a.secret, 'hex') : undefined;
      const got = !(a instanceof Error) && Array.isArray(a.got) && a.got.length === 2 ? (a.got as unknown[]) : undefined;
      const refuse = (message: string) => {
        s.end(jsonResumeFrame(ResumeFrame.REFUSED, { message }));
      };
      if (!secret || !timingSafeEqual(secret, this.secret)) return refuse('not this session');
      if (this.ending) return refuse('the session is ending');
      const replays = [1, 2].map((st, i) => this.out[st as 1 | 2].from(Number(got?.[i])));
      const bad = replays.find((r): r is Error => r instanceof Error);
      if (!got || bad) return refuse(`cannot resume: ${bad?.message ?? 'no offsets'}`);
      // The new connection takes over; the old one, if still open, is no longer heard.
      const old = this.current;
      t = { write: (b) => void s.write(b), close: () => s.destroy() };
      this.current = t;
      old?.close();
      this.awaySince = undefined;
      this.lastHeard = performance.now();
      log('client back');
      s.write(jsonResumeFrame(ResumeFrame.RESUMED, { got: this.stdin.got }));
      [1, 2].forEach((st, i) => {
        let at = Number(got[i]);
        for (const c of replays[i] as Buffer[]) {
          for (const f of dataResumeFrames(st, at, c)) s.write(f);
          at += c.length;
        }
        if (this.out[st as 1 | 2].ended) s.write(offsetResumeFrame(ResumeFrame.EOF, st, this.out[st as 1 | 2].total));
      });
      this.maybeExit();
    });
    s.on('data', (d: Buffer) => {
      if (t && t !== this.current) return;
      if (t) this.heard(t);
      if (reader.push(d)) (t ? this.lost(t, 'bad frame') : s.destroy());
    });
    const gone = () => (t ? this.lost(t, 'the attach closed') : clearTimeout(timer));
    s.on('end', gone);
    s.on('close', gone);
  }

  /** Ends the program (it was told, then killed), removes our directory and exits. */
  end(why: string): void {
    if (this.ending) return;
    this.ending = true;
    log(`ending: ${why}`);
    const done = () => {
      rmSync(this.dir, { recursive: true, force: true });
      process.exit(0);
    };
    if (this.childGone) return done();
    this.child.once('exit', done);
    this.child.stdin?.end();
    const pid = this.child.pid;
    const kill = (sig: NodeJS.Signals) => {
      try {
        if (pid) process.kill(pid, sig);
      } catch {
        /* gone */
      }
    };
    kill('SIGTERM');
    setTimeout(() => {
      // The whole group: the program and whatever it started there.
      try {
        if (pid) process.kill(-pid, 'SIGKILL');
      } catch {
        kill('SIGKILL');
      }
      setTimeout(done, 1000);
    }, KILL_AFTER_MS);
  }
}

/**
 * A relay killed outright (SIGKILL, the box's OOM killer) could not remove its directory:
 * each new relay removes those whose socket nobody listens on any more. Only old ones: a
 * relay just made may not listen yet.
 */
function sweepStaleRelays(): void {
  let names: string[];
  try {
    names = readdirSync(tmpdir()).filter((n) => n.startsWith(RELAY_DIR_PREFIX));
  } catch {
    return;
  }
  for (const n of names) {
    const dir = join(tmpdir(), n);
    try {
      const st = statSync(dir);
      if (!st.isDirectory() || st.uid !== process.getuid?.() || Date.now() - st.mtimeMs < 10_000) continue;
    } catch {
      continue;
    }
    const s = createConnection(join(dir, 's'));
    s.on('connect', () => s.destroy());
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') rmSync(dir, { recursive: true, force: true });
    });
  }
}

/** `relay-attach SOCKET`: this channel's stdin and stdout, joined to a relay's socket. */
export function runRelayAttach(argv: string[]): void {
  const socket = argv[0] ?? '';
  if (!validRelaySocket(socket, tmpdir())) {
    log('relay-attach: not a relay socket');
    process.exit(2);
  }
  const s = createConnection(socket);
  s.on('error', (err) => {
    log(`relay-attach: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'the session is gone' : err.message}`);
    process.exit(3);
  });
  s.on('connect', () => {
    process.stdin.pipe(s);
    s.pipe(process.stdout);
  });
  process.stdin.on('end', () => s.end());
  s.on('close', () => process.exit(0));
  process.stdout.on('error', () => process.exit(0));
  process.on('SIGHUP', () => process.exit(0));
}

