// The remote agent of a session, over an authenticated SSH connection whose remote runtime
// is in place: channel A runs the agent, which this side serves the local filesystem to
// (gRPC over the channel) until it reports the local tree mounted at the session root. A
// direct run holds one for one command; a master holds one for every run attached to it.
// Every way out closes the channel; `shutdown` ends everything left on the remote.
import { randomBytes } from 'node:crypto';
import type { Client, ClientChannel } from 'ssh2';
import { LocalFileServer } from '../fs/local/local-server';
import { encodePreamble } from '../wire/preamble';
import { PROTOCOL_VERSION, pb } from '../wire/schema';
import { OutrunError } from './errors';
import { statusFromExit } from './exit-status';
import { RpcServer, type ControlStream } from './rpc-server';
import { unblockedDuplex } from '../wire/unblocked-duplex';
import { agentArgv, agentCommand } from './runtime';
import { execChannel } from './command-channel';
import { corkSocket } from './ssh-connect';
import { SessionStats } from './session-stats';
import { RevalidationAhead, parseProbes, staleProbes } from './cache-revalidate';
import { cacheKey } from './cache-key';
import { warmListings } from './warm-listings';

/**
 * How long the remote kernel may keep names, attributes and absent names without asking
 * (as NFS's attribute cache: what the command changes itself is always current; a change
 * made on this machine during a run is seen at its next open, and in a stat within this
 * time). A master's session keeps no absent names: a later run must see files made since.
 */
export const KERNEL_CACHE_S = 10;

export interface AgentSessionOptions {
  conn: Client;
  remoteDir: string;
  loader: string;
  /** The environment of the first command (PATH, HOME, LD_LIBRARY_PATH guide what is listed ahead). */
  commandEnv: Record<string, string>;
  /** The first command's working directory (listed ahead). */
  cwd: string;
  verbose: number;
  log: (msg: string) => void;
  /** How long the agent may take to mount before we give up. */
  mountTimeoutMs?: number;
  /** Names the remote (host key alias or address, port), for what is remembered about it locally. */
  remoteId?: string;
  /** The remote's persistent cache of local trees; undefined: none. */
  cache?: { trees: string[]; maxBytes: number };
  /** Where the session lives on the remote (default: a fresh /run/outrun/s-...). */
  sessionDir?: string;
  /** A rootless remote (the login is not root): sessions live under this directory instead of
   * /run/outrun, and the agent's user namespace maps the local ids (this process's) to the login's. */
  rootless?: { sessionParent: string };
  /** A master's session: many runs, each seeing local changes made before it (beginRun). */
  manyRuns?: boolean;
  /** Run the agent behind a relay (resume after a dropped link): how, and for how long. */
  relay?: { open: (program: string[]) => Promise<ClientChannel>; limitMs: number };
  /** The connection the agent's channel rides now, if it can change (a link that resumes). */
  currentConn?: () => Client | undefined;
  /** Seconds the remote kernel may keep names, attributes and absences (default KERNEL_CACHE_S). */
  kernelCacheS?: number;
  /** Where node-bound programs run (a Slurm step, slurm.ts); undefined: on the login itself. */
  remoteExec?: (command: string) => string;
}

/** How long a run's start may wait for the agent's revalidation. */
const RUN_START_TIMEOUT_MS = 30_000;

export const newSessionDir = (parent = '/run/outrun') => `${parent}/s-${randomBytes(8).toString('hex')}`;

const CLIENT_VERSION = '0.1.0';

/** The ids a rootless session maps to the login's: this process's (the command's, see exec-spec.ts). */
const localIds = () => ({ uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });

/** The agent's exit status when it gave up on the link (src/remote/agent.ts, EXIT.LOST). */
export const AGENT_EXIT_LINK_LOST = 14;

/** Collects the last lines a channel wrote on stderr, for the one-line error message. */
export class TailLines {
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

export class AgentSession {
  readonly sessionDir: string;
  readonly stats = new SessionStats();
  readonly agentStderr = new TailLines();
  /** The agent's exit status once its channel closed. */
  readonly agentClosed: Promise<number | undefined>;
  /** null while the agent runs. */
  agentEnded: number | undefined | null = null;
  private readonly files: LocalFileServer;
  private readonly agentChannel: Promise<ClientChannel>;
  private rpc: RpcServer | undefined;
  private control: ControlStream | undefined;
  private onAgentStats: (() => void) | undefined;
  private lastRunId = 0;
  private readonly runsStarting = new Map<number, (error: string) => void>();
  /** Names the remote's store for RevalidationAhead (undefined: no persistent cache). */
  private aheadStore: string | undefined;
  /** Per run starting: the local checks of last time's probe paths, begun when it asked. */
  private readonly runsAhead = new Map<number, RevalidationAhead>();
  private readonly started = performance.now();

  private constructor(private readonly opts: AgentSessionOptions) {
    this.sessionDir = opts.sessionDir ?? newSessionDir(opts.rootless?.sessionParent);
    this.files = new LocalFileServer(undefined, opts.commandEnv);
    const as = opts.rootless ? localIds() : undefined;
    this.agentChannel = opts.relay
      ? opts.relay.open(agentArgv(opts.remoteDir, this.sessionDir, opts.loader, as))
      : execChannel(opts.conn, (opts.remoteExec ?? ((c: string) => c))(agentCommand(opts.remoteDir, this.sessionDir, opts.loader, as)), false);
    this.agentChannel.catch(() => undefined);
    this.agentClosed = this.agentChannel.then(
      (ch) =>
        new Promise<number | undefined>((resolve) => {
          let status: number | undefined;
          ch.on('exit', (code: number | null, signal?: string) => (status = statusFromExit(code, signal)));
          ch.on('close', () => resolve(status));
        }),
      () => undefined,
    );
    void this.agentClosed.then((st) => (this.agentEnded = st));
  }

  private elapsed(): string {
    return `${(performance.now() - this.started).toFixed(0)} ms`;
  }

  /** Starts the agent; resolves with the session once the local tree is mounted. */
  static async start(opts: AgentSessionOptions): Promise<AgentSession> {
    const s = new AgentSession(opts);
    try {
      await s.mount();
      return s;
    } catch (err) {
      await s.close();
      throw err;
    }
  }

  private async mount(): Promise<void> {
    const { opts, files, stats, agentStderr, log } = { ...this, log: this.opts.log };
    const token = randomBytes(32).toString('hex');
    let onMounted!: (root: string) => void;
    let onAgentFailed!: (err: OutrunError) => void;
    const mounted = new Promise<string>((resolve, reject) => {
      onMounted = resolve;
      onAgentFailed = reject;
    });
    mounted.catch(() => undefined);

    const agentChannel = await this.agentChannel;
    agentChannel.stderr.on('data', (d: Buffer) => {
      agentStderr.push(d);
      if (opts.verbose) process.stderr.write(d);
    });
    void this.agentClosed.then((status) =>
      onAgentFailed(
        new OutrunError('AGENT_FAILED', `the remote agent ended before the session started (status ${status ?? 'unknown'}): ${agentStderr.last() ?? 'no message'}`, {
          hint: 'run with -v for the agent log',
        }),
      ),
    );

    stats.watch(agentChannel);
    stats.watchTransport(opts.conn);
    const cache = opts.cache && { ...opts.cache, key: cacheKey(opts.cache.trees) };
    // What the remote's cache held last time is checked while the agent starts.
    this.aheadStore = cache && opts.remoteId ? `${opts.remoteId}\0${cache.key}` : undefined;
    const ahead = this.aheadStore ? new RevalidationAhead(this.aheadStore) : undefined;
    ahead?.start();
    agentChannel.write(encodePreamble({ token, sessionDir: this.sessionDir, cache, ...(opts.relay ? { resumeMs: opts.relay.limitMs } : {}) }));
    const commandEnv = opts.commandEnv;
    this.rpc = new RpcServer(
      Buffer.from(token, 'utf8'),
      files,
      {
        hello: async (req) => {
          log(`agent ${req.agentVersion} on ${req.machine}, kernel ${req.kernel} (${this.elapsed()})`);
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
          const kernelCache = opts.kernelCacheS ?? KERNEL_CACHE_S;
          const home = commandEnv.HOME;
          // The command's PATH is searched by whatever it runs (shells, make, compilers).
          const pathDirs = commandEnv.PATH?.split(':') ?? [];
          const warm = await warmListings(files, [opts.cwd, home, ...pathDirs]);
          log(`hello answered in ${(performance.now() - t0).toFixed(0)} ms (${warm.length} directories listed ahead)`);
          return {
            protocolVersion: PROTOCOL_VERSION,
            staleProbes: staleProbeIndexes,
            cacheRejected: probes instanceof Error,
            warm,
            clientVersion: CLIENT_VERSION,
            // The kernel keeps names and attributes for --kernel-cache seconds (one kernel
            // inode per local file, so hard links share them). A master's runs must see names
            // made locally between them: the kernel keeps no negative entries then (the
            // agent's own are dropped at each run's start).
            mount: { attrTimeoutS: kernelCache, entryTimeoutS: kernelCache, negativeTimeoutS: opts.manyRuns ? 0 : kernelCache, debug: opts.verbose >= 2 },
          };
        },
        control: (stream) => {
          this.control = stream;
          stream.on('data', (ev: pb.AgentEvent) => {
            if (ev.mounted) onMounted(ev.mounted.root ?? '');
            else if (ev.failure) onAgentFailed(new OutrunError('MOUNT_FAILED', ev.failure.message ?? 'mount failed'));
            else if (ev.revalidate) this.checkProbes(ev.revalidate);
            else if (ev.runReady) this.runsStarting.get(ev.runReady.id ?? 0)?.(ev.runReady.error ?? '');
            else if (ev.stats) {
              stats.agent = Object.fromEntries(Object.entries(ev.stats.counters ?? {}).map(([k, v]) => [k, Number(v)]));
              this.onAgentStats?.();
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
    this.rpc.serve(unblockedDuplex(agentChannel, () => corkSocket(opts.currentConn?.() ?? opts.conn)));

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
    log(`local tree mounted at ${root} (${this.elapsed()})`);
  }

  /**
   * A run is about to start in this session (a master's): the agent revalidates what it
   * cached (src/remote/run-revalidation.ts), asking us about its persistent entries, and
   * says when nothing cached before now can answer unchecked. Only then may the command start.
   */
  async beginRun(): Promise<void> {
    if (!this.control) throw new OutrunError('AGENT_FAILED', 'the agent has no control stream');
    const id = ++this.lastRunId;
    // The paths probed last time are checked here while the agent saves and reopens its
    // store (they are checked after the run asked, so what they find holds for it).
    if (this.aheadStore) {
      const ahead = new RevalidationAhead(this.aheadStore);
      ahead.start();
      this.runsAhead.set(id, ahead);
    }
    let timer: NodeJS.Timeout | undefined;
    const error = await new Promise<string>((resolve) => {
      this.runsStarting.set(id, resolve);
      timer = setTimeout(() => resolve(`no answer within ${RUN_START_TIMEOUT_MS / 1000} s`), RUN_START_TIMEOUT_MS);
      this.control!.write({ runStart: { id } });
    }).finally(() => {
      clearTimeout(timer);
      this.runsStarting.delete(id);
      this.runsAhead.delete(id);
    });
    if (error) throw new OutrunError('AGENT_FAILED', `the agent could not revalidate its caches for the run: ${error}`);
  }

  /** Which of the agent's persistent entries changed here (as at the session's start). */
  private checkProbes(r: pb.IRunRevalidate): void {
    const t0 = performance.now();
    const probes = parseProbes(r.probes);
    // Runs that asked after this one may be served by the same revalidation (the agent
    // shares one among runs asking meanwhile): then only checks made now hold for all.
    const ahead = r.id === this.lastRunId ? this.runsAhead.get(r.id) : undefined;
    const stale = probes instanceof Error ? [] : staleProbes(probes, ahead?.results);
    if (!(probes instanceof Error)) setImmediate(() => ahead?.remember(probes));
    this.control?.write({ stale: { id: r.id ?? 0, indexes: stale, all: probes instanceof Error } });
    if (!(probes instanceof Error)) this.opts.log(`run ${r.id}: ${probes.length} cached entries revalidated (${ahead?.results.size ?? 0} checked ahead), ${stale.length} stale (${(performance.now() - t0).toFixed(0)} ms)`);
  }

  /**
   * The agent ended before the session did. When it gave up on the link (it heard nothing
   * from us for too long), that is a lost connection (255), with the agent's figures.
   */
  endedDuringRun(status: number | undefined): OutrunError {
    const said = this.agentStderr.lastWith('link lost');
    if (status === AGENT_EXIT_LINK_LOST) {
      return new OutrunError('SSH_LOST', `the connection to the remote was lost during the run (${said?.replace(/^agent: /, 'the agent: ') ?? 'the agent heard nothing from this side'})`, {
        hint: 'check the network; the command was ended on the remote',
      });
    }
    return new OutrunError('AGENT_FAILED', `the remote agent ended during the run (status ${status ?? 'unknown'}); the command was ended with it`, {
      hint: 'run with -v for the agent log',
    });
  }

  /**
   * Orderly end: the agent drains, saves its cache, reports its figures and ends; its helper
   * then removes every trace. Waited for (bounded), so that nothing of the session is left on
   * the remote when this returns. Resolves with the agent's status (null: it did not end in time).
   */
  async shutdown(reason: string, waitForFigures: boolean): Promise<number | undefined | null> {
    const agentReported = new Promise<void>((r) => (this.onAgentStats = r));
    this.control?.write({ shutdown: { reason } });
    const agentStatus = await Promise.race([this.agentClosed, new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
    this.opts.log(`agent ended (${this.elapsed()})`);
    if (waitForFigures) await Promise.race([agentReported, new Promise((r) => setTimeout(r, 100))]);
    return agentStatus;
  }

  /** Closes the agent's channel and the file server (every way out). */
  async close(): Promise<void> {
    this.control?.end();
    void this.agentChannel.then((ch) => ch.close(), () => undefined);
    this.rpc?.close();
    await this.files.closeAll();
  }
}
