/**
 * Copies bytes of a file to a Writable through a few reused buffers: committed blobs
 * (a fixed range) and fills in flight (a range that grows as the upstream lands, with
 * the chunk that just landed handed over from memory).
 *
 * A read stream allocates a new buffer for every chunk. Serving warm blobs that way
 * allocated ~1 GiB/s of short-lived external memory: V8 answers that with a full
 * mark-compact every few dozen MiB and the kernel with page faults on every fresh
 * buffer, which together cost more CPU than the TLS encryption itself (perf, 8 warm
 * streams: bench/warm-ab.ts). Here a buffer goes back to the pool once the Writable
 * reports it written: `dest` must be done with a chunk when it calls back, as sockets
 * and HTTP responses are (for TLS the bytes are encrypted into OpenSSL's own buffer by
 * then; for plain TCP the kernel has them). A PassThrough is not: it keeps the chunk.
 */
import { read, readSync } from 'node:fs';
import { finished, type Writable } from 'node:stream';

// Measured with npm run bench (read streams, before the pool): 256 KiB reads kept peak RSS ~15 MiB
// lower than 1 MiB at the same TLS throughput; with the pool, 1 MiB reads were no faster (warm-ab).
export const PUMP_CHUNK = 256 * 1024;
/** Bytes one copy may have written but not yet acknowledged: two file chunks, or more of the smaller landed ones. */
const MAX_UNACKED = 2 * PUMP_CHUNK;
/** Idle buffers kept for reuse (16 MiB); more are allocated when many copies run at once and dropped after. */
const POOL_MAX = 64;

const pool: Buffer[] = [];

function takeBuffer(): Buffer {
  // allocUnsafeSlow: a buffer of its own, not a slice of a shared slab.
  return pool.pop() ?? Buffer.allocUnsafeSlow(PUMP_CHUNK);
}

function giveBuffer(buf: Buffer): void {
  if (pool.length < POOL_MAX) pool.push(buf);
}

/**
 * Reading a committed blob on the event loop instead of the thread pool: while a read
 * takes at most `maxNs` (the page cache had it) the next one is synchronous too; after
 * a slower one (the disk was read) the rest of that copy uses the thread pool.
 *
 * Why: a thread-pool read costs a hand-off to a worker and a wake-up of the loop, about
 * three context switches per chunk, which a hypervisor makes dear; a 256 KiB read from
 * the page cache costs ~30 µs (p99 ~100 µs here). 8 warm TLS streams, warm-ab, 5 rounds:
 * 970 against 870 MiB/s and 0.65 against 0.87 CPU s per GiB. nginx reads its cache the
 * same blocking way unless told `aio threads`.
 */
export interface SyncReads {
  readonly maxNs: number;
  /** Called once when a read was slower than `maxNs` and the copy went to the thread pool. */
  onSlow(): void;
}

export class ShortFileError extends Error {
  constructor(position: number, end: number) {
    super(`file ended at byte ${position}, ${end - position} bytes short`);
    this.name = 'ShortFileError';
  }
}

/** Where the bytes come from, as seen from the copy's position. */
export interface Feed {
  readonly fd: number;
  /** The copy must stop with this error (a failed fill). */
  failure(): Error | undefined;
  /** Bytes before this offset may be sent now (they are in the file, or in `landed`). */
  limit(): number;
  /** True once every byte up to the copy's end is sendable and final: end `dest` at `position`. */
  complete(position: number): boolean;
  /** A view of bytes already in memory starting at `position`, if any (read the file otherwise). */
  landed(position: number): Buffer | undefined;
  /** True while the limit may still grow (a fill landing): reads then wait for a whole chunk. */
  growing(): boolean;
  /** Bytes before this offset can be read from the file. */
  readable(): number;
  /** Calls `wake` whenever limit, completion or failure may have changed; returns the unsubscribe. */
  watch(wake: () => void): () => void;
}

/**
 * Writes bytes from `start` on to `dest` as `feed` makes them available, and ends it
 * when the feed is complete. `done` is called once, after `dest` finished or failed and
 * no read is pending (so the caller may close the file). A failure destroys `dest`: the
 * receiver sees a cut transfer, never a short one that looks complete.
 */
export function pump(feed: Feed, start: number, dest: Writable, done: (err: Error | undefined) => void, syncReads?: SyncReads): void {
  let position = start;
  let sync = syncReads;
  let reading = false;
  let unacked = 0;
  let failure: Error | undefined;
  let ended = false;
  let over = false;
  let settled = false;

  const settle = (): void => {
    if (settled || !over || reading) return;
    settled = true;
    unwatch();
    done(failure);
  };

  const fail = (err: Error): void => {
    failure ??= err;
    over = true;
    if (!dest.destroyed) dest.destroy(err);
    settle();
  };

  const write = (chunk: Buffer, pooled: Buffer | undefined): void => {
    position += chunk.length;
    unacked += chunk.length;
    dest.write(chunk, (err) => {
      unacked -= chunk.length;
      // A failed write may leave the buffer referenced by a queue being torn down: not reused.
      if (err) return;
      if (pooled) giveBuffer(pooled);
      step();
    });
  };

  /** A read into `buf` came back with `n` bytes: send them on, or fail the copy if the file ended before `upTo`. */
  const deliver = (buf: Buffer, n: number, upTo: number): void => {
    if (n === 0) {
      giveBuffer(buf);
      return fail(new ShortFileError(position, upTo));
    }
    write(n === buf.length ? buf : buf.subarray(0, n), buf);
    step();
  };

  const readNow = (length: number, upTo: number, s: SyncReads): void => {
    const buf = takeBuffer();
    const begun = process.hrtime.bigint();
    let n: number;
    try {
      n = readSync(feed.fd, buf, 0, length, position);
    } catch (err) {
      giveBuffer(buf);
      return fail(err instanceof Error ? err : new Error(String(err)));
    }
    if (Number(process.hrtime.bigint() - begun) > s.maxNs) {
      sync = undefined;
      s.onSlow();
    }
    deliver(buf, n, upTo);
  };

  const step = (): void => {
    if (over || ended || reading) return;
    const failed = feed.failure();
    if (failed) return fail(failed);
    if (feed.complete(position)) {
      ended = true;
      dest.end();
      return;
    }
    const limit = feed.limit();
    if (position >= limit || unacked >= MAX_UNACKED) return;
    const landed = feed.landed(position);
    if (landed) {
      write(landed.subarray(0, limit - position), undefined);
      step();
      return;
    }
    const upTo = Math.min(limit, feed.readable());
    if (position >= upTo) return;
    if (feed.growing() && upTo - position < PUMP_CHUNK) return;
    const length = Math.min(PUMP_CHUNK, upTo - position);
    if (sync !== undefined && !feed.growing()) return readNow(length, upTo, sync);
    reading = true;
    const buf = takeBuffer();
    read(feed.fd, buf, 0, length, position, (err, n) => {
      reading = false;
      if (over) {
        giveBuffer(buf);
        settle();
        return;
      }
      if (err) return fail(err);
      deliver(buf, n, upTo);
    });
  };

  const unwatch = feed.watch(step);
  // The end of `dest` either way: finished (after end()) or closed early by the receiver.
  finished(dest, (err) => {
    // A socket that ends itself when its peer does "finishes" without error before we ended it.
    if (err ?? !ended) failure ??= err ?? new Error('the destination closed before the copy ended');
    over = true;
    settle();
  });
  step();
}

/** Bytes [start, end) of a file that does not change. */
export function pumpFile(fd: number, start: number, end: number, dest: Writable, done: (err: Error | undefined) => void, syncReads?: SyncReads): void {
  const feed: Feed = {
    fd,
    failure: () => undefined,
    limit: () => end,
    complete: (position) => position >= end,
    landed: () => undefined,
    growing: () => false,
    readable: () => end,
    watch: () => () => undefined,
  };
  pump(feed, start, dest, done, syncReads);
}
