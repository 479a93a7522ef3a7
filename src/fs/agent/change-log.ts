// Which replies may fill the agent's caches. A reply tells how things were when the local
// side answered, which can be older than what the mount already did: a listing answered
// while a file's writes were still behind in the agent carries the size the file had
// before them (seen: write a, create b, whose stat lists the directory, then fstat a gave
// size 0: the drain fstat waits for came after the listing), and a reply that crossed a
// change (a write landing, a create, an unlink) carries the state before it. Every change
// is numbered here; a reply's news of a path is kept only if the path had no writes behind
// at the reply and did not change since its request left.
export class ChangeLog {
  private seq = 0;
  /** Paths changed, by the number of their last change (bounded: see note). */
  private readonly at = new Map<string, number>();
  /** Subtrees changed as a whole (a directory renamed or removed), with their numbers. */
  private trees: { prefix: string; seq: number }[] = [];
  /** Every path not in `at` last changed at or before this number. */
  private floor = 0;

  /** `pending(path)`: whether the path has writes not yet on the local side. */
  constructor(
    private readonly pending: (path: string) => boolean,
    private readonly max = 10_000,
  ) {}

  /** `path` changed (its directory with it: its listing and attributes). */
  note(path: string): void {
    this.bound();
    this.seq++;
    this.at.set(path, this.seq);
    const slash = path.lastIndexOf('/');
    if (slash >= 0) this.at.set(slash === 0 ? '/' : path.slice(0, slash), this.seq);
  }

  /** Everything at or under `path` changed (and its directory). */
  noteTree(path: string): void {
    this.note(path);
    this.trees.push({ prefix: path === '/' ? '/' : path + '/', seq: this.seq });
  }

  private bound(): void {
    if (this.at.size < this.max && this.trees.length < this.max) return;
    this.at.clear();
    this.trees = [];
    this.floor = this.seq;
  }

  private changedAfter(path: string, start: number): boolean {
    if ((this.at.get(path) ?? this.floor) > start) return true;
    for (let i = this.trees.length - 1; i >= 0 && this.trees[i]!.seq > start; i--) {
      if (path.startsWith(this.trees[i]!.prefix)) return true;
    }
    return false;
  }

  /** Called as a request leaves: what its reply says of a path may be cached if `fresh(path)`. */
  since(): (path: string) => boolean {
    const start = this.seq;
    return (path) => !this.pending(path) && !this.changedAfter(path, start);
  }
}
