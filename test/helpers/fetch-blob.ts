// A streaming blob client for the concurrency tests: hashes the body as it arrives
// and records when the first byte came, so tests can tell streaming from store-and-forward.
import { createHash } from 'node:crypto';
import * as http from 'node:http';

export interface BlobFetch {
  status: number;
  bytes: number;
  digest: string;
  /** Date.now() when the first body byte arrived (0 if none). */
  firstByteAt: number;
  /** The response ended cleanly (a cut transfer gives false). */
  complete: boolean;
  error?: string;
}

export function fetchBlob(url: string, onFirstByte?: () => void): Promise<BlobFetch> {
  return new Promise((resolve) => {
    const result: BlobFetch = { status: 0, bytes: 0, digest: '', firstByteAt: 0, complete: false };
    const hash = createHash('sha256');
    const req = http.get(url, { agent: false }, (res) => {
      result.status = res.statusCode ?? 0;
      res.on('data', (chunk: Buffer) => {
        if (result.bytes === 0) {
          result.firstByteAt = Date.now();
          onFirstByte?.();
        }
        result.bytes += chunk.length;
        hash.update(chunk);
      });
      res.once('end', () => {
        result.complete = res.complete;
        result.digest = `sha256:${hash.digest('hex')}`;
        resolve(result);
      });
      res.once('aborted', () => undefined);
      res.once('error', (err) => {
        result.error = err.message;
        result.digest = `sha256:${hash.digest('hex')}`;
        resolve(result);
      });
    });
    req.once('error', (err) => {
      result.error = err.message;
      resolve(result);
    });
  });
}
