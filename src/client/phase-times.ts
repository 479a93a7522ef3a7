// How long each phase of a run's start took, for --stats: where a cold start spends its
// time (connect, runtime check, agent and mount, command channel) and what an attached run
// saves.
export class PhaseTimes {
  private readonly t0 = performance.now();
  private last = this.t0;
  private readonly phases: [string, number][] = [];

  /** The phase called `name` ended now. */
  mark(name: string): void {
    const now = performance.now();
    this.phases.push([name, now - this.last]);
    this.last = now;
  }

  line(): string {
    const parts = this.phases.map(([n, ms]) => `${n} ${ms.toFixed(0)} ms`);
    return `stats: phases: ${parts.join(', ')}; total ${(this.last - this.t0).toFixed(0)} ms`;
  }
}
