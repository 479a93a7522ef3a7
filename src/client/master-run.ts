// A run through a master: attach to the destination's master (starting one first when
// -o ControlPersist asks for it and none is there), then run the command as a direct run
// would, with one exec on the master's connection instead of a handshake. Resolves with
// undefined when no master can take the run: the caller then runs it directly.
import type { ExecSpec } from './exec-spec';
import { encodeExecSpec } from './exec-spec';
import { OutrunError } from './errors';
import { Terminal } from './terminal';
import { attachRun } from './master-client';
import { startMaster, type MasterStart } from './master-spawn';
import { runLocalCommand } from './local-command';
import { commandEnvOf } from './command-env';
import type { CommandLink } from './command-link';
import type { PhaseTimes } from './phase-times';
import type { RunTimeout } from './run-timeout';

export interface MasterRunOptions {
  socketPath: string;
  /** -o ControlPersist (undefined: use a master that is there, start none). */
  persist?: number | 'forever';
  /** This run's argv up to the destination (what a new master connects with). */
  connectArgv: string[];
  spec: ExecSpec;
  pty: boolean;
  stats: boolean;
  phases: PhaseTimes;
  verbose: number;
  log: (msg: string) => void;
  /**
   * --timeout. Running out before the attach is done does not stop the attach: the master
   * has the spec and may be starting the command; once it has, the command is ended as any.
   */
  timeout?: RunTimeout;
}

export async function runThroughMaster(opts: MasterRunOptions): Promise<number | undefined> {
  const { log } = opts;
  const terminal = opts.pty ? new Terminal() : undefined;
  const spec = encodeExecSpec(opts.spec);
  const attach = () => attachRun(opts.socketPath, spec, terminal ? terminal.ptyOptions() : false);
  let link: Awaited<ReturnType<typeof attachRun>> = await attach();
  if (link instanceof OutrunError && link.code === 'ARCH_MISMATCH') throw link;
  // No master, or one that could not take the run (it has made way): start one, once.
  // (A busy master is alive: the run goes direct rather than start another.)
  // (Not once the time ran out: the run ends with 124 instead.)
  if (!isLink(link) && opts.persist !== undefined && !opts.timeout?.expired && !(link instanceof OutrunError && link.code === 'MASTER_BUSY')) {
    log(`master: ${'none' in link ? link.why : link.message}; starting one`);
    const start: MasterStart = {
      argv: [...opts.connectArgv, 'true'],
      socketPath: opts.socketPath,
      persist: opts.persist,
      commandEnv: commandEnvOf(opts.spec),
      cwd: opts.spec.cwd,
      startDir: process.cwd(),
      ...(opts.verbose ? { logPath: `${opts.socketPath}.log` } : {}),
    };
    const started = await startMaster(start);
    if (started instanceof OutrunError) log(`master: ${started.message}`);
    else {
      log(`master: ${started === 'claimed' ? 'started' : 'another run started one'} at ${opts.socketPath}`);
      link = await attach();
      if (link instanceof OutrunError && link.code === 'ARCH_MISMATCH') throw link;
    }
  }
  if (!isLink(link)) {
    log(`master: ${'none' in link ? link.why : link.message}; running directly`);
    return undefined;
  }
  opts.phases.mark('attach and exec');
  const status = await runLocalCommand(link, spec, terminal, opts.timeout);
  opts.phases.mark('command');
  if (opts.stats) process.stderr.write(`outrun: ${opts.phases.line()} (through the master at ${opts.socketPath})\n`);
  return status;
}

const isLink = (x: unknown): x is CommandLink => !!x && typeof x === 'object' && 'ended' in x;
