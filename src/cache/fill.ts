/**
 * One upstream fetch of one blob, written to a temp file while it is hashed, and read
 * by any number of followers while it lands. The fill is committed (fsync'd, renamed to
 * its digest's name) only when the bytes hash to the digest; otherwise nothing is kept
 * and every reader is destroyed with the error, so no client ever completes a response
 * with wrong bytes: each reader holds back its last byte until the fill is verified.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { finished, type Readable, type Writable } from 'node:stream';
import type { Digest } from '../oci/grammar.js';
import { pump, type Feed } from './pump.js';
import { QueuedWriter } from './queued-writer.js';

/** What the caller gives a fill: the upstream body and its announced size, if any. */
export interface FillSource {
  readonly body: Readable;
  readonly size: number | undefined;
}

export type FillFailure = 'digest_mismatch' | 'size_mismatch' | 'upstream_error' | 'source_refused';

export class FillError extends Error {
  readonly reason: FillFailure;
  /** The error the source threw when it refused (e.g. the upstream's 401), passed to its requester. */
  override readonly cause: unknown;
  constructor(reason: FillFailure, message: string, cause?: unknown) {
    super(message);
    this.name = 'FillError';
    this.reason = reason;
    this.cause = cause;
  }
}

export interface FillHooks {
  /** Moves the verified temp file into the store; the fill is done when this resolves. */
  commit(tempPath: string, size: number): Promise<void>;
  onBytes(n: number): void;
}

/** Bytes of upstream chunks waiting for the temp file before the upstream reads pause. */
const MAX_QUEUED_WRITES = 4 * 1024 * 1024;

/**
 * Bytes of the latest upstream chunks kept for readers a little behind the fill (a client
 * reading in bursts): sent from memory instead of a thread-pool read of the temp file.
 */
const RECENT_BYTES = 2 * 1024 * 1024;

export class Fill extends EventEmitter {
  readonly digest: Digest;
  private readonly tempPath: string;
  private handle: FileHandle | undefined;
  private refs = 1; // the writer's own reference
  /** verified: every byte is in and hashes right, so readers may finish while the file is made durable and committed. */
  private state: 'starting' | 'filling' | 'verified' | 'committed' | 'failed' = 'starting';
  private failure: Error | undefined;
  /** Bytes received, hashed and handed to the writer (readers may be sent the latest from `recent`). */
  private received = 0;
  /** Writes the temp file behind the upstream reads; its `written` bytes can be read back. */
  private writer: QueuedWriter | undefined;
  /**
   * The chunks that landed last (at most RECENT_BYTES, newest at the end), with their offsets:
   * readers within that distance of the fill are sent bytes from memory, not the file.
   */
  private readonly recent: Array<{ offset: number; chunk: Buffer }> = [];
  private recentBytes = 0;
  private announced: number | undefined;
  /** Resolves with the announced size once the source answered; rejects if it refused. */
  readonly ready: Promise<number | undefined>;
  /** Settles when the fill is committed or has failed. */
  readonly done: Promise<void>;

  constructor(digest: Digest, tempPath: string, source: () => Promise<FillSource>, hooks: FillHooks, fsync: boolean) {
    super();
    this.setMaxListeners(0);
    this.digest = digest;
    this.tempPath = tempPath;
    let readyResolve: (size: number | undefined) => void = () => undefined;
    let readyReject: (err: Error) => void = () => undefined;
    this.ready = new Promise((resolve, reject) => {
      readyResolve = resolve;
      readyReject = reject;
    });
    // A refused fill rejects `ready` for followers that may not await it.
    this.ready.catch(() => undefined);
    this.done = this.run(source, hooks, fsync, readyResolve, readyReject);
  }

  get size(): number | undefined {
    return this.complete ? this.received : this.announced;
  }

  private async run(
    source: () => Promise<FillSource>,
    hooks: FillHooks,
    fsync: boolean,
    readyResolve: (size: number | undefined) => void,
    readyReject: (err: Error) => void,
  ): Promise<void> {
    let src: FillSource;
    try {
      src = await source();
    } catch (err) {
      const failure = new FillError('source_refused', (err as Error).message, err);
      this.fail(failure);
      readyReject(failure);
      return;
    }
    try {
      this.handle = await open(this.tempPath, 'wx+');
    } catch (err) {
      src.body.destroy();
      const failure = new FillError('upstream_error', `cannot create temp file: ${(err as Error).message}`, err);
      this.fail(failure);
      readyReject(failure);
      return;
    }
    this.announced = src.size;
    this.state = 'filling';
    readyResolve(src.size);
    const hash = createHash(this.digest.algorithm);
    const writer = new QueuedWriter(this.handle, MAX_QUEUED_WRITES, () => this.emit('progress'));
    this.writer = writer;
    try {
      // 'data' events, not for-await: the async iterator's promise per chunk halved the
      // rate an undici body can be read at here (~750 against ~1700 MiB/s from a local registry).
      await new Promise<void>((resolve, reject) => {
        const body = src.body;
        const stop = (err: Error): void => {
          body.off('data', onData);
          reject(err);
        };
        const onData = (chunk: Buffer): void => {
          if (this.announced !== undefined && this.received + chunk.length > this.announced) {
            return stop(new FillError('size_mismatch', `upstream sent more than the announced ${this.announced} bytes`));
          }
          hash.update(chunk);
          this.remember(this.received, chunk);
          this.received += chunk.length;
          hooks.onBytes(chunk.length);
          let full: boolean;
          try {
            full = writer.push(chunk);
          } catch (err) {
            return stop(err as Error);
          }
          this.emit('progress');
          if (full) {
            body.pause();
            writer.drained().then(() => body.resume(), stop);
          }
        };
        body.on('data', onData);
        finished(body, (err) => (err ? stop(err) : resolve()));
      });
      if (this.announced !== undefined && this.received !== this.announced) {
        throw new FillError('size_mismatch', `upstream sent ${this.received} of ${this.announced} bytes`);
      }
      const actual = hash.digest('hex');
      if (actual !== this.digest.hex) {
        throw new FillError('digest_mismatch', `upstream bytes hash to ${this.digest.algorithm}:${actual}, not ${this.digest.value}`);
      }
      // Clients get their last byte now; the fsync and rename do not hold them up.
      this.state = 'verified';
      this.emit('progress');
      await writer.flush();
      if (fsync) await this.handle.datasync();
      await hooks.commit(this.tempPath, this.received);
      this.state = 'committed';
    } catch (err) {
      src.body.destroy();
      // No write may be in flight when the file is closed and unlinked.
      await writer.stop();
      const failure = err instanceof FillError ? err : new FillError('upstream_error', (err as Error).message, err);
      // Verified bytes are right: readers finish them; only the cache entry is lost.
      if (this.state === 'verified') this.failure = failure;
      else this.fail(failure);
      await unlink(this.tempPath).catch(() => undefined);
    } finally {
      await this.release();
    }
  }

  private remember(offset: number, chunk: Buffer): void {
    this.recent.push({ offset, chunk });
    this.recentBytes += chunk.length;
    while (this.recentBytes - (this.recent[0]?.chunk.length ?? 0) >= RECENT_BYTES) {
      this.recentBytes -= this.recent.shift()?.chunk.length ?? 0;
    }
  }

  private get complete(): boolean {
    return this.state === 'verified' || this.state === 'committed';
  }

  /** The reason the fill failed, once it has. */
  get error(): Error | undefined {
    return this.failure;
  }

  private fail(err: Error): void {
    this.state = 'failed';
    this.failure = err;
    this.emit('progress');
  }

  private async release(): Promise<void> {
    this.refs -= 1;
    if (this.refs === 0 && this.handle) {
      const handle = this.handle;
      this.handle = undefined;
      await handle.close().catch(() => undefined);
    }
  }

  /**
   * A sender of bytes [start, end) of the blob (end undefined: to the end of the blob)
   * that follows the fill as it lands: readers near the fill are sent the chunks that just
   * landed (shared by every follower), late ones read the temp file. Call after `ready`
   * resolved. Undefined when the fill was committed and closed meanwhile: read the store
   * instead. The temp file stays open until the returned function is called and done.
   */
  openReader(start: number, end: number | undefined): ((dest: Writable, done: (err: Error | undefined) => void) => void) | undefined {
    if (this.state === 'failed') throw this.failure;
    if (!this.handle) return undefined;
    const handle = this.handle;
    this.refs += 1;
    const stopAt = (): number | undefined => end ?? (this.complete ? this.received : this.announced);
    const feed: Feed = {
      fd: handle.fd,
      failure: () => (this.state === 'failed' ? this.failure : undefined),
      limit: () => {
        const stop = stopAt();
        // Until the fill is verified, the reader's last byte stays behind.
        const verifiedUpTo = this.complete ? this.received : stop === undefined ? this.received - 1 : Math.min(this.received, stop - 1);
        return stop === undefined ? verifiedUpTo : Math.min(stop, verifiedUpTo);
      },
      complete: (position) => {
        const stop = stopAt();
        return this.complete && stop !== undefined && position >= stop;
      },
      growing: () => !this.complete,
      landed: (position) => {
        for (let i = this.recent.length - 1; i >= 0; i--) {
          const r = this.recent[i];
          if (r === undefined || position >= r.offset + r.chunk.length) return undefined;
          if (position >= r.offset) return r.chunk.subarray(position - r.offset);
        }
        return undefined;
      },
      readable: () => this.writer?.written ?? 0,
      watch: (wake) => {
        this.on('progress', wake);
        return () => this.off('progress', wake);
      },
    };
    return (dest, done) =>
      pump(feed, start, dest, (err) => {
        void this.release();
        done(err);
      });
  }
}
