// Named event counters (cache hits and misses, FUSE operations), reported by --stats.
export class Counters {
  private readonly values = new Map<string, number>();

  inc(name: string, n = 1): void {
    this.values.set(name, (this.values.get(name) ?? 0) + n);
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.values].sort(([a], [b]) => a.localeCompare(b)));
  }
}
