/**
 * Copies a byte range of an open file to a Writable through a few reused buffers.
 *
 * A read stream allocates a new buffer for every chunk. Serving warm blobs that way
 * allocated ~1 GiB/s of short-lived external memory: V8 answers that with a full
 * mark-compact every few dozen MiB and the kernel with page faults on every fresh
 * buffer, which together cost more CPU than the TLS encryption itself (perf, 8 warm
 * streams: bench/warm-ab.ts). Here a buffer goes back to the pool once the Writable
 * reports it written (for a TLS socket the bytes are encrypted into OpenSSL's own
 * buffer by then; for a plain socket the kernel has them).
 */
import { read } from 'node:fs';
import { finished, type Writable } from 'node:stream';

export const PUMP_CHUNK = 256 * 1024;
/** Chunks one copy may have written but not yet acknowledged; a third is being read meanwhile. */
const WRITES_IN_FLIGHT = 2;
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

export class ShortFileError extends Error {
  constructor(position: number, end: number) {
    super(`file ended at byte ${position}, ${end - position} bytes short`);
    this.name = 'ShortFileError';
  }
}

/**
 * Writes bytes [start, end) of `fd` to `dest` and ends it. `done` is called once, after
 * `dest` finished or failed and no read is pending (so the caller may close `fd`).
 * A read error destroys `dest`: the receiver sees a cut transfer, never a short one.
 */
export function pumpFile(fd: number, start: number, end: number, dest: Writable, done: (err: Error | undefined) => void): void {
  let position = start;
  let reading = false;
  let writing = 0;
  let failure: Error | undefined;
  let ended = false;
  let over = false;
  let settled = false;

  const settle = (): void => {
    if (settled || !over || reading) return;
    settled = true;
    done(failure);
  };

  const fail = (err: Error): void => {
    failure ??= err;
    over = true;
    if (!dest.destroyed) dest.destroy(err);
    settle();
  };

  // The end of `dest` either way: finished (after end()) or closed early by the client.
  finished(dest, (err) => {
    // A socket that ends itself when its peer does "finishes" without error before we ended it.
    if (err ?? !ended) failure ??= err ?? new Error('the destination closed before the copy ended');
    over = true;
    settle();
  });

  const step = (): void => {
    if (over || ended) return;
    if (position >= end) {
      if (!reading) {
        ended = true;
        dest.end();
      }
      return;
    }
    if (reading || writing >= WRITES_IN_FLIGHT) return;
    reading = true;
    const buf = takeBuffer();
    read(fd, buf, 0, Math.min(PUMP_CHUNK, end - position), position, (err, n) => {
      reading = false;
      if (over) {
        giveBuffer(buf);
        settle();
        return;
      }
      if (err) return fail(err);
      if (n === 0) return fail(new ShortFileError(position, end));
      position += n;
      writing++;
      dest.write(n === buf.length ? buf : buf.subarray(0, n), (werr) => {
        writing--;
        // A failed write may leave the buffer referenced by a queue being torn down: not reused.
        if (werr) return;
        giveBuffer(buf);
        step();
      });
      step();
    });
  };
  step();
}
