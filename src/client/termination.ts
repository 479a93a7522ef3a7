// SIGTERM to outrun: the command gets it, and outrun ends within seconds whatever happens
// next. A command that has not ended after a grace period is killed; if even its end cannot
// be learnt (the remote does not answer), outrun ends without it; and a last-resort limit
// ends outrun however the rest of the run is stuck.
import { constants } from 'node:os';
import type { RemoteSignalName } from './remote-signal';

/** For the command to end by itself (clean up, finish a file). */
export const TERM_GRACE_MS = 5000;
/** For the status of a command killed after the grace period. */
export const KILL_WAIT_MS = 2000;
/** From the first SIGTERM to outrun's exit, whatever is still pending then. */
export const HARD_LIMIT_MS = 10_000;

/** What outrun exits with when it ends without the command's status: as if it died of SIGTERM. */
export const TERMINATED_STATUS = 128 + constants.signals.SIGTERM;

export class Termination {
  private grace: NodeJS.Timeout | undefined;
  private killWait: NodeJS.Timeout | undefined;
  private giveUp!: (status: number) => void;
  /** Resolves with TERMINATED_STATUS when the command's end could not be learnt in time. */
  readonly gaveUp = new Promise<number>((resolve) => (this.giveUp = resolve));

  constructor(
    private readonly signals: { send(name: RemoteSignalName): void },
    /** The last resort, HARD_LIMIT_MS after the first SIGTERM. */
    private readonly hardLimit: () => void = () => process.exit(TERMINATED_STATUS),
  ) {}

  /** SIGTERM arrived: forwarded every time; the clock starts at the first. */
  requested(): void {
    this.signals.send('TERM');
    if (this.grace) return;
    // Unref'd: a run that ends sooner exits as usual. Never cleared: it also covers the end of
    // the run after the command (the agent's shutdown, closing the connection).
    setTimeout(this.hardLimit, HARD_LIMIT_MS).unref();
    this.grace = setTimeout(() => {
      this.signals.send('KILL');
      this.killWait = setTimeout(() => this.giveUp(TERMINATED_STATUS), KILL_WAIT_MS);
    }, TERM_GRACE_MS);
  }

  /** The command ended: nothing left to enforce (the hard limit stays). */
  dispose(): void {
    clearTimeout(this.grace);
    clearTimeout(this.killWait);
  }
}
