// A map whose values stay encoded until they are asked for. The persistent cache's index
// holds tens of thousands of entries and a session uses a few hundred of them: decoding them
// all before the mount cost more than the rest of the session start. Each value is its
// entry's protobuf bytes until get() decodes it (once).
export class LazyMap<V> {
  private readonly map = new Map<string, V | Buffer>();

  /** `decode` returns undefined for bytes that do not hold an entry for this key. */
  constructor(private readonly decode: (key: string, bytes: Buffer) => V | undefined) {}

  get size(): number {
    return this.map.size;
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (!Buffer.isBuffer(v)) return v;
    const decoded = this.decode(key, v);
    if (decoded === undefined) this.map.delete(key);
    else this.map.set(key, decoded);
    return decoded;
  }

  set(key: string, value: V): void {
    this.map.set(key, value);
  }

  /** Keeps an entry's bytes, decoded on first use. */
  setEncoded(key: string, bytes: Buffer): void {
    this.map.set(key, bytes);
  }

  delete(key: string): boolean {
    return this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }

  keys(): IterableIterator<string> {
    return this.map.keys();
  }

  /** Every entry, decoded (for the rare whole-map operations and for saving). */
  *entries(): IterableIterator<[string, V]> {
    for (const key of [...this.map.keys()]) {
      const v = this.get(key);
      if (v !== undefined) yield [key, v];
    }
  }

  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }
}
