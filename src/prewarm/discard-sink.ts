/**
 * Where a prefetched blob's bytes go: nowhere. Reading them through the blob service
 * is what makes the cache fill, verify and commit the blob; the sink only counts, and
 * says so every `step` bytes (not every chunk: a progress bar needs a few dozen).
 */
import { Writable } from 'node:stream';

export function discardSink(step: number, onBytes: (bytes: number) => void): Writable {
  let bytes = 0;
  let reported = 0;
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      if (bytes - reported >= step) {
        reported = bytes;
        onBytes(bytes);
      }
      callback();
    },
  });
}
