// One run of a command on the remote, over an authenticated SSH connection whose remote
// runtime is in place:
//   channel A  the agent: serves the local filesystem to it (gRPC over the channel) until
//              it reports the local tree mounted at the session root;
//   channel B  `outrun-helper exec`: the command itself, in the agent's namespaces and
//              chroot, with its stdio (or a pty) carried by the channel and nothing else;
// then the agent is told to shut down, which ends everything left on the remote, and the
// command's status becomes ours. Every way out closes both channels.
import { randomBytes } from 'node:crypto';
import type { Client, ClientChannel, PseudoTtyOptions } from 'ssh2';
import { LocalFileServer } from '../fs/local-server';
import { encodePreamble } from '../wire/preamble';
import { PROTOCOL_VERSION, pb } from '../wire/schema';
import { OutrunError } from './errors';
import { encodeExecSpec, type ExecSpec } from './exec-spec';
import { statusFromExit } from './exit-status';
import { RpcServer, type ControlStream } from './rpc-server';
import { unblockedDuplex } from '../wire/unblocked-duplex';
import { agentCommand } from './runtime';
import { shellQuote } from './shell-quote';
import { Terminal } from './terminal';
import { HangupWatch, wasTerminal } from './hangup';
import { RemoteSignals, type RemoteSignalName } from './remote-signal';
import { Termination } from './termination';
import { SessionStats } from './session-stats';
import { RevalidationAhead, parseProbes, staleProbes } from './cache-revalidate';
import { cacheKey } from './cache-key';
import { warmListings } from './warm-listings';

export interface SessionOptions {
  conn: Client;
  remoteDir: string;
  loader: string;
  spec: ExecSpec;
  /** Allocate a remote pty for the command. */
  pty: boolean;
  verbose: number;
  log: (msg: string) => void;
  /** Print --stats figures at the end. */
  stats?: boolean;
  /** How long the agent may take to mount before we give up. */
  mountTimeoutMs?: number;
  /** Names the remote (host key alias or address, port), for what is remembered about it locally. */
  remoteId?: string;
  /** The remote's persistent cache of local trees; undefined: none. */
  cache?: { trees: string[]; maxBytes: number };
}

const CLIENT_VERSION = '0.1.0';
const READY = Buffer.from('OUTRUN1 READY\n');
/**
 * How long the remote kernel may keep names, attributes and absent names without asking
 * (as NFS's attribute cache: what the command changes itself is always current; a change
 * made on this machine during a run is seen within this time).
 */
const KERNEL_CACHE_S = 10;
// Passed on as they come; SIGTERM (termination.ts) and SIGHUP (hangup.ts) have rules of their own.
const FORWARDED_SIGNALS = ['SIGINT', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;

function execChannel(conn: Client, command: string, pty: PseudoTtyOptions | false): Promise<ClientChannel> {
  return new Promise((resolve, reject) =>
    conn.exec(command, pty ? { pty } : {}, (err, ch) =>
      err ? reject(new OutrunError('SSH_LOST', `cannot open an SSH channel: ${err.message}`, { cause: err })) : resolve(ch),
    ),
  );
}

/** Collects the last lines a channel wrote on stderr, for the one-line error message. */
class TailLines {
  private lines: string[] = [];
  private partial = '';
  push(chunk: Buffer): void {
    const parts = (this.partial + chunk.toString('utf8')).split('\n');
    this.partial = parts.pop() ?? '';
    this.lines.push(...parts.filter((l) => l.trim()));
    if (this.lines.length > 20) this.lines = this.lines.slice(-20);
  }
  last(): string | undefined {
    return this.partial.trim() || this.lines[this.lines.length - 1];
  }
  /** The last line that contains `text`. */
  lastWith(text: string): string | undefined {
    return [...this.lines, this.partial].reverse().find((l) => l.includes(text))?.trim();
  }
}

export async function runSession(opts: SessionOptions): Promise<number> {
  const { conn, log } = opts;
  const sessionDir = `/run/outrun/s-${randomBytes(8).toString('hex')}`;
  const token = randomBytes(32).toString('hex');
  // The command's environment decides where its libraries come from (LD_LIBRARY_PATH).
  const commandEnv: Record<string, string> = {};
  for (const raw of opts.spec.env) {
    const e = raw.toString(); // entries may be bytes; these are only read for paths
    if (e.includes('=')) commandEnv[e.slice(0, e.indexOf('='))] ??= e.slice(e.indexOf('=') + 1);
  }
  const files = new LocalFileServer(undefined, commandEnv);
  // Modes from the remote are already masked by the command's umask (see local-server.ts).
  const savedUmask = process.umask(0);

  let agentChannel: ClientChannel | undefined;
  let commandChannel: Promise<CommandChannel> | undefined;
  let commandStarted = false;
  let rpc: RpcServer | undefined;
  let control: ControlStream | undefined;
  const agentStderr = new TailLines();
  const stats = new SessionStats();
  let onAgentStats: (() => void) | undefined;
  const started = performance.now();
  const elapsed = () => `${(performance.now() - started).toFixed(0)} ms`;

  try {
    // ---- channel A: the agent --------------------------------------------------------
    let onMounted!: (root: string) => void;
    let onAgentFailed!: (err: OutrunError) => void;
    const mounted = new Promise<string>((resolve, reject) => {
      onMounted = resolve;
      onAgentFailed = reject;
    });
    mounted.catch(() => undefined);

    agentChannel = await execChannel(conn, agentCommand(opts.remoteDir, sessionDir, opts.loader), false);
    const agentClosed = new Promise<number | undefined>((resolve) => {
      let status: number | undefined;
      agentChannel!.on('exit', (code: number | null, signal?: string) => (status = statusFromExit(code, signal)));
      agentChannel!.on('close', () => resolve(status));
    });
    agentChannel.stderr.on('data', (d: Buffer) => {
      agentStderr.push(d);
      if (opts.verbose) process.stderr.write(d);
    });
    void agentClosed.then((status) =>
      onAgentFailed(
        new OutrunError('AGENT_FAILED', `the remote agent ended before the session started (status ${status ?? 'unknown'}): ${agentStderr.last() ?? 'no message'}`, {
          hint: 'run with -v for the agent log',
        }),
      ),
    );

    stats.watch(agentChannel);
    stats.watchTransport(opts.conn);
    // Channel B opens while the agent starts (see openCommandChannel).
    commandChannel = openCommandChannel(opts, sessionDir);
    commandChannel.catch(() => undefined);
    const cache = opts.cache && { ...opts.cache, key: cacheKey(opts.cache.trees) };
    // What the remote's cache held last time is checked while the agent starts.
    const ahead = cache && opts.remoteId ? new RevalidationAhead(`${opts.remoteId}\0${cache.key}`) : undefined;
    ahead?.start();
    agentChannel.write(encodePreamble({ token, sessionDir, cache }));
    rpc = new RpcServer(
      Buffer.from(token, 'utf8'),
      files,
      {
        hello: async (req) => {
          log(`agent ${req.agentVersion} on ${req.machine}, kernel ${req.kernel} (${elapsed()})`);
          if (req.protocolVersion !== PROTOCOL_VERSION) {
            const err = new OutrunError(
              'PROTOCOL_MISMATCH',
              `the remote agent speaks protocol ${req.protocolVersion}, this outrun speaks ${PROTOCOL_VERSION}`,
              { hint: 'rebuild outrun (npm run build) so that both halves match' },
            );
            onAgentFailed(err);
            throw err;
          }
          const t0 = performance.now();
          // A malformed list is answered "all stale": nothing unchecked is ever served.
          const probes = parseProbes(req.cacheProbes);
          const staleProbeIndexes = probes instanceof Error ? [] : staleProbes(probes, ahead?.results);
          if (probes instanceof Error) log(`cache: the agent's probes are malformed (${probes.message}); ignoring its cache`);
          else if (probes.length > 0) {
            setImmediate(() => ahead?.remember(probes));
            log(`cache: ${probes.length} entries revalidated, ${staleProbeIndexes.length} stale (${(performance.now() - t0).toFixed(0)} ms)`);
          }
          const home = commandEnv.HOME;
          // The command's PATH is searched by whatever it runs (shells, make, compilers).
          const pathDirs = commandEnv.PATH?.split(':') ?? [];
          const warm = await warmListings(files, [opts.spec.cwd, home, ...pathDirs]);
          log(`hello answered in ${(performance.now() - t0).toFixed(0)} ms (${warm.length} directories listed ahead)`);
          return {
            protocolVersion: PROTOCOL_VERSION,
            staleProbes: staleProbeIndexes,
            cacheRejected: probes instanceof Error,
            warm,
            clientVersion: CLIENT_VERSION,
            // The kernel keeps no attributes (FUSE 2's high-level API gives each hard link its
            // own kernel inode, so a cached link count would go stale); the agent's cache,
            // which invalidates per change, answers instead.
            mount: { attrTimeoutS: KERNEL_CACHE_S, entryTimeoutS: KERNEL_CACHE_S, negativeTimeoutS: KERNEL_CACHE_S, debug: opts.verbose >= 2 },
          };
        },
        control: (stream) => {
          control = stream;
          stream.on('data', (ev: pb.AgentEvent) => {
            if (ev.mounted) onMounted(ev.mounted.root ?? "");
            else if (ev.failure) onAgentFailed(new OutrunError('MOUNT_FAILED', ev.failure.message ?? 'mount failed'));
            else if (ev.stats) {
              stats.agent = Object.fromEntries(Object.entries(ev.stats.counters ?? {}).map(([k, v]) => [k, Number(v)]));
              onAgentStats?.();
              stream.end();
            }
          });
          stream.on('error', () => undefined);
        },
      },
      {
        onCall: (m, ms, errno, path) => {
          stats.finished(m);
          if (opts.verbose >= 1) log(`rpc ${m} ${ms.toFixed(2)} ms errno=${errno}${path ? ` ${JSON.stringify(path)}` : ''}`);
        },
      },
    );
    // Writes of the HTTP/2 session never wait for the SSH channel (see unblocked-duplex.ts).
    rpc.serve(unblockedDuplex(agentChannel));

    const timeoutMs = opts.mountTimeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    const root = await Promise.race([
      mounted,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new OutrunError('AGENT_FAILED', `the remote agent did not mount the local tree within ${timeoutMs / 1000} s`)),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    log(`local tree mounted at ${root} (${elapsed()})`);

    // ---- channel B: the command ------------------------------------------------------
    let agentEnded: number | undefined | null = null; // null while the agent runs
    void agentClosed.then((st) => (agentEnded = st));
    const cc = await commandChannel;
    commandStarted = true;
    const status = await runCommand(opts, sessionDir, cc);
    log(`command ended with status ${status} (${elapsed()})`);
    // When the agent dies, the helper's init kills the command (status 137): tell that apart
    // from a command that was killed by itself, and report it as outrun's failure.
    if (agentEnded === null && status === 128 + 9) await Promise.race([agentClosed, new Promise((r) => setTimeout(r, 1000))]);
    if (agentEnded !== null) throw agentEndedDuringRun(agentEnded, agentStderr);

    // ---- orderly end: the agent kills what is left and unmounts ------------------------
    // The agent drains, saves its cache, reports its figures and ends; its helper then
    // removes every trace. We wait for that (bounded), so that nothing of the session is
    // left on the remote when outrun returns.
    const agentReported = new Promise<void>((r) => (onAgentStats = r));
    control?.write({ shutdown: { reason: 'command finished' } });
    const agentStatus = await Promise.race([agentClosed, new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
    log(`agent ended (${elapsed()})`);
    // The agent gave up on the link while the command was ending: the run did not end right.
    if (agentStatus === AGENT_EXIT_LINK_LOST) throw agentEndedDuringRun(agentStatus, agentStderr);
    if (opts.stats) {
      await Promise.race([agentReported, new Promise((r) => setTimeout(r, 100))]);
      for (const line of stats.lines()) process.stderr.write(`outrun: ${line}\n`);
    }
    return status;
  } finally {
    // A command channel opened early for a session that never got to run it.
    if (!commandStarted) void commandChannel?.then((cc) => cc.ch.close(), () => undefined);
    control?.end();
    agentChannel?.close();
    rpc?.close();
    await files.closeAll();
    process.umask(savedUmask);
  }
}

/** The agent's exit status when it gave up on the link (src/remote/agent.ts, EXIT.LOST). */
const AGENT_EXIT_LINK_LOST = 14;

/**
 * The agent ended before the session did. When it gave up on the link (it heard nothing
 * from us for too long), that is a lost connection (255), with the agent's figures.
 */
function agentEndedDuringRun(status: number | undefined, agentStderr: TailLines): OutrunError {
  const said = agentStderr.lastWith('link lost');
  if (status === AGENT_EXIT_LINK_LOST) {
    return new OutrunError('SSH_LOST', `the connection to the remote was lost during the run (${said?.replace(/^agent: /, 'the agent: ') ?? 'the agent heard nothing from this side'})`, {
      hint: 'check the network; the command was ended on the remote',
    });
  }
  return new OutrunError('AGENT_FAILED', `the remote agent ended during the run (status ${status ?? 'unknown'}); the command was ended with it`, {
    hint: 'run with -v for the agent log',
  });
}

/** The command's channel, its helper started and waiting for the exec spec. */
interface CommandChannel {
  ch: ClientChannel;
  ended: Promise<number | undefined>;
  terminal?: Terminal;
  ready: boolean;
}

/**
 * Opens the command's channel and waits for its helper's READY. It needs nothing from the
 * agent (the helper joins the session only once it has the spec), so the session opens it
 * while the agent starts and mounts: the channel's round trips are off the critical path.
 */
async function openCommandChannel(opts: SessionOptions, sessionDir: string): Promise<CommandChannel> {
  const terminal = opts.pty ? new Terminal() : undefined;
  const ptyOptions: PseudoTtyOptions | false = terminal ? terminal.ptyOptions() : false;
  const ch = await execChannel(opts.conn, shellQuote([`${opts.remoteDir}/outrun-helper`, 'exec', sessionDir]), ptyOptions);

  const ended = new Promise<number | undefined>((resolve) => {
    let status: number | undefined;
    ch.on('exit', (code: number | null, signal?: string) => (status = statusFromExit(code, signal)));
    ch.on('close', () => resolve(status));
  });

  // Handshake: the helper says READY (after putting a pty in raw mode, so the spec is not
  // echoed), then reads the spec; from then on the channel carries only the command's stdio.
  const ready = await new Promise<boolean>((resolve) => {
    let seen = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      seen = Buffer.concat([seen, d]);
      if (seen.length >= READY.length) {
        ch.off('data', onData);
        ch.off('close', onClose);
        ch.pause();
        const ok = seen.subarray(0, READY.length).equals(READY);
        if (!ok) process.stdout.write(seen);
        else if (seen.length > READY.length) ch.unshift(seen.subarray(READY.length));
        resolve(ok);
      }
    };
    const onClose = () => {
      ch.off('data', onData);
      if (seen.length) process.stdout.write(seen);
      resolve(false);
    };
    ch.on('data', onData);
    ch.on('close', onClose);
  });
  return { ch, ended, terminal, ready };
}

/** Runs the command on its channel and resolves with its exit status. */
async function runCommand(opts: SessionOptions, sessionDir: string, cc: CommandChannel): Promise<number> {
  const { ch, ended, terminal, ready } = cc;
  // Only now: an early channel abandoned (the mount failed) must not print the helper's complaint.
  ch.stderr.pipe(process.stderr, { end: false });
  if (!ready) {
    const status = await ended;
    throw new OutrunError('EXEC_FAILED', 'the remote helper could not start the command', {
      exitStatus: status ?? 254,
      hint: 'run with -v for details',
    });
  }
  ch.write(encodeExecSpec(opts.spec));

  terminal?.enterRaw((rows, cols) => ch.setWindow(rows, cols, 0, 0));
  const signals = new RemoteSignals(opts.conn, `${opts.remoteDir}/outrun-helper`, sessionDir, opts.log, ended);
  const signalHandlers = new Map<string, () => void>();
  let lastInt = 0;
  // Also with a terminal: there the keys go to the remote pty as bytes, and these come only
  // from kill(1) and the like. Unhandled, they would end outrun without restoring the
  // terminal or ending the command.
  for (const sig of FORWARDED_SIGNALS) {
    const handler = () => {
      // A second Ctrl-C within two seconds ends the command hard.
      if (sig === 'SIGINT' && Date.now() - lastInt < 2000) signals.send('KILL');
      else signals.send(sig.slice(3) as RemoteSignalName);
      if (sig === 'SIGINT') lastInt = Date.now();
    };
    signalHandlers.set(sig, handler);
    process.on(sig, handler);
  }
  const termination = new Termination(signals);
  const onSigterm = () => termination.requested();
  process.on('SIGTERM', onSigterm);

  // Output the command writes where nobody can take it is dropped: a stalled channel would
  // never report the command's end.
  const dropped = new Set<1 | 2>();
  const dropOutput = (fd: 1 | 2) => {
    if (dropped.has(fd)) return;
    dropped.add(fd);
    const [from, to] = fd === 1 ? [ch, process.stdout] : [ch.stderr, process.stderr];
    from.unpipe(to);
    from.on('data', () => undefined).resume();
  };
  const hangup = new HangupWatch({ hangUp: () => signals.send('HANGUP'), forwardSighup: () => signals.send('HUP'), dropOutput });
  // The local reader went away (`outrun box yes | head -1`): the command gets SIGPIPE, as it
  // would writing into a closed local pipe, and what it still writes is dropped. A terminal
  // that fails is the hang-up watch's business.
  let readerGone = false;
  const onOutputError = (fd: 1 | 2) => (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE' || wasTerminal(fd)) return dropOutput(fd);
    if (readerGone) return;
    readerGone = true;
    dropOutput(1);
    dropOutput(2);
    signals.send('PIPE');
  };
  // These stay for the rest of the run: a write failing later (the exit's flush) must not throw.
  process.stdout.on('error', onOutputError(1));
  process.stderr.on('error', onOutputError(2));
  try {
    process.stdin.pipe(ch);
    ch.pipe(process.stdout, { end: false });
    ch.resume();
    hangup.start();
    const status = await Promise.race([ended, termination.gaveUp]);
    if (status === undefined) {
      throw new OutrunError('SSH_LOST', 'the connection ended before the command reported its status');
    }
    return status;
  } finally {
    process.stdin.unpipe(ch);
    process.stdin.pause();
    for (const [sig, handler] of signalHandlers) process.off(sig, handler);
    process.off('SIGTERM', onSigterm);
    termination.dispose();
    hangup.stop();
    terminal?.restore();
  }
}
