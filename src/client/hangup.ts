// The local terminal going away (its window closed, `tmux kill-session`, the login into this
// machine dropped), seen the ways the kernel shows it: SIGHUP, and stdio that was a terminal
// and no longer is one (a hung-up terminal fails every terminal request with EIO, reads end,
// writes fail with EIO). Locally the command would be hung up with its terminal; outrun hangs
// up the remote command's terminal the same way, drops what the command still writes, and ends
// with the command's status once it is gone.
import * as fs from 'node:fs';
import { isatty } from 'node:tty';

type StdioFd = 0 | 1 | 2;
const STDIO: readonly StdioFd[] = [0, 1, 2];

/** Which of stdin, stdout and stderr were terminals when outrun started. */
let startedOnTerminal: readonly boolean[] = [false, false, false];
let guarded = false;

/**
 * Called once, first thing. A terminal that went away must crash neither outrun nor its exit:
 * a stream's 'error' without a listener throws, and at exit Node restores the terminal mode of
 * its stdio and aborts (SIGABRT) when that fails, as it does on a hung-up terminal; so the dead
 * terminal's descriptors are closed just before.
 */
export function guardLocalTerminal(): void {
  if (guarded) return;
  guarded = true;
  startedOnTerminal = STDIO.map((fd) => isatty(fd));
  const stream = (fd: StdioFd) => (fd === 0 ? process.stdin : fd === 1 ? process.stdout : process.stderr);
  for (const fd of STDIO) if (startedOnTerminal[fd]) stream(fd).on('error', () => undefined);
  process.on('exit', () => {
    for (const fd of STDIO) {
      if (!terminalGone(fd)) continue;
      try {
        fs.closeSync(fd);
      } catch {
        /* already closed */
      }
    }
  });
}

/** True when `fd` (by default: any of stdin, stdout, stderr) was a terminal and no longer is. */
export function terminalGone(fd?: StdioFd): boolean {
  if (fd === undefined) return STDIO.some((f) => terminalGone(f));
  return startedOnTerminal[fd]! && !isatty(fd);
}

/** True when `fd` was a terminal when outrun started (dead or alive now). */
export function wasTerminal(fd: StdioFd): boolean {
  return startedOnTerminal[fd]!;
}

export interface HangupActions {
  /** The local terminal went away: hang up the command's terminal (or give it SIGHUP). */
  hangUp(): void;
  /** Someone sent outrun SIGHUP while its terminal is there (or it has none): pass it on. */
  forwardSighup(): void;
  /** What the command writes to `fd` goes nowhere from now on. */
  dropOutput(fd: 1 | 2): void;
}

const ignore = () => undefined;

/** Watches for the local terminal going away while a command runs. */
export class HangupWatch {
  private lost = false;
  private readonly check = () => {
    if (terminalGone()) this.terminalLost();
  };
  private readonly onSighup = () => {
    if (terminalGone()) this.terminalLost();
    else this.actions.forwardSighup();
  };

  constructor(private readonly actions: HangupActions) {}

  start(): void {
    process.on('SIGHUP', this.onSighup);
    process.stdin.on('end', this.check);
    process.stdin.on('error', this.check);
    process.stdout.on('error', this.check);
    process.stderr.on('error', this.check);
    this.check(); // it may have gone while the session was being set up
  }

  stop(): void {
    process.off('SIGHUP', this.onSighup);
    process.stdin.off('end', this.check);
    process.stdin.off('error', this.check);
    process.stdout.off('error', this.check);
    process.stderr.off('error', this.check);
    // The kernel may still deliver the SIGHUP of a hang-up already handled: it must not cut
    // the orderly end short (and lose the command's status).
    if (this.lost) process.on('SIGHUP', ignore);
  }

  /** Once: the command is hung up, and output to the dead terminal stops. SIGHUPs after that are the same event. */
  private terminalLost(): void {
    if (this.lost) return;
    this.lost = true;
    for (const fd of [1, 2] as const) if (terminalGone(fd)) this.actions.dropOutput(fd);
    this.actions.hangUp();
  }
}
