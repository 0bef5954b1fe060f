/**
 * Appends chunks to a file in the background: one writev at a time, of whatever queued
 * while the previous one ran. A fill's upstream reads no longer wait for each chunk's
 * write to come back from the thread pool (on this project's 2-core VM a cold fill was
 * bound by that round trip: the main thread sat idle 63% of a 170 MiB/s fill).
 */
import type { FileHandle } from 'node:fs/promises';

export class QueuedWriter {
  private readonly handle: FileHandle;
  private readonly maxQueued: number;
  private readonly onWritten: () => void;
  private queue: Buffer[] = [];
  /** Bytes queued or being written. */
  private queued = 0;
  private inFlight = 0;
  private writing = false;
  private error: Error | undefined;
  private waiters: Array<() => boolean> = [];
  /** Bytes from the start of the file that are written (readable), contiguous. */
  written = 0;

  /** `onWritten` runs after each write, when `written` has grown. */
  constructor(handle: FileHandle, maxQueued: number, onWritten: () => void) {
    this.handle = handle;
    this.maxQueued = maxQueued;
    this.onWritten = onWritten;
  }

  /**
   * Queues a chunk (kept by reference: do not change it); throws the error of a failed
   * write. True when the queue is over its bound: pause the source until `drained()`.
   */
  push(chunk: Buffer): boolean {
    if (this.error) throw this.error;
    this.queue.push(chunk);
    this.queued += chunk.length;
    this.kick();
    return this.queued > this.maxQueued;
  }

  /** Resolves once the queue is within its bound again; rejects with a write error. */
  drained(): Promise<void> {
    return this.until(() => this.queued <= this.maxQueued);
  }

  /** Resolves when every queued chunk is written; rejects with the write error if one failed. */
  flush(): Promise<void> {
    return this.until(() => this.queued === 0 && !this.writing);
  }

  /** Drops what is queued and resolves once no write is in flight (the file may then be closed). */
  async stop(): Promise<void> {
    this.queue = [];
    this.queued = this.inFlight;
    if (this.writing) await this.until(() => !this.writing).catch(() => undefined);
  }

  private until(done: () => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (this.error && !this.writing) reject(this.error);
        else if (done()) resolve();
        else return false;
        return true;
      };
      if (!check()) this.waiters.push(check);
    });
  }

  private wake(): void {
    this.waiters = this.waiters.filter((check) => !check());
  }

  private kick(): void {
    if (this.writing || this.queue.length === 0 || this.error) return;
    const batch = this.queue;
    this.queue = [];
    let bytes = 0;
    for (const b of batch) bytes += b.length;
    this.writing = true;
    this.inFlight = bytes;
    this.handle.writev(batch, this.written).then(
      () => {
        this.writing = false;
        this.inFlight = 0;
        this.written += bytes;
        this.queued -= bytes;
        this.onWritten();
        this.kick();
        this.wake();
      },
      (err: Error) => {
        this.writing = false;
        this.inFlight = 0;
        this.error = err;
        this.wake();
      },
    );
  }
}
