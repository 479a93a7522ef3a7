// The client's answers to the agent's RunRevalidate events (which persistent entries are
// stale), matched to the run they are for by id.
import type { pb } from '../wire/schema';

/** How long the client may take to check a run's probes. */
const ANSWER_TIMEOUT_MS = 30_000;

export class StaleAnswers {
  private readonly waiting = new Map<number, (answer: number[] | 'all') => void>();

  /** Resolves with the client's answer for run `id` ('all' if none comes in time). */
  wait(id: number): Promise<number[] | 'all'> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => done('all'), ANSWER_TIMEOUT_MS);
      const done = (a: number[] | 'all') => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(a);
      };
      this.waiting.set(id, done);
    });
  }

  answer(s: pb.IStaleProbes): void {
    const done = this.waiting.get(s.id ?? 0);
    if (!done) return;
    done(s.all ? 'all' : (s.indexes ?? []).filter((i) => Number.isInteger(i) && i >= 0));
  }
}
