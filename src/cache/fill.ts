/**
 * One upstream fetch of one blob, written to a temp file while it is hashed, and read
 * by any number of followers while it lands. The fill is committed (fsync'd, renamed to
 * its digest's name) only when the bytes hash to the digest and the file holds every one
 * of them; otherwise nothing is kept. Bytes that fail the hash destroy every reader, so no
 * client ever completes a response with wrong bytes: each reader holds back its last byte
 * until the fill is verified. When the blob cannot be kept (a write failed, the cache is
 * not writable, no room in the budget) the fill streams on to its readers from memory.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { fstatSync } from 'node:fs';
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

export type FillFailure = 'digest_mismatch' | 'size_mismatch' | 'upstream_error' | 'source_refused' | 'write_error' | 'not_kept';

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

/** Bytes of the cache budget held for a fill while it lands. */
export interface FillSpace {
  /** Grows the hold to `bytes` (a fill of unknown size); false when the budget cannot give it. */
  grow(bytes: number): boolean;
  /** Gives the hold back (once; later calls do nothing). */
  release(): void;
}

export interface FillHooks {
  /** Holds `bytes` of the cache budget for this fill, or undefined: the blob is streamed to its readers and not kept. */
  reserve(bytes: number): FillSpace | undefined;
  /**
   * Moves the verified temp file into the store (taking over `space`); the fill is done
   * when this resolves, with what to call once its readers have let go of the file (the
   * store does not evict the blob under them until then).
   */
  commit(tempPath: string, size: number, space: FillSpace): Promise<() => void>;
  /** A write to the cache failed (the fill goes on uncached). */
  onWriteError(err: Error): void;
  onBytes(n: number): void;
}

/** Bytes of upstream chunks waiting for the temp file before the upstream reads pause. */
const MAX_QUEUED_WRITES = 4 * 1024 * 1024;

/**
 * Bytes of the latest upstream chunks kept for readers a little behind the fill (a client
 * reading in bursts): sent from memory instead of a thread-pool read of the temp file.
 */
const RECENT_BYTES = 2 * 1024 * 1024;

/** An uncached fill keeps in memory what its slowest reader has not sent; past this the upstream reads pause. */
const MAX_UNSENT = 8 * 1024 * 1024;

/**
 * The upstream body is never paused this close to its announced end. undici 7 asserts
 * (and the process dies) when the upstream closes the connection while the parser is
 * paused on a body's last bytes (nodejs/undici#5360); the last MiB is taken into memory
 * instead, so a pause always leaves more of the body on the socket.
 */
const NEVER_PAUSED_TAIL = 1024 * 1024;

/** A fill of unknown size holds budget in steps of this as it grows. */
const GROW_STEP = 16 * 1024 * 1024;

/** Where one reader of the fill is (at least): chunks before every reader's mark may go. */
interface ReaderMark {
  position: number;
}

export class Fill extends EventEmitter {
  readonly digest: Digest;
  /** The temp file, or undefined when the fill is not kept from the start (the cache cannot be written). */
  private readonly tempPath: string | undefined;
  private handle: FileHandle | undefined;
  private refs = 1; // the writer's own reference
  /** Tells the store, once the committed file has no reader left here, that it may be evicted. */
  private readersGone: (() => void) | undefined;
  /** verified: every byte is in and hashes right, so readers may finish while the file is made durable and committed. */
  private state: 'starting' | 'filling' | 'verified' | 'committed' | 'failed' = 'starting';
  private failure: Error | undefined;
  /** Bytes received, hashed and handed to the writer (readers may be sent the latest from `recent`). */
  private received = 0;
  /** Writes the temp file behind the upstream reads while the blob is being kept; undefined once it is not. */
  private writer: QueuedWriter | undefined;
  /** Why the blob is not kept, once it is not (the fill streams on to its readers). */
  private notKept: FillError | undefined;
  /** Bytes readable from the temp file once nothing more is written to it. */
  private fileEnd = 0;
  private space: FillSpace | undefined;
  private spaceBytes = 0;
  private body: Readable | undefined;
  private paused = false;
  private readonly readers = new Set<ReaderMark>();
  /**
   * The chunks that landed last, with their offsets (newest at the end): at least
   * RECENT_BYTES of them, every chunk not yet in the file, and when the blob is not kept,
   * every chunk a reader has yet to send. Readers near the fill are sent bytes from here.
   */
  private readonly recent: Array<{ offset: number; chunk: Buffer }> = [];
  private recentBytes = 0;
  private announced: number | undefined;
  /** Resolves with the announced size once the source answered; rejects if it refused. */
  readonly ready: Promise<number | undefined>;
  /** Settles when the fill is committed or has failed. */
  readonly done: Promise<void>;

  constructor(digest: Digest, tempPath: string | undefined, source: () => Promise<FillSource>, hooks: FillHooks, fsync: boolean) {
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

  /**
   * Whether a new request may join: not when an uncached fill has dropped bytes its
   * readers sent, and not once it has failed (its readers share the failure; a request
   * arriving after it, before its cleanup is done, starts a fill of its own).
   */
  get joinable(): boolean {
    return this.state !== 'failed' && this.covers(0);
  }

  private async run(
    source: () => Promise<FillSource>,
    hooks: FillHooks,
    fsync: boolean,
    readyResolve: (size: number | undefined) => void,
    readyReject: (err: Error) => void,
  ): Promise<void> {
    // The temp file is opened before the upstream is asked: once its answer is here, nothing
    // may be awaited before the body is read (nodejs/undici#5360, see NEVER_PAUSED_TAIL).
    let handle: FileHandle | undefined;
    const tempPath = this.tempPath;
    if (tempPath !== undefined) {
      try {
        handle = await open(tempPath, 'wx+');
      } catch (err) {
        hooks.onWriteError(err as Error);
        this.notKept = new FillError('write_error', `cannot create temp file: ${(err as Error).message}; the blob is streamed, not kept`, err);
      }
    } else {
      this.notKept = new FillError('not_kept', 'the cache is not writable; the blob is streamed, not kept');
    }
    let src: FillSource;
    try {
      src = await source();
    } catch (err) {
      if (handle && tempPath !== undefined) await discard(handle, tempPath);
      const failure = new FillError('source_refused', (err as Error).message, err);
      this.fail(failure);
      readyReject(failure);
      return;
    }
    this.announced = src.size;
    this.body = src.body;
    const writer = handle && tempPath !== undefined ? this.keep(handle, tempPath, src.size, hooks) : undefined;
    this.state = 'filling';
    readyResolve(src.size);
    const hash = createHash(this.digest.algorithm);
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
          if (this.writer !== undefined && this.received > this.spaceBytes) this.growSpace();
          if (this.writer !== undefined) {
            let full = false;
            try {
              full = this.writer.push(chunk);
            } catch (err) {
              this.writeFailed(err as Error, hooks);
            }
            if (full) {
              this.pauseBody();
              this.writer.drained().then(this.resumeBody, this.resumeBody);
            }
          } else if (this.unsent() > MAX_UNSENT) {
            this.pauseBody();
          }
          this.emit('progress');
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
      if (writer === undefined || this.writer === undefined || handle === undefined || tempPath === undefined || this.space === undefined) {
        throw this.notKept ?? new FillError('not_kept', 'the blob is streamed, not kept');
      }
      await writer.flush();
      if (fsync) await handle.datasync();
      // What is committed must be what is on disk, not only what was hashed.
      // fstat of an open descriptor needs no disk: on the loop, not one more thread-pool round trip before the rename.
      const onDisk = fstatSync(handle.fd).size;
      if (onDisk !== this.received || writer.written !== this.received) {
        throw new FillError('write_error', `the temp file holds ${onDisk} of the ${this.received} bytes hashed`);
      }
      this.readersGone = await hooks.commit(tempPath, this.received, this.space);
      this.state = 'committed';
    } catch (err) {
      src.body.destroy();
      // No write may be in flight when the file is closed and unlinked.
      await writer?.stop();
      // Once verified, an error is an fsync, stat or rename that failed: the cache's failure, not the upstream's.
      const cacheFailed = this.state === 'verified' && !(err instanceof FillError);
      const failure = err instanceof FillError ? err : new FillError(cacheFailed ? 'write_error' : 'upstream_error', (err as Error).message, err);
      if (cacheFailed) hooks.onWriteError(err as Error);
      // Verified bytes are right: readers finish them; only the cache entry is lost.
      if (this.state === 'verified') this.failure = failure;
      else this.fail(failure);
      if (tempPath !== undefined && handle) await unlink(tempPath).catch(() => undefined);
    } finally {
      this.space?.release();
      await this.release();
    }
  }

  /** Starts keeping the blob in `handle` if the budget has room for it; otherwise the file goes and the fill streams. */
  private keep(handle: FileHandle, tempPath: string, size: number | undefined, hooks: FillHooks): QueuedWriter | undefined {
    const space = hooks.reserve(size ?? 0);
    if (!space) {
      this.notKept = new FillError('not_kept', `no room in cache.maxsize for ${size ?? 'an unknown number of'} bytes; the blob is streamed, not kept`);
      // Not awaited: the body must be read from now on.
      void discard(handle, tempPath);
      return undefined;
    }
    this.handle = handle;
    this.space = space;
    this.spaceBytes = size ?? 0;
    this.writer = new QueuedWriter(handle, MAX_QUEUED_WRITES, () => this.emit('progress'), (err) => this.writeFailed(err, hooks));
    return this.writer;
  }

  /** A fill of unknown size outgrew its hold: more budget, or the blob is not kept. */
  private growSpace(): void {
    const want = this.received + GROW_STEP;
    if (this.space?.grow(want)) {
      this.spaceBytes = want;
      return;
    }
    this.stopWriting(new FillError('not_kept', `the blob outgrew the room cache.maxsize has (${this.received} bytes so far); streamed, not kept`));
  }

  private writeFailed(err: Error, hooks: FillHooks): void {
    if (this.writer === undefined) return;
    hooks.onWriteError(err);
    this.stopWriting(new FillError('write_error', `cache write failed: ${err.message}; the blob is streamed, not kept`, err));
  }

  /**
   * From here the blob is not kept: nothing more is written, the temp file goes (readers
   * that have it open still read what it holds) and later chunks stay in memory until
   * every reader has sent them.
   */
  private stopWriting(why: FillError): void {
    const writer = this.writer;
    if (writer === undefined) return;
    this.writer = undefined;
    this.notKept = why;
    this.fileEnd = writer.written;
    if (this.tempPath !== undefined) void unlink(this.tempPath).catch(() => undefined);
    this.resumeBody();
    this.emit('progress');
  }

  private pauseBody(): void {
    if (this.paused || this.body === undefined) return;
    if (this.announced !== undefined && this.announced - this.received <= NEVER_PAUSED_TAIL) return;
    this.paused = true;
    this.body.pause();
  }

  /** Resumes the upstream reads once what they waited for is within bounds again. */
  private readonly resumeBody = (): void => {
    if (!this.paused) return;
    if (this.writer !== undefined ? !this.writer.belowBound : this.unsent() > MAX_UNSENT / 2) return;
    this.paused = false;
    this.body?.resume();
  };

  /** Bytes received that the slowest reader has not sent yet (0 with no reader). */
  private unsent(): number {
    return this.received - this.slowest();
  }

  private slowest(): number {
    let min = this.received;
    for (const r of this.readers) if (r.position < min) min = r.position;
    return min;
  }

  private remember(offset: number, chunk: Buffer): void {
    this.recent.push({ offset, chunk });
    this.recentBytes += chunk.length;
    const inFile = this.writer?.written ?? this.fileEnd;
    const sent = this.writer === undefined ? this.slowest() : 0;
    for (let first = this.recent[0]; first !== undefined; first = this.recent[0]) {
      const end = first.offset + first.chunk.length;
      const readFromFile = end <= inFile && this.recentBytes - first.chunk.length >= RECENT_BYTES;
      if (!readFromFile && end > sent) break;
      this.recent.shift();
      this.recentBytes -= first.chunk.length;
    }
  }

  /** Whether every byte from `start` on can still be had: from the file up to where it is readable, from memory after. */
  private covers(start: number): boolean {
    if (this.state === 'starting') return true;
    const fileUpTo = this.handle === undefined ? 0 : this.writer !== undefined ? this.writer.written : this.fileEnd;
    const memoryFrom = this.recent[0]?.offset ?? this.received;
    return memoryFrom <= Math.max(start, fileUpTo);
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
      this.readersGone?.();
      await handle.close().catch(() => undefined);
    }
  }

  /** A reader let go: the slowest may have gone, and an uncached fill with no reader left has no one to stream to. */
  private readerGone(mark: ReaderMark): void {
    this.readers.delete(mark);
    if (this.writer !== undefined) return;
    if (this.readers.size === 0 && this.state === 'filling') {
      this.body?.destroy(new FillError('not_kept', 'every reader of an uncached fill went away'));
      return;
    }
    this.resumeBody();
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
    if ((this.state === 'committed' && !this.handle) || !this.covers(start)) return undefined;
    const handle = this.handle;
    this.refs += 1;
    const mark: ReaderMark = { position: start };
    this.readers.add(mark);
    const stopAt = (): number | undefined => end ?? (this.complete ? this.received : this.announced);
    const feed: Feed = {
      // A fill that never had a file serves from memory only (readable() stays 0).
      fd: handle?.fd ?? -1,
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
      // The file grows only while the blob is kept.
      growing: () => !this.complete && this.writer !== undefined,
      landed: (position) => {
        mark.position = position;
        if (this.paused && this.writer === undefined) this.resumeBody();
        // A reader behind every chunk kept reads the file: no walk over the (up to ~6 MiB of) chunks.
        if (position < (this.recent[0]?.offset ?? 0)) return undefined;
        for (let i = this.recent.length - 1; i >= 0; i--) {
          const r = this.recent[i];
          if (r === undefined || position >= r.offset + r.chunk.length) return undefined;
          if (position >= r.offset) return r.chunk.subarray(position - r.offset);
        }
        return undefined;
      },
      readable: () => (handle === undefined ? 0 : (this.writer?.written ?? this.fileEnd)),
      watch: (wake) => {
        this.on('progress', wake);
        return () => this.off('progress', wake);
      },
    };
    return (dest, done) =>
      pump(feed, start, dest, (err) => {
        this.readerGone(mark);
        void this.release();
        done(err);
      });
  }
}

/** Closes and removes a temp file that will not be written. */
async function discard(handle: FileHandle, path: string): Promise<void> {
  await handle.close().catch(() => undefined);
  await unlink(path).catch(() => undefined);
}
