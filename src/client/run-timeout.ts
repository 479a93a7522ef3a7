// --timeout DURATION and --kill-after DURATION: the whole run bounded, as timeout(1) bounds a
// command. The clock starts with outrun's process (connecting, the runtime check and the mount
// count). When it runs out:
//   - before the command started: a direct run stops where it is (cli.ts: the relays are told,
//     the remote cleans up as after any end) and outrun exits 124 with one line; a run through a
//     master waits for the master to start the command (it has its spec already), then as below;
//   - while the command runs: SIGTERM and SIGCONT to the command and its whole process group on
//     the remote (`outrun-helper signal ... TIMEOUT`), then, if it is still running after the
//     grace (--kill-after, default DEFAULT_KILL_AFTER_MS), SIGKILL to the group. outrun exits
//     124, or 137 when the KILL had to be sent: what timeout(1) gives (its KILL to its own
//     process group ends timeout itself).
// A command that ends before the limit keeps its own status (124 included).
import { constants } from 'node:os';
import type { RemoteSignalName } from './remote-signal';

/** What outrun (and timeout(1)) exits with when the time ran out. */
export const TIMED_OUT_STATUS = 124;
/** ... and when the command had to be killed after the grace: 128 + SIGKILL, as timeout(1). */
export const TIMED_OUT_KILLED_STATUS = 128 + constants.signals.SIGKILL;
/**
 * The grace between the SIGTERM and the SIGKILL when --kill-after is not given. timeout(1)
 * sends only the SIGTERM then; outrun never leaves a command running on the remote, so a
 * command that ignores it is killed, after as long as sensible programs take to clean up.
 */
export const DEFAULT_KILL_AFTER_MS = 10_000;
/** After the SIGKILL: how long the command's end is waited for before outrun exits without it. */
export const KILL_WAIT_MS = 2000;
/** After that: the last resort, whatever else of the run (its cleanup) is still pending. */
export const CLEANUP_LIMIT_MS = 3000;

const UNIT_SECONDS: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400 };

/**
 * timeout(1)'s DURATION: a non-negative decimal number (fractions and an exponent allowed, as
 * C's strtod reads them) with an optional suffix s (seconds, the default), m, h or d. Returns
 * milliseconds (rounded up; Infinity for a number too large to hold), or undefined when the
 * text is not a duration. 0 means no limit, as in timeout(1). Not taken (timeout(1) takes
 * them through strtod): leading blanks, hexadecimal numbers, "inf" and "nan".
 */
export function parseDuration(text: string): number | undefined {
  const m = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?([smhd]?)$/.exec(text);
  if (!m) return undefined;
  const seconds = Number(text.slice(0, text.length - m[1]!.length));
  if (Number.isNaN(seconds) || seconds < 0) return undefined;
  const ms = seconds * UNIT_SECONDS[m[1]!]! * 1000;
  return ms === 0 ? 0 : Math.ceil(ms);
}

/** setTimeout for any duration (Node's own fires at once past 2^31-1 ms); Infinity: never. */
function longTimeout(ms: number, fn: () => void): { clear(): void } {
  const MAX = 2 ** 31 - 1;
  let t: NodeJS.Timeout | undefined;
  let left = ms;
  const arm = () => {
    const step = Math.min(left, MAX);
    left -= step;
    t = setTimeout(left > 0 ? arm : fn, step);
    // The run's own work keeps the process alive; a limit alone must not.
    t.unref();
  };
  if (Number.isFinite(ms)) arm();
  return { clear: () => clearTimeout(t) };
}

export class RunTimeout {
  private state: 'setup' | 'running' | 'done' = 'setup';
  /** The time ran out (before or after the command started). */
  expired = false;
  /** The grace passed and SIGKILL was sent. */
  killSent = false;
  private signal: ((name: RemoteSignalName) => void) | undefined;
  private readonly deadline: { clear(): void };
  private grace: { clear(): void } | undefined;
  private killWait: NodeJS.Timeout | undefined;
  private setupExpiry: (() => void) | undefined;
  private giveUp!: (status: number) => void;
  /** Resolves with the exit status when the command's end could not be learnt after the KILL. */
  readonly gaveUp = new Promise<number>((resolve) => (this.giveUp = resolve));

  constructor(
    /** --timeout, in ms, counted from the process's start. */
    readonly limitMs: number,
    /** --kill-after, in ms. */
    readonly killAfterMs: number = DEFAULT_KILL_AFTER_MS,
    /** The last resort once the time ran out (tests replace it). */
    private readonly hardExit: (status: number) => void = (status) => process.exit(status),
    /** How much of the limit has passed already: the time since the process started. */
    elapsedMs = performance.now(),
  ) {
    this.deadline = longTimeout(Math.max(0, limitMs - elapsedMs), () => this.ranOut());
  }

  /** What to do when the time runs out before the command started (a direct run: stop). */
  onExpiryBeforeStart(handler: (() => void) | undefined): void {
    this.setupExpiry = handler;
    if (handler && this.expired && this.state === 'setup') handler();
  }

  /** The time ran out before the command started and a run stops for it: start no command. */
  get stopsBeforeStart(): boolean {
    return this.expired && this.state === 'setup' && this.setupExpiry !== undefined;
  }

  /** The command is running; `signal` reaches it. If the time ran out already, it is ended now. */
  commandStarted(signal: (name: RemoteSignalName) => void): void {
    if (this.state !== 'setup') return;
    this.state = 'running';
    this.signal = signal;
    if (this.expired) this.terminate();
  }

  /** The command's status as outrun reports it: its own, or 124 / 137 when the time ran out. */
  statusOf(status: number): number {
    if (!this.expired) return status;
    return this.killSent ? TIMED_OUT_KILLED_STATUS : TIMED_OUT_STATUS;
  }

  /** The command ended (or the run is over): nothing more to send. The last resort stays armed. */
  dispose(): void {
    this.state = 'done';
    this.deadline.clear();
    this.grace?.clear();
    clearTimeout(this.killWait);
  }

  private ranOut(): void {
    if (this.state === 'done') return;
    this.expired = true;
    // Unref'd and never cleared: it also bounds what follows the command (the agent's
    // shutdown, closing the connection), as SIGTERM's hard limit does.
    if (Number.isFinite(this.killAfterMs)) {
      setTimeout(() => this.hardExit(this.killSent ? TIMED_OUT_KILLED_STATUS : TIMED_OUT_STATUS), this.killAfterMs + KILL_WAIT_MS + CLEANUP_LIMIT_MS).unref();
    }
    if (this.state === 'running') this.terminate();
    else this.setupExpiry?.();
  }

  private terminate(): void {
    this.signal!('TIMEOUT');
    this.grace = longTimeout(this.killAfterMs, () => {
      if (this.state !== 'running') return;
      this.killSent = true;
      this.signal!('KILL');
      this.killWait = setTimeout(() => this.giveUp(TIMED_OUT_KILLED_STATUS), KILL_WAIT_MS);
    });
  }
}
