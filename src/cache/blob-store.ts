/**
 * Committed blobs on disk, indexed in memory by digest with their sizes, and the disk
 * budget of the whole cache: committed blobs, the bytes charged by other stores (the
 * manifests) and the space held by fills in progress together stay within `maxSize`;
 * least recently used blobs are evicted to make room. Knows digests, files and sizes only.
 */
import type { Writable } from 'node:stream';
import { mkdir, readdir, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import { parseDigest, type Digest } from '../oci/grammar.js';
import { commitFile } from './atomic-file.js';
import type { FillSpace } from './fill.js';
import type { CacheLayout } from './layout.js';
import { OpenFiles, type OpenFile, type OpenFilesOptions } from './open-files.js';
import { pumpFile, type SyncReads } from './pump.js';

export interface BlobStoreOptions {
  /** Bytes the cache may hold on disk (blobs, charged bytes, fills in progress); the least recently used blobs go beyond it. */
  maxSize: number;
  /** Largest blob kept; larger ones are streamed to their readers and not kept. */
  maxBlobSize: number;
  /** fsync a blob before it is renamed into place. */
  fsync: boolean;
  /** Seconds a read on the event loop may take before a copy goes to the thread pool (0: always the pool). */
  syncReadMax: number;
  /** Descriptors of cached blobs kept open between requests. */
  openFiles: OpenFilesOptions;
}

export interface BlobStoreEvents {
  /** Bytes counted against the budget (blobs, charged, held for fills) and committed blobs. */
  onSizeChange(bytes: number, count: number): void;
  onEvict(): void;
  /** A copy's read was slower than `syncReadMax`: the page cache did not have the blob. */
  onSlowRead(): void;
}

export interface OpenBlob {
  readonly size: number;
  /**
   * Writes bytes [start, end) of the blob to `dest` and ends it; `done` once `dest` is over.
   * The file stays readable even if it is evicted meanwhile.
   */
  sendTo(dest: Writable, start: number, end: number, done: (err: Error | undefined) => void): void;
  /** Lets the file go (once the copy is done, or instead of one). */
  close(): void;
}

/** An index entry: an object, so a re-commit of a digest replaces (and disposes) the old one. */
interface Entry {
  readonly size: number;
}

export class BlobStore {
  private readonly layout: CacheLayout;
  private readonly index: LRUCache<string, Entry>;
  private readonly maxSize: number;
  private readonly maxBlobSize: number;
  /** Bytes of committed blobs (files on disk; the index counts an empty blob as 1). */
  private blobBytes = 0;
  /** Bytes other stores charged (the manifests on disk). */
  private charged = 0;
  /** Bytes held for fills in progress. */
  private held = 0;
  /** Unlinks of evicted blobs not yet done (start-up waits for them). */
  private readonly removing = new Set<Promise<void>>();
  private readonly events: BlobStoreEvents;
  private readonly fsync: boolean;
  private readonly syncReads: SyncReads | undefined;
  private readonly files: OpenFiles;

  constructor(layout: CacheLayout, options: BlobStoreOptions, events: BlobStoreEvents) {
    this.layout = layout;
    this.fsync = options.fsync;
    this.events = events;
    this.syncReads = options.syncReadMax > 0 ? { maxNs: options.syncReadMax * 1e9, onSlow: () => events.onSlowRead() } : undefined;
    this.files = new OpenFiles(options.openFiles);
    this.maxSize = options.maxSize;
    this.maxBlobSize = Math.min(options.maxBlobSize, options.maxSize);
    this.index = new LRUCache<string, Entry>({
      maxSize: options.maxSize,
      sizeCalculation: (entry) => Math.max(1, entry.size),
      dispose: (entry, key, reason) => {
        this.blobBytes -= entry.size;
        // 'set' replaces an entry after a re-fill of the same file; only evictions remove files.
        if (reason !== 'evict' && reason !== 'delete') return;
        this.files.drop(key);
        const digest = parseDigest(key);
        if (digest) {
          const removed: Promise<void> = unlink(this.layout.blobPath(digest)).then(
            () => void this.removing.delete(removed),
            () => void this.removing.delete(removed),
          );
          this.removing.add(removed);
        }
        if (reason === 'evict') this.events.onEvict();
      },
    });
  }

  /**
   * Creates the directories, drops fills a crash left behind, removes what is not a blob
   * (or is larger than what is kept) and indexes the rest, oldest first; what the budget
   * cannot hold is evicted, so it holds after a restart. Charge other stores first.
   */
  async init(): Promise<void> {
    await rm(this.layout.tmp, { recursive: true, force: true });
    await mkdir(this.layout.tmp, { recursive: true });
    await mkdir(this.layout.blobs, { recursive: true });
    const found: Array<{ key: string; size: number; mtime: number }> = [];
    const stray: string[] = [];
    for (const algorithm of await readdir(this.layout.blobs)) {
      const algDir = join(this.layout.blobs, algorithm);
      const prefixes = await readdir(algDir).catch(() => undefined);
      if (!prefixes) stray.push(algDir);
      for (const prefix of prefixes ?? []) {
        const prefixDir = join(algDir, prefix);
        const names = await readdir(prefixDir).catch(() => undefined);
        if (!names) stray.push(prefixDir);
        for (const hex of names ?? []) {
          const digest = parseDigest(`${algorithm}:${hex}`);
          const path = join(prefixDir, hex);
          const st = digest && this.layout.blobPath(digest) === path ? await stat(path).catch(() => undefined) : undefined;
          if (digest && st?.isFile() && st.size <= this.maxBlobSize) found.push({ key: digest.value, size: st.size, mtime: st.mtimeMs });
          else stray.push(path);
        }
      }
    }
    for (const path of stray) await rm(path, { recursive: true, force: true });
    found.sort((a, b) => a.mtime - b.mtime);
    for (const f of found) this.indexBlob(f.key, f.size);
    this.makeRoom(0);
    await Promise.all(this.removing);
    this.report();
  }

  private report(): void {
    this.events.onSizeChange(this.used, this.index.size);
  }

  /** Bytes counted against the budget. */
  private get used(): number {
    return this.blobBytes + this.charged + this.held;
  }

  /** Evicts least recently used blobs until `extra` more bytes fit; false when even an empty index leaves no room. */
  private makeRoom(extra: number): boolean {
    while (this.used + extra > this.maxSize && this.index.size > 0) this.index.pop();
    return this.used + extra <= this.maxSize;
  }

  private indexBlob(key: string, size: number): void {
    const entry = { size };
    this.index.set(key, entry);
    if (this.index.peek(key) === entry) this.blobBytes += size;
  }

  /**
   * Holds `bytes` of the budget for a fill, evicting to make room; undefined when the
   * blob is larger than what is kept or the fills in progress leave no room.
   */
  reserve(bytes: number): FillSpace | undefined {
    if (bytes > this.maxBlobSize || !this.makeRoom(bytes)) return undefined;
    let mine = bytes;
    this.held += mine;
    this.report();
    return {
      grow: (to) => {
        if (to <= mine) return true;
        if (to > this.maxBlobSize || !this.makeRoom(to - mine)) return false;
        this.held += to - mine;
        mine = to;
        this.report();
        return true;
      },
      release: () => {
        this.held -= mine;
        mine = 0;
        this.report();
      },
    };
  }

  /** Counts `bytes` another store put on disk (a manifest) against the budget. */
  charge(bytes: number): void {
    this.charged += bytes;
    this.makeRoom(0);
    this.report();
  }

  has(digest: Digest): boolean {
    return this.index.has(digest.value);
  }

  /**
   * Opens a committed blob, or undefined on a miss. Marks it recently used. With
   * event-loop reads on, a descriptor not yet open is opened synchronously too: for a
   * blob whose inode is cached that takes microseconds, where a thread-pool round trip
   * is a wake-up of another CPU. Time to first byte of a cached blob on a kept-alive
   * TLS connection (curl, 35 requests): 0.77-1.04 ms before, 0.57-0.77 after.
   */
  async open(digest: Digest): Promise<OpenBlob | undefined> {
    if (this.index.get(digest.value) === undefined) return undefined;
    const path = this.layout.blobPath(digest);
    let file: OpenFile;
    try {
      file = this.syncReads ? this.files.openNow(digest.value, path) : await this.files.openLater(digest.value, path);
    } catch (err) {
      // Out of descriptors (or an I/O error) says nothing about the file: it stays indexed.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      // Removed behind our back (or evicted between the lookup and the open): a miss.
      this.index.delete(digest.value);
      this.report();
      return undefined;
    }
    const { fd, size } = file;
    return { size, sendTo: (dest, start, end, done) => pumpFile(fd, start, end, dest, done, this.syncReads), close: () => file.release() };
  }

  /** Closes the descriptors kept open; copies still running keep theirs until they end. */
  close(): void {
    this.files.close();
  }

  /** Size of a committed blob without opening it. */
  sizeOf(digest: Digest): number | undefined {
    return this.index.peek(digest.value)?.size;
  }

  /** Moves a verified fill into place and indexes it in the space held for it (which may evict older blobs). */
  async commit(digest: Digest, tempPath: string, size: number, space: FillSpace): Promise<void> {
    await commitFile(tempPath, this.layout.blobPath(digest), this.fsync);
    // The path names a new file now: let go of a kept descriptor of the one it replaced, so its space comes back.
    this.files.drop(digest.value);
    space.release();
    this.indexBlob(digest.value, size);
    this.makeRoom(0);
    this.report();
  }

  tempPath(digest: Digest): string {
    return this.layout.tempPath(`${digest.algorithm}-${digest.hex}`);
  }
}
