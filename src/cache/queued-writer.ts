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
  private readonly onFailed: (err: Error) => void;
  private queue: Buffer[] = [];
  /** Bytes queued or being written. */
  private queued = 0;
  private inFlight = 0;
  private writing = false;
  private error: Error | undefined;
  private waiters: Array<() => boolean> = [];
  /** Bytes from the start of the file that are written (readable), contiguous. */
  written = 0;

  /** `onWritten` runs after each write, when `written` has grown; `onFailed` once, when a write failed (nothing more is written). */
  constructor(handle: FileHandle, maxQueued: number, onWritten: () => void, onFailed: (err: Error) => void = () => undefined) {
    this.handle = handle;
    this.maxQueued = maxQueued;
    this.onWritten = onWritten;
    this.onFailed = onFailed;
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

  /** True while the queue is within its bound. */
  get belowBound(): boolean {
    return this.queued <= this.maxQueued;
  }

  /** Resolves once the queue is within its bound again; rejects with a write error. */
  drained(): Promise<void> {
    return this.until(() => this.belowBound);
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
      ({ bytesWritten }) => {
        this.writing = false;
        this.inFlight = 0;
        this.written += bytesWritten;
        this.queued -= bytesWritten;
        // A short write (the disk filling up) is not success: the rest goes again, and a
        // write that took nothing fails, as the next one would with ENOSPC.
        if (bytesWritten < bytes) {
          if (bytesWritten === 0) return this.failed(Object.assign(new Error(`short write: 0 of ${bytes} bytes at offset ${this.written}`), { code: 'ENOSPC' }));
          this.queue = [...rest(batch, bytesWritten), ...this.queue];
        }
        this.onWritten();
        this.kick();
        this.wake();
      },
      (err: Error) => {
        this.writing = false;
        this.inFlight = 0;
        this.failed(err);
      },
    );
  }

  private failed(err: Error): void {
    this.error = err;
    this.onFailed(err);
    this.wake();
  }
}

/** What is left of `batch` after its first `skip` bytes (views, no copies). */
function rest(batch: Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  let left = skip;
  for (const b of batch) {
    if (left >= b.length) {
      left -= b.length;
      continue;
    }
    out.push(left > 0 ? b.subarray(left) : b);
    left = 0;
  }
  return out;
}
