/**
 * Descriptors of committed blob files kept open between requests, as nginx's
 * `open_file_cache max=N inactive=T`: a cache hit then costs no open, fstat and close.
 *
 * Why: on this project's hypervisor each system call is dear. With one keep-alive
 * client on a small cached blob, open, close and fstat took 19% of the edge's time
 * (`--cpu-prof`, wrk -c1), and a warm pull asks for every layer on a new connection.
 *
 * Safe because a blob file never changes once committed: a descriptor reads the same
 * bytes for as long as it is open, even after the file is unlinked. The store drops a
 * key when it evicts or deletes the blob; a descriptor still in use is closed when its
 * last user lets go, so an unlinked file's space comes back then. A file unlinked from
 * outside the process (`registry-edge cache verify` removing a damaged blob, `cache rm`)
 * is found within a second by its link count and its descriptor dropped, so the bytes
 * verify condemned stop being served.
 */
import { close, closeSync, fstat, fstatSync, open, openSync } from 'node:fs';
import { LRUCache } from 'lru-cache';

/** A blob file opened for reading: its descriptor, its size, and how to let it go (once). */
export interface OpenFile {
  readonly fd: number;
  readonly size: number;
  release(): void;
}

export interface OpenFilesOptions {
  /** Idle descriptors kept; 0: every open is its own and is closed on release. */
  readonly max: number;
  /** Seconds an unused descriptor stays open. */
  readonly idleSeconds: number;
}

interface Entry {
  readonly fd: number;
  readonly size: number;
  users: number;
  /** Out of the cache (evicted, idle too long, or its blob deleted): closed once unused. */
  dropped: boolean;
}

/** How often kept descriptors are checked for files unlinked behind the store's back. */
const UNLINKED_CHECK_MS = 1_000;

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already closed: nothing to release.
  }
}

function openNow(path: string): Entry {
  const fd = openSync(path, 'r');
  try {
    return { fd, size: fstatSync(fd).size, users: 0, dropped: false };
  } catch (err) {
    closeQuietly(fd);
    throw err;
  }
}

function openLater(path: string): Promise<Entry> {
  return new Promise((resolve, reject) => {
    open(path, 'r', (err, fd) => {
      if (err) return reject(err);
      fstat(fd, (statErr, st) => {
        if (!statErr) return resolve({ fd, size: st.size, users: 0, dropped: false });
        close(fd, () => reject(statErr));
      });
    });
  });
}

export class OpenFiles {
  private readonly lru: LRUCache<string, Entry> | undefined;
  private readonly sweep: NodeJS.Timeout | undefined;

  constructor(options: OpenFilesOptions) {
    if (options.max <= 0) return;
    const idleMs = Math.max(1, Math.round(options.idleSeconds * 1000));
    this.lru = new LRUCache<string, Entry>({
      max: options.max,
      ttl: idleMs,
      updateAgeOnGet: true,
      dispose: (entry) => {
        entry.dropped = true;
        if (entry.users === 0) closeQuietly(entry.fd);
      },
    });
    // lru-cache finds stale entries only when asked: one timer closes them, not one per entry.
    this.sweep = setInterval(() => this.sweepOnce(), Math.min(idleMs, UNLINKED_CHECK_MS));
    this.sweep.unref();
  }

  /** Idle past their time, or unlinked by another process: dropped. */
  private sweepOnce(): void {
    const lru = this.lru;
    if (!lru) return;
    lru.purgeStale();
    for (const [key, entry] of lru.entries()) {
      let linked: boolean;
      try {
        linked = fstatSync(entry.fd).nlink > 0;
      } catch {
        linked = false;
      }
      if (!linked) lru.delete(key);
    }
  }

  /** Opens on the event loop (open and fstat are synchronous on a miss). */
  openNow(key: string, path: string): OpenFile {
    const cached = this.lru?.get(key);
    return this.use(key, cached ?? openNow(path), cached !== undefined);
  }

  /** Opens through the thread pool on a miss. */
  async openLater(key: string, path: string): Promise<OpenFile> {
    const cached = this.lru?.get(key);
    return this.use(key, cached ?? (await openLater(path)), cached !== undefined);
  }

  /** The file behind `key` is gone or replaced: no new user gets the old descriptor. */
  drop(key: string): void {
    this.lru?.delete(key);
  }

  /** Closes the idle descriptors and stops the sweep; those in use close on release. */
  close(): void {
    clearInterval(this.sweep);
    this.lru?.clear();
  }

  private use(key: string, entry: Entry, cached: boolean): OpenFile {
    if (!this.lru) entry.dropped = true;
    else if (!cached) this.lru.set(key, entry);
    entry.users++;
    let released = false;
    return {
      fd: entry.fd,
      size: entry.size,
      release: () => {
        if (released) return;
        released = true;
        entry.users--;
        if (entry.users === 0 && entry.dropped) closeQuietly(entry.fd);
      },
    };
  }
}
