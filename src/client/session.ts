// One direct run of a command on the remote (no master), over an authenticated SSH
// connection whose remote runtime is in place:
//   channel A  the agent (agent-session.ts): serves the local filesystem to it until it
//              reports the local tree mounted at the session root;
//   channel B  `outrun-helper exec` (command-channel.ts): the command itself, in the agent's
//              namespaces and chroot, with its stdio (or a pty) carried by the channel;
// then the agent is told to shut down, which ends everything left on the remote, and the
// command's status becomes ours. Every way out closes both channels.
import type { Client } from 'ssh2';
import type { ExecSpec } from './exec-spec';
import { encodeExecSpec } from './exec-spec';
import { Terminal } from './terminal';
import { AGENT_EXIT_LINK_LOST, AgentSession, newSessionDir } from './agent-session';
import { openCommandChannel, type CommandChannel } from './command-channel';
import { directLink } from './command-link';
import { runLocalCommand } from './local-command';
import { commandEnvOf } from './command-env';
import type { PhaseTimes } from './phase-times';
import type { ReconnectingLink } from './reconnecting-link';
import { ResumableChannel } from './resumable-channel';
import { nodeArgv, unameMachine } from './runtime';
import type { RunTimeout } from './run-timeout';

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
  /** Where the start's phases are timed (for --stats). */
  phases?: PhaseTimes;
  /** How long the agent may take to mount before we give up. */
  mountTimeoutMs?: number;
  /** Names the remote (host key alias or address, port), for what is remembered about it locally. */
  remoteId?: string;
  /** The remote's persistent cache of local trees; undefined: none. */
  cache?: { trees: string[]; maxBytes: number };
  /** A rootless remote (see AgentSessionOptions.rootless). */
  rootless?: { sessionParent: string };
  /** The connection as one that may come back: the session's channels go through relays. */
  link?: ReconnectingLink;
  /** Just before the command starts (the run's own signal handling takes over then). */
  onCommandStart?: () => void;
  /** --kernel-cache: seconds the remote kernel keeps names, attributes and absences. */
  kernelCacheS?: number;
  /** More for --stats to say of the run (the host a pool chose, an emulated architecture). */
  statsNotes?: string[];
  /** --timeout: ends the command when it runs out. */
  timeout?: RunTimeout;
  /** Where node-bound programs (agent, command, signals) run: a Slurm step (slurm.ts); undefined: on the login itself. */
  remoteExec?: (command: string) => string;
}

export async function runSession(opts: SessionOptions): Promise<number> {
  const { log } = opts;
  const sessionDir = newSessionDir(opts.rootless?.sessionParent);
  // Modes from the remote are already masked by the command's umask (see local-server.ts).
  const savedUmask = process.umask(0);
  const terminal = opts.pty ? new Terminal() : undefined;
  // Through relays, both channels outlive the connection (src/remote/relay.ts); a command
  // on a pty too, since its helper then opens the pty on the remote (command-channel.ts).
  const link = opts.link;
  const relay = link
    ? (program: string[]) =>
        ResumableChannel.open(link, { node: nodeArgv(opts.remoteDir, opts.loader), agentJs: `${opts.remoteDir}/agent.js`, program }, link.limitMs, log).then((rc) =>
          rc.asChannel(),
        )
    : undefined;
  // Channel B opens while the agent starts (see openCommandChannel).
  const commandChannel: Promise<CommandChannel> = openCommandChannel(
    opts.conn,
    opts.remoteDir,
    sessionDir,
    terminal ? terminal.ptyOptions() : false,
    (b) => process.stdout.write(b),
    undefined,
    relay,
    opts.remoteExec,
  );
  commandChannel.catch(() => undefined);
  let commandStarted = false;
  let agent: AgentSession | undefined;
  const started = performance.now();
  const elapsed = () => `${(performance.now() - started).toFixed(0)} ms`;
  try {
    agent = await AgentSession.start({
      conn: opts.conn,
      remoteDir: opts.remoteDir,
      loader: opts.loader,
      commandEnv: commandEnvOf(opts.spec),
      cwd: opts.spec.cwd,
      verbose: opts.verbose,
      log,
      mountTimeoutMs: opts.mountTimeoutMs,
      remoteId: opts.remoteId,
      cache: opts.cache,
      kernelCacheS: opts.kernelCacheS,
      sessionDir,
      rootless: opts.rootless,
      relay: relay && link ? { open: relay, limitMs: link.limitMs } : undefined,
      currentConn: link ? () => link.current : undefined,
      remoteExec: opts.remoteExec,
    });
    opts.phases?.mark('agent and mount');
    const cc = await commandChannel;
    commandStarted = true;
    opts.onCommandStart?.();
    opts.phases?.mark('command channel');
    const status = await runLocalCommand(directLink(link ? () => link.up() : opts.conn, opts.remoteDir, sessionDir, cc, log, opts.remoteExec), encodeExecSpec(opts.spec), terminal, opts.timeout);
    opts.phases?.mark('command');
    log(`command ended with status ${status} (${elapsed()})`);
    // When the agent dies, the helper's init kills the command (status 137): tell that apart
    // from a command that was killed by itself, and report it as outrun's failure.
    if (agent.agentEnded === null && status === 128 + 9) await Promise.race([agent.agentClosed, new Promise((r) => setTimeout(r, 1000))]);
    if (agent.agentEnded !== null) throw agent.endedDuringRun(agent.agentEnded);

    const agentStatus = await agent.shutdown('command finished', !!opts.stats);
    opts.phases?.mark('agent shutdown');
    // The agent gave up on the link while the command was ending: the run did not end right.
    if (agentStatus === AGENT_EXIT_LINK_LOST) throw agent.endedDuringRun(agentStatus);
    if (opts.stats) {
      for (const line of agent.stats.lines()) process.stderr.write(`outrun: ${line}\n`);
      if (opts.phases) process.stderr.write(`outrun: ${opts.phases.line()}\n`);
      for (const note of opts.statsNotes ?? []) process.stderr.write(`outrun: stats: ${note}\n`);
    }
    return status;
  } finally {
    // A command channel opened early for a session that never got to run it.
    if (!commandStarted) void commandChannel.then((cc) => cc.ch.close(), () => undefined);
    await agent?.close();
    process.umask(savedUmask);
  }
}

/** What --stats says of a run whose local programs the remote emulates. */
export function emulationLine(e: { handler: string; interpreter: string; machine: string }): string {
  return `emulated: the remote is ${e.machine}; the command's ${unameMachine() ?? process.arch} programs ran through its binfmt_misc handler ${e.handler} (${e.interpreter})`;
}
