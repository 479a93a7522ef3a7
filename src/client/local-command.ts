// The local half of a run: this process's stdin, stdout, stderr, terminal and signals
// joined to the command through its link (a direct channel or a master's socket), until the
// command's exit status is known.
import { OutrunError } from './errors';
import type { CommandLink } from './command-link';
import type { Terminal } from './terminal';
import { HangupWatch, wasTerminal } from './hangup';
import { Termination } from './termination';
import type { RemoteSignalName } from './remote-signal';
import type { RunTimeout } from './run-timeout';

// Passed on as they come; SIGTERM (termination.ts) and SIGHUP (hangup.ts) have rules of their own.
const FORWARDED_SIGNALS = ['SIGINT', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;

/**
 * Runs the command on its link and resolves with its exit status. `timeout` (--timeout): the
 * command is ended when it runs out, and the status is 124 or 137 then (run-timeout.ts).
 */
export async function runLocalCommand(link: CommandLink, spec: Buffer, terminal: Terminal | undefined, timeout?: RunTimeout): Promise<number> {
  const { ended, ready } = link;
  // Only now: an early channel abandoned (the mount failed) must not print the helper's complaint.
  link.errors.pipe(process.stderr, { end: false });
  if (!ready) {
    const status = await ended;
    throw new OutrunError('EXEC_FAILED', 'the remote helper could not start the command', {
      exitStatus: status ?? 254,
      hint: 'run with -v for details',
    });
  }
  // The time ran out while the run was being set up, and the run stops (cli.ts exits 124):
  // no command is started. (Through a master the command started with the attach already.)
  if (timeout?.stopsBeforeStart) return new Promise<number>(() => undefined);
  link.start(spec);
  timeout?.commandStarted((name) => link.signal(name));

  terminal?.enterRaw((rows, cols) => link.resize(rows, cols));
  const signalHandlers = new Map<string, () => void>();
  let lastInt = 0;
  // Also with a terminal: there the keys go to the remote pty as bytes, and these come only
  // from kill(1) and the like. Unhandled, they would end outrun without restoring the
  // terminal or ending the command.
  for (const sig of FORWARDED_SIGNALS) {
    const handler = () => {
      // A second Ctrl-C within two seconds ends the command hard.
      if (sig === 'SIGINT' && Date.now() - lastInt < 2000) link.signal('KILL');
      else link.signal(sig.slice(3) as RemoteSignalName);
      if (sig === 'SIGINT') lastInt = Date.now();
    };
    signalHandlers.set(sig, handler);
    process.on(sig, handler);
  }
  const termination = new Termination({ send: (name) => link.signal(name) });
  const onSigterm = () => termination.requested();
  process.on('SIGTERM', onSigterm);

  // Output the command writes where nobody can take it is dropped: a stalled channel would
  // never report the command's end.
  const dropped = new Set<1 | 2>();
  const dropOutput = (fd: 1 | 2) => {
    if (dropped.has(fd)) return;
    dropped.add(fd);
    const [from, to] = fd === 1 ? [link.output, process.stdout] : [link.errors, process.stderr];
    from.unpipe(to);
    from.on('data', () => undefined).resume();
  };
  const hangup = new HangupWatch({ hangUp: () => link.signal('HANGUP'), forwardSighup: () => link.signal('HUP'), dropOutput });
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
    link.signal('PIPE');
  };
  // These stay for the rest of the run: a write failing later (the exit's flush) must not throw.
  process.stdout.on('error', onOutputError(1));
  process.stderr.on('error', onOutputError(2));
  try {
    process.stdin.pipe(link.input);
    link.output.pipe(process.stdout, { end: false });
    link.output.resume();
    hangup.start();
    const status = await Promise.race([ended, termination.gaveUp, timeout?.gaveUp ?? new Promise<never>(() => undefined)]);
    if (status === undefined) {
      throw new OutrunError('SSH_LOST', 'the connection ended before the command reported its status');
    }
    return timeout ? timeout.statusOf(status) : status;
  } finally {
    process.stdin.unpipe(link.input);
    process.stdin.pause();
    for (const [sig, handler] of signalHandlers) process.off(sig, handler);
    process.off('SIGTERM', onSigterm);
    termination.dispose();
    timeout?.dispose();
    hangup.stop();
    terminal?.restore();
  }
}
