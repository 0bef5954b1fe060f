/**
 * A bounded queue in memory with a fixed number of workers, as registry:2 keeps its own
 * notification queue: what does not fit is refused at once (the caller counts and logs
 * it), nothing is persisted, and close() drops what waits and lets the running items see
 * their signal abort.
 */
export class WorkQueue<T> {
  private readonly pending: T[] = [];
  private readonly running = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private readonly capacity: number;
  private readonly concurrency: number;
  private readonly work: (item: T, signal: AbortSignal) => Promise<void>;
  private readonly onDepth: (waiting: number) => void;

  /** `work` must not reject (its failures are its own to report). */
  constructor(options: { capacity: number; concurrency: number }, work: (item: T, signal: AbortSignal) => Promise<void>, onDepth: (waiting: number) => void) {
    this.capacity = options.capacity;
    this.concurrency = options.concurrency;
    this.work = work;
    this.onDepth = onDepth;
  }

  get full(): boolean {
    return this.pending.length >= this.capacity;
  }

  /** False when the queue is full or closed: the item was not taken. */
  offer(item: T): boolean {
    if (this.abort.signal.aborted || this.full) return false;
    this.pending.push(item);
    this.onDepth(this.pending.length);
    this.next();
    return true;
  }

  private next(): void {
    while (this.running.size < this.concurrency && this.pending.length > 0 && !this.abort.signal.aborted) {
      const item = this.pending.shift() as T;
      this.onDepth(this.pending.length);
      const run: Promise<void> = this.work(item, this.abort.signal).finally(() => {
        this.running.delete(run);
        this.next();
      });
      this.running.add(run);
    }
  }

  /** Drops what waits, aborts the running items' signal and waits for them to end. */
  async close(): Promise<void> {
    this.abort.abort();
    this.pending.length = 0;
    this.onDepth(0);
    await Promise.all([...this.running]);
  }
}
