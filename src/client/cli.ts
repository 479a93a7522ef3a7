#!/usr/bin/env node
// outrun [options] [user@]host command [args...]
//
// Parses the command line, connects (ssh_config, known_hosts, agent and key auth), makes
// sure the remote has our runtime, runs the session and exits with the command's status.
// Every failure ends as one line on stderr and a documented exit status.
import { DEFAULT_RECONNECT_TIMEOUT_MS, parseArgs, toResolveOptions, USAGE } from './cli-args';
import { asOutrunError, ExitStatus, OutrunError } from './errors';
import { localExecSpec } from './exec-spec';
import { loadRuntimes } from './runtime';
import { resolveSshConfig } from './ssh-config';
import { guardLocalTerminal } from './hangup';
import { DEFAULT_CACHED_TREES } from '../fs/shared/cache-scope';
import { DEFAULT_CACHE_BYTES } from './cache-key';
import { PhaseTimes } from './phase-times';
import { controlSocketPath } from './control-path';
import { controlRequest } from './master-client';
import { runThroughMaster } from './master-run';
import { writeSync } from 'node:fs';
import type { PoolHooks } from './pool/pool-run';
import { DEFAULT_KILL_AFTER_MS, RunTimeout, TIMED_OUT_STATUS } from './run-timeout';

/** How long a signal during the set-up waits for the relays' BYE to leave. */
const SETUP_BYE_FLUSH_MS = 2000;

const VERSION = '0.1.0';

async function main(argv: string[]): Promise<number> {
  guardLocalTerminal();
  const parsed = parseArgs(argv);
  if (parsed.action === 'pool') {
    const { runOnPool } = await import('./pool/pool-run');
    return runOnPool({
      pool: parsed.pool,
      baseArgv: parsed.baseArgv,
      command: parsed.command,
      verbose: parsed.options.verbose,
      timeoutMs: parsed.options.timeoutMs,
      killAfterMs: parsed.options.killAfterMs,
      runOne: (one, hooks) => runOn(parseArgs(one), one, hooks),
      ranOn: (login) => (ranOn = login),
      say: (line) => process.stderr.write(`outrun: ${line}\n`),
    });
  }
  return runOn(parsed, argv);
}

/** The destination the command ran on (a pool's choice), for report(). */
let ranOn: string | undefined;
/** The run's --timeout, for report(). */
let runTimeout: RunTimeout | undefined;

/** One destination: a run, a check or a control request. `pool`: the run is a pool's (pool-run.ts). */
async function runOn(parsed: ReturnType<typeof parseArgs>, argv: string[], pool?: PoolHooks): Promise<number> {
  if (parsed.action !== 'run' && parsed.action !== 'control' && parsed.action !== 'check') {
    if (parsed.action === 'pool') throw new OutrunError('INTERNAL', 'a pool within a pool');
    process.stdout.write(parsed.action === 'help' ? USAGE : `outrun ${VERSION}\n`);
    return 0;
  }
  const { options } = parsed;
  if (!pool) ranOn = argv[argv.length - parsed.command.length - 1];
  const log = (msg: string) => {
    if (options.verbose > 0) process.stderr.write(`outrun: ${msg}\n`);
  };
  const started = performance.now();
  const at = () => `${(performance.now() - started).toFixed(0)} ms`;

  const phases = new PhaseTimes();
  const resolved = resolveSshConfig(toResolveOptions(parsed));
  // slurm://: the login node is connected to as any host; the command runs as a job step on a
  // compute node (slurm.ts). No master (its agent would be on one node for good) and no
  // resume (a step's stdio cannot be re-attached) for now; no pty (srun --pty merges stderr).
  const slurm = parsed.action === 'run' ? parsed.destination.slurm : undefined;
  if (slurm) {
    if (options.pty === 'force') throw new OutrunError('USAGE', 'slurm:// runs have no terminal (-t) yet', { hint: 'run without -t' });
    if (options.controlPersist !== undefined || (options.reconnectTimeoutMs ?? 0) > 0)
      process.stderr.write('outrun: note: slurm:// runs use no master (-o ControlPersist) and are not resumed (-o ReconnectTimeout): ignored\n');
  }
  // -S none: no master, neither used nor started.
  const socketPath =
    slurm || options.controlPath === 'none'
      ? undefined
      : controlSocketPath(
          { user: resolved.user, hostName: resolved.hostName, port: resolved.port, via: resolved.proxyJump ?? resolved.proxyCommand },
          options.controlPath,
        );
  if (parsed.action === 'control') return controlCommand(options.controlCommand!, socketPath);
  if (parsed.action === 'check') {
    const { connectSsh } = await import('./ssh-connect');
    const { runDoctor } = await import('./doctor');
    const conn = await connectSsh(resolved, { verbose: options.verbose, log, interactive: !!process.stdin.isTTY });
    try {
      const print = (line: string) => process.stdout.write(`${line}\n`);
      return await runDoctor(conn, loadRuntimes(), resolved.hostName, print, options.noChroot ? 'host' : 'chroot');
    } finally {
      conn.end();
    }
  }
  const pty = slurm ? false : options.pty === 'force' ? true : options.pty === 'disable' ? false : !!(process.stdin.isTTY && process.stdout.isTTY);
  const command = parsed.command;
  const local = localExecSpec(command);
  const spec = options.noChroot ? (await import('./host-view-spec')).hostViewSpec(local, options.mounts ?? [], resolved.sendEnv) : local;
  // --timeout: counted from the process's start (performance.now() is 0 there).
  const timeout = options.timeoutMs ? new RunTimeout(options.timeoutMs, options.killAfterMs ?? DEFAULT_KILL_AFTER_MS) : undefined;
  runTimeout = timeout;
  const ranOutLine = () =>
    process.stderr.write(`outrun: the --timeout of ${options.timeoutMs! / 1000} s ran out before the command started (connecting, or setting up the remote); nothing was run\n`);
  if (socketPath) {
    const status = await runThroughMaster({
      socketPath,
      persist: options.controlPersist,
      connectArgv: argv.slice(0, argv.length - command.length),
      spec,
      pty,
      stats: !!options.stats,
      phases,
      verbose: options.verbose,
      log,
      timeout,
    });
    if (status !== undefined) {
      if (options.stats && pool) process.stderr.write(`outrun: stats: ${pool.chosen}\n`);
      return status;
    }
  }
  if (timeout?.expired) {
    ranOutLine();
    return TIMED_OUT_STATUS;
  }
  // Loaded only for a direct run (ssh2, grpc-js, protobufjs: about 240 ms of a start): a
  // run attached to a master needs none of them.
  const runtimes = loadRuntimes();
  // The time running out before the command started stops the run where it is, as SIGTERM
  // then would (below): the relays, once there, are told; the remote then ends the agent
  // and cleans up as after any end; outrun exits 124.
  let setupLink: import('./reconnecting-link').ReconnectingLink | undefined;
  timeout?.onExpiryBeforeStart(() => {
    ranOutLine();
    setupLink?.byeNow();
    void (setupLink?.flushed(SETUP_BYE_FLUSH_MS) ?? Promise.resolve()).then(() => process.exit(TIMED_OUT_STATUS));
  });
  const { connectSsh } = await import('./ssh-connect');
  const interactive = !!process.stdin.isTTY;
  const conn = await connectSsh(resolved, { verbose: options.verbose, log, interactive }).catch(async (err: unknown) => {
    // A pool's host that cannot be reached: the pool tries another (nothing ran).
    const e = asOutrunError(err);
    if (pool && e.exitStatus === ExitStatus.SSH) throw new (await import('./pool/pool-run')).HostUnreachable(e);
    throw err;
  });
  log(`connected to ${resolved.user}@${resolved.hostName}:${resolved.port} (${at()})`);
  phases.mark('connect');
  let lost: OutrunError | undefined;
  conn.on('error', (err: Error) => {
    lost = new OutrunError('SSH_LOST', `the connection to ${resolved.hostName} was lost: ${err.message}`, { cause: err });
  });
  // A dropped link is reconnected, with the same settings and host key checks, for up to the
  // limit (resume). No prompts then: the command owns the terminal.
  const reconnectMs = slurm ? 0 : (options.reconnectTimeoutMs ?? DEFAULT_RECONNECT_TIMEOUT_MS);
  const { ReconnectingLink } = await import('./reconnecting-link');
  // A pty run is resumed too: its helper opens the pty on the remote (command-channel.ts).
  const link =
    reconnectMs > 0
      ? new ReconnectingLink(
          conn,
          () => connectSsh(resolved, { verbose: options.verbose, log, interactive: false }),
          reconnectMs,
          // On a terminal only: elsewhere stderr is the command's, and outrun adds to it only when the run fails.
          (line) => {
            if (process.stderr.isTTY || options.verbose > 0) process.stderr.write(`outrun: ${line}\n`);
          },
          log,
        )
      : undefined;
  // An exit that cannot wait for the orderly end (SIGTERM's hard limit) still tells the relays;
  // so does SIGTERM or SIGHUP during the set-up, which ends us by the signal itself (raised
  // again once the relays are told), until the run's own handlers take over.
  const setupSignal = (sig: NodeJS.Signals) => () => {
    link?.byeNow();
    dropSetupSignals();
    // The BYEs may sit behind a large write (the Hello's listings): they leave first (seen
    // lost under load, the remote then waiting ReconnectTimeout for us).
    void (link?.flushed(SETUP_BYE_FLUSH_MS) ?? Promise.resolve()).then(() => process.kill(process.pid, sig));
  };
  const onSetupSignal = new Map((['SIGTERM', 'SIGHUP'] as const).map((s) => [s, setupSignal(s)]));
  const dropSetupSignals = () => onSetupSignal.forEach((h, s) => process.off(s, h));
  setupLink = link;
  if (link) {
    process.once('exit', () => link.byeNow());
    onSetupSignal.forEach((h, s) => process.on(s, h));
  }
  let placement: import('./slurm').SlurmPlacement | undefined;
  try {
    const { ensureRemoteRuntime } = await import('./bootstrap');
    const ensuring = ensureRemoteRuntime(conn, runtimes, log, { host: resolved.hostName, mode: options.noChroot ? 'host' : 'chroot' });
    ensuring.catch(() => undefined);
    // The session's code (grpc-js, protobufjs) loads while the remote runs the probe.
    const { runSession, emulationLine } = await import('./session');
    const { remoteDir, uploaded, rootless, runtime, chroot, load } = await ensuring;
    if (pool && load) pool.probed(load.load1, load.cpus);
    log(`${uploaded ? 'uploaded' : 'found'} runtime ${runtime.id} (${runtime.machine}, ${at()})`);
    phases.mark('runtime check');
    if (slurm) {
      const { placeOnSlurm } = await import('./slurm');
      placement = await placeOnSlurm(conn, { partition: slurm.partition, slurmOptions: options.slurmOptions, job: options.slurmJob ?? process.env.SLURM_JOB_ID, log });
      phases.mark('slurm allocation');
    }
    const sessionRun = runSession({
      conn,
      remoteDir,
      loader: runtime.loader,
      rootless,
      statsNotes: [
        ...(pool ? [pool.chosen] : []),
        ...(!options.noChroot && chroot?.native === false ? [emulationLine(chroot)] : []),
      ],
      spec,
      pty,
      verbose: options.verbose,
      log,
      stats: !!options.stats,
      phases,
      link,
      onCommandStart: dropSetupSignals,
      remoteId: `${resolved.user}@${resolved.hostKeyAlias ?? resolved.hostName}:${resolved.port}`,
      cache:
        options.cachePaths?.length === 0
          ? undefined
          : { trees: options.cachePaths ?? DEFAULT_CACHED_TREES, maxBytes: options.cacheBytes ?? DEFAULT_CACHE_BYTES },
      kernelCacheS: options.kernelCacheS,
      timeout,
      remoteExec: placement?.remoteExec,
    });
    if (!placement) return await sessionRun;
    // Slurm's word comes first: a node failure or the job's time limit, whatever srun said
    // (srun may exit 0 when the node failed).
    const status = await sessionRun.catch(async (err: unknown) => {
      throw (await placement!.verdict()) ?? err;
    });
    const verdict = await placement.verdict();
    if (verdict) throw verdict;
    return status;
  } catch (err) {
    if (link?.state === 'gone' || link?.state === 'down') {
      throw new OutrunError('SSH_LOST', `the connection to ${resolved.hostName} was lost and did not come back within ${reconnectMs / 1000} s; the command was ended on the remote`, {
        hint: 'check the network; -o ReconnectTimeout=SECONDS waits longer',
        cause: err,
      });
    }
    throw link?.state === 'up' && link.conn !== conn ? err : (lost ?? err);
  } finally {
    await placement?.release();
    if (link) await link.close();
    else conn.end();
    log(`connection closed (${at()})`);
  }
}

/** -O check / -O exit, with ssh's messages and statuses. */
async function controlCommand(request: 'check' | 'exit', socketPath: string | undefined): Promise<number> {
  if (!socketPath) throw new OutrunError('USAGE', `-O ${request} needs a control socket (not -S none)`);
  const r = await controlRequest(socketPath, request);
  if (typeof r === 'number') {
    process.stderr.write(request === 'check' ? `Master running (pid=${r})\n` : 'Exit request sent.\n');
    return 0;
  }
  process.stderr.write(`Control socket connect(${socketPath}): ${'none' in r ? 'no master running' : r.message}\n`);
  return ExitStatus.SSH;
}

/** Exit once stdout and stderr have drained (they may be pipes a reader is slow on). */
function exitWith(status: number): void {
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(status);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

/**
 * OUTRUN_REPORT_FD=N (set by the library API, src/client/api/run.ts): how the run ended goes
 * to fd N as one JSON line, so that a caller can tell the command's own status from outrun's
 * failure (both are exit statuses) and learn the host a pool chose.
 */
function report(end: { status: number; failure?: OutrunError }): void {
  const fd = Number(process.env.OUTRUN_REPORT_FD);
  if (!Number.isSafeInteger(fd) || fd < 3) return;
  const f = end.failure;
  const line = { status: end.status, host: ranOn, timedOut: !!runTimeout?.expired, ...(f ? { failure: { code: f.code, message: f.message, ...(f.hint ? { hint: f.hint } : {}) } } : {}) };
  try {
    writeSync(fd, `${JSON.stringify(line)}\n`);
  } catch {
    // nobody is listening
  }
}

main(process.argv.slice(2)).then(
  (status) => {
    report({ status });
    exitWith(status);
  },
  (err: unknown) => {
    const e = asOutrunError(err);
    process.stderr.write(`${e.oneLine()}\n`);
    if (process.env.OUTRUN_DEBUG && e.cause) process.stderr.write(`${String((e.cause as Error)?.stack ?? e.cause)}\n`);
    const status = e.exitStatus ?? ExitStatus.OUTRUN;
    report({ status, failure: e });
    exitWith(status);
  },
);
