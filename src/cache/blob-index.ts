/**
 * The committed blobs in memory: digest → size, least recently used first. A Map keeps
 * insertion order, so a use moves its entry to the end (delete, then set) and the oldest
 * entry is the first one: picking an eviction victim never scans, whatever the count.
 * Lean on purpose (a key string and a small integer per blob): about 120 MiB of heap per
 * 10^6 blobs (bench/cache-index.ts).
 */
export class BlobIndex {
  private readonly entries: Map<string, number>;
  /** Bytes of every blob indexed. */
  private total = 0;

  /** Takes `entries` over, oldest first. */
  constructor(entries: Map<string, number> = new Map()) {
    this.entries = entries;
    for (const size of entries.values()) this.total += size;
  }

  get count(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.total;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Size without marking the blob used. */
  peek(key: string): number | undefined {
    return this.entries.get(key);
  }

  /** Size, marking the blob most recently used; undefined when it is not indexed. */
  touch(key: string): number | undefined {
    const size = this.entries.get(key);
    if (size === undefined) return undefined;
    this.entries.delete(key);
    this.entries.set(key, size);
    return size;
  }

  /** Indexes a blob as the most recently used (replacing an entry of the same key). */
  add(key: string, size: number): void {
    this.remove(key);
    this.entries.set(key, size);
    this.total += size;
  }

  /** Size of the entry removed, or undefined when there was none. */
  remove(key: string): number | undefined {
    const size = this.entries.get(key);
    if (size === undefined) return undefined;
    this.entries.delete(key);
    this.total -= size;
    return size;
  }

  /** The least recently used key. */
  oldest(): string | undefined {
    for (const key of this.entries.keys()) return key;
    return undefined;
  }

  /** Every entry, oldest first; live (an entry used meanwhile comes again at the end). */
  oldestFirst(): IterableIterator<[string, number]> {
    return this.entries.entries();
  }
}
