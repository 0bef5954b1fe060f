/**
 * Committed blobs on disk, indexed in memory by digest with their sizes, and the disk
 * budget of the whole cache: committed blobs, the bytes charged by other stores (the
 * manifests) and the space held by fills in progress together stay within `maxSize`;
 * least recently used blobs are evicted to make room, never one being read. The index
 * outlives a restart as a snapshot (blob-index-snapshot.ts). Knows digests, files and sizes only.
 */
import type { Writable } from 'node:stream';
import { statSync } from 'node:fs';
import { mkdir, readdir, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDigest, type Digest } from '../oci/grammar.js';
import { commitFile } from './atomic-file.js';
import { BlobIndex } from './blob-index.js';
import { dirIdOf, quietDirs, scanBlobs } from './blob-index-scan.js';
import { readSnapshot, writeSnapshot } from './blob-index-snapshot.js';
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
  /** Seconds between writes of the index snapshot (each only if the index changed); undefined: at close only. */
  snapshotInterval?: number;
  /** The directory is shared with the other workers of this host (workers: N). */
  shared?: SharedDirectory;
}

/**
 * How a store takes part when the workers of one host share its directory: one of them,
 * the owner, keeps the budget (its index knows every blob, it evicts and writes the
 * snapshot); the others tell it what they commit, use and charge, and forget what it
 * evicts. A blob another worker committed is found on disk at its first use here.
 */
export interface SharedDirectory {
  readonly owner: boolean;
  /** Sends an event to the owner (from the others) or to the others (from the owner). */
  tell(event: DirectoryEvent): void;
}

export type DirectoryEvent =
  | { readonly kind: 'added'; readonly key: string; readonly size: number }
  | { readonly kind: 'used'; readonly keys: readonly string[] }
  | { readonly kind: 'charged'; readonly bytes: number }
  | { readonly kind: 'evicted'; readonly key: string };

/** How often a worker that does not own the directory tells the owner which blobs it served (their place in the LRU order). */
const USES_FLUSH_MS = 1_000;

export interface BlobStoreEvents {
  /** Bytes counted against the budget (blobs, charged, held for fills) and committed blobs. */
  onSizeChange(bytes: number, count: number): void;
  onEvict(): void;
  /** A copy's read was slower than `syncReadMax`: the page cache did not have the blob. */
  onSlowRead(): void;
  /** The index is loaded (init is about to resolve). */
  onIndexLoad?(load: IndexLoad): void;
  /** A snapshot of `blobs` entries was written, or failed with `err`. */
  onIndexSave?(blobs: number, seconds: number, err: Error | undefined): void;
}

export interface OpenBlob {
  readonly size: number;
  /**
   * Writes bytes [start, end) of the blob to `dest` and ends it; `done` once `dest` is over.
   * The blob is not evicted while it is open (and stays readable if another process removes it).
   */
  sendTo(dest: Writable, start: number, end: number, done: (err: Error | undefined) => void): void;
  /** Lets the file go (once the copy is done, or instead of one). */
  close(): void;
}

/** How a start found the index: from the snapshot checked against the directory, or by a walk of every file. */
export interface IndexLoad {
  readonly from: 'snapshot' | 'walk';
  /** Why there was no usable snapshot (walk only). */
  readonly problem?: string;
  readonly blobs: number;
  /** Blob directories read (the others had not changed since the snapshot). */
  readonly dirsRead: number;
  /** Files the snapshot did not list (every file, for a walk), entries whose file was gone, paths removed. */
  readonly unlisted: number;
  readonly missing: number;
  readonly removed: number;
  readonly seconds: number;
}

/** How many holders each key has (readers of a blob, changes of a directory). */
class Holds {
  private readonly counts = new Map<string, number>();

  get size(): number {
    return this.counts.size;
  }

  has(key: string): boolean {
    return this.counts.has(key);
  }

  keys(): IterableIterator<string> {
    return this.counts.keys();
  }

  /** One more holder of `key`; the function returned lets go (once). */
  hold(key: string): () => void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const left = (this.counts.get(key) ?? 1) - 1;
      if (left > 0) this.counts.set(key, left);
      else this.counts.delete(key);
    };
  }
}

export class BlobStore {
  private readonly layout: CacheLayout;
  private index = new BlobIndex();
  private readonly maxSize: number;
  private readonly maxBlobSize: number;
  /** Bytes other stores charged (the manifests on disk). */
  private charged = 0;
  /** Bytes held for fills in progress. */
  private held = 0;
  /**
   * Blob directories (by id) with a rename not yet indexed or an unlink of an evicted blob
   * not yet done: a snapshot does not vouch for them (a crash would leave them unlike it).
   */
  private readonly changing = new Holds();
  /** Readers of each blob open now: an eviction passes them over, so no file is unlinked under its reader. */
  private readonly readers = new Holds();
  /** Unlinks of evicted blobs not yet done (start-up waits for them). */
  private readonly removing = new Set<Promise<void>>();
  private readonly events: BlobStoreEvents;
  private readonly fsync: boolean;
  private readonly syncReads: SyncReads | undefined;
  private readonly files: OpenFiles;
  private readonly snapshotMs: number | undefined;
  private snapshotTimer: NodeJS.Timeout | undefined;
  /** The index changed (a use, a commit, an eviction) since the snapshot on disk was written. */
  private dirty = false;
  private saving: Promise<void> | undefined;
  private readonly shared: SharedDirectory | undefined;
  /** Blobs served since the owner was last told (workers that do not own the directory). */
  private readonly uses = new Set<string>();
  private usesTimer: NodeJS.Timeout | undefined;
  /** Charges before init are the manifests already on disk, which the owner counts itself. */
  private started = false;

  constructor(layout: CacheLayout, options: BlobStoreOptions, events: BlobStoreEvents) {
    this.layout = layout;
    this.fsync = options.fsync;
    this.events = events;
    this.syncReads = options.syncReadMax > 0 ? { maxNs: options.syncReadMax * 1e9, onSlow: () => events.onSlowRead() } : undefined;
    this.files = new OpenFiles(options.openFiles);
    this.maxSize = options.maxSize;
    this.maxBlobSize = Math.min(options.maxBlobSize, options.maxSize);
    this.snapshotMs = options.snapshotInterval === undefined ? undefined : Math.max(1, Math.round(options.snapshotInterval * 1000));
    this.shared = options.shared;
  }

  /** Only a worker that does not own a shared directory leaves the budget to another. */
  private get follows(): boolean {
    return this.shared !== undefined && !this.shared.owner;
  }

  /** What another worker of the host told this one (see SharedDirectory). */
  heard(event: DirectoryEvent): void {
    switch (event.kind) {
      case 'added':
        if (this.follows || this.index.has(event.key)) return;
        this.index.add(event.key, event.size);
        this.dirty = true;
        break;
      case 'used':
        if (this.follows) return;
        for (const key of event.keys) this.index.touch(key);
        this.dirty = true;
        return;
      case 'charged':
        if (this.follows) return;
        this.charged += event.bytes;
        break;
      case 'evicted':
        if (!this.follows) return;
        this.index.remove(event.key);
        this.files.drop(event.key);
        break;
    }
    this.makeRoom(0);
    this.report();
  }

  /**
   * A blob this index does not list yet, when another worker of the host may have
   * committed it: indexed from its file (a stat, once per blob and worker).
   */
  private adopt(digest: Digest): number | undefined {
    if (!this.shared) return undefined;
    const st = statSync(this.layout.blobPath(digest), { throwIfNoEntry: false });
    if (!st?.isFile()) return undefined;
    this.index.add(digest.value, st.size);
    this.dirty = true;
    this.makeRoom(0);
    this.report();
    return st.size;
  }

  /**
   * Creates the directories, drops fills a crash left behind, loads the index snapshot
   * and checks it against blobs/ (without one: stats every file, oldest first), removes
   * what is not a blob (or is larger than what is kept); what the budget cannot hold is
   * evicted, least recently used first, so it holds after a restart. Charge other stores first.
   */
  async init(): Promise<void> {
    const started = performance.now();
    await rm(this.layout.tmp, { recursive: true, force: true });
    await mkdir(this.layout.tmp, { recursive: true });
    await mkdir(this.layout.blobs, { recursive: true });
    this.started = true;
    if (this.follows) {
      // The owner loads and checks the directory; this worker finds blobs as it is asked for them.
      this.usesTimer = setInterval(() => this.tellUses(), USES_FLUSH_MS);
      this.usesTimer.unref();
      return;
    }
    await mkdir(this.layout.index, { recursive: true });
    for (const name of await readdir(this.layout.index)) {
      if (join(this.layout.index, name) !== this.layout.indexSnapshot) await rm(join(this.layout.index, name), { recursive: true, force: true });
    }
    const snapshot = await readSnapshot(this.layout.indexSnapshot);
    const listed = 'entries' in snapshot ? snapshot : undefined;
    const scan = await scanBlobs(this.layout, listed, this.maxBlobSize);
    this.index = new BlobIndex(scan.entries);
    this.makeRoom(0);
    await Promise.all(this.removing);
    this.report();
    // A snapshot that said what the directories hold, and vouched for each, needs no rewrite until the index changes.
    this.dirty ||= !listed || scan.dirsRead + scan.unlisted + scan.missing + scan.removed > 0;
    this.events.onIndexLoad?.({
      from: listed ? 'snapshot' : 'walk',
      ...('problem' in snapshot ? { problem: snapshot.problem } : {}),
      blobs: this.index.count,
      dirsRead: scan.dirsRead,
      unlisted: scan.unlisted,
      missing: scan.missing,
      removed: scan.removed,
      seconds: (performance.now() - started) / 1000,
    });
    if (this.snapshotMs !== undefined) {
      this.snapshotTimer = setInterval(() => void this.saveIndex(), this.snapshotMs);
      this.snapshotTimer.unref();
    }
    if (this.dirty) void this.saveIndex();
  }

  /**
   * Writes the index snapshot if the index changed since the last one (one write at a
   * time; a failure is reported and the next interval tries again).
   */
  saveIndex(): Promise<void> {
    if (this.follows) return Promise.resolve();
    if (this.saving || !this.dirty) return this.saving ?? Promise.resolve();
    this.dirty = false;
    this.saving = this.writeIndex().finally(() => {
      this.saving = undefined;
    });
    return this.saving;
  }

  private async writeIndex(): Promise<void> {
    const started = performance.now();
    try {
      const dirs = await quietDirs(this.layout, new Set(this.changing.keys()));
      const blobs = await writeSnapshot(dirs, this.index.oldestFirst(), this.layout.indexTempPath(), this.layout.indexSnapshot, this.fsync);
      this.events.onIndexSave?.(blobs, (performance.now() - started) / 1000, undefined);
    } catch (err) {
      this.dirty = true;
      this.events.onIndexSave?.(0, (performance.now() - started) / 1000, err as Error);
    }
  }

  private report(): void {
    this.events.onSizeChange(this.used, this.index.count);
  }

  /** Bytes counted against the budget. */
  private get used(): number {
    return this.index.bytes + this.charged + this.held;
  }

  /** Evicts least recently used blobs until `extra` more bytes fit; false when what is left is being read or held. */
  private makeRoom(extra: number): boolean {
    if (this.follows) return true;
    while (this.used + extra > this.maxSize && this.evictOne());
    return this.used + extra <= this.maxSize;
  }

  /**
   * Evicts the least recently used blob that nobody is reading. One being read is passed
   * over and counts as used now (it is): at most one move per open blob, whatever the size
   * of the cache. False when every blob left is being read.
   */
  private evictOne(): boolean {
    for (let passes = this.readers.size; passes >= 0; passes--) {
      const key = this.index.oldest();
      if (key === undefined) return false;
      if (this.readers.has(key)) {
        this.index.touch(key);
        continue;
      }
      this.index.remove(key);
      this.files.drop(key);
      this.dirty = true;
      const digest = parseDigest(key);
      if (digest) {
        const settled = this.changing.hold(dirIdOf(key));
        const done = (): void => {
          settled();
          this.removing.delete(removed);
        };
        const removed: Promise<void> = unlink(this.layout.blobPath(digest)).then(done, done);
        this.removing.add(removed);
      }
      this.shared?.tell({ kind: 'evicted', key });
      this.events.onEvict();
      return true;
    }
    return false;
  }

  /**
   * Holds `bytes` of the budget for a fill, evicting to make room; undefined when the
   * blob is larger than what is kept or the fills in progress leave no room.
   */
  reserve(bytes: number): FillSpace | undefined {
    if (bytes > this.maxBlobSize || !this.makeRoom(bytes)) return undefined;
    let mine = bytes;
    this.hold(mine);
    return {
      grow: (to) => {
        if (to <= mine) return true;
        if (to > this.maxBlobSize || !this.makeRoom(to - mine)) return false;
        this.hold(to - mine);
        mine = to;
        return true;
      },
      release: () => {
        this.hold(-mine);
        mine = 0;
      },
    };
  }

  /**
   * Bytes held for fills (negative: let go). A worker that does not own a shared
   * directory holds them with the owner too, which makes room for them as for its own.
   */
  private hold(bytes: number): void {
    if (bytes === 0) return;
    this.held += bytes;
    if (this.follows) this.shared?.tell({ kind: 'charged', bytes });
    this.report();
  }

  /** Counts `bytes` another store put on disk (a manifest) against the budget. */
  charge(bytes: number): void {
    if (this.follows && this.started) this.shared?.tell({ kind: 'charged', bytes });
    this.charged += bytes;
    this.makeRoom(0);
    this.report();
  }

  has(digest: Digest): boolean {
    return this.index.has(digest.value) || this.adopt(digest) !== undefined;
  }

  /**
   * Opens a committed blob, or undefined on a miss. Marks it recently used. With
   * event-loop reads on, a descriptor not yet open is opened synchronously too: for a
   * blob whose inode is cached that takes microseconds, where a thread-pool round trip
   * is a wake-up of another CPU. Time to first byte of a cached blob on a kept-alive
   * TLS connection (curl, 35 requests): 0.77-1.04 ms before, 0.57-0.77 after.
   */
  async open(digest: Digest): Promise<OpenBlob | undefined> {
    const key = digest.value;
    if (this.index.touch(key) === undefined && this.adopt(digest) === undefined) return undefined;
    this.dirty = true;
    if (this.follows) this.uses.add(key);
    const path = this.layout.blobPath(digest);
    let file: OpenFile;
    try {
      file = this.syncReads ? this.files.openNow(key, path) : await this.files.openLater(key, path);
    } catch (err) {
      // Out of descriptors (or an I/O error) says nothing about the file: it stays indexed.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      // Removed behind our back (`registry-edge cache rm`, another process): a miss, and out of the index.
      if (this.index.remove(key) !== undefined) this.files.drop(key);
      this.report();
      return undefined;
    }
    const readerGone = this.reading(key);
    const { fd, size } = file;
    return {
      size,
      sendTo: (dest, start, end, done) => pumpFile(fd, start, end, dest, done, this.syncReads),
      close: () => {
        file.release();
        readerGone();
      },
    };
  }

  /**
   * Counts a reader of `key` (not evicted while it has one); the function returned lets
   * go (once): the blob may be evicted again, and room an eviction could not make while it
   * was read is made now.
   */
  private reading(key: string): () => void {
    const release = this.readers.hold(key);
    return () => {
      release();
      if (this.used > this.maxSize) {
        this.makeRoom(0);
        this.report();
      }
    };
  }

  /** Writes the index snapshot and closes the descriptors kept open; copies still running keep theirs until they end. */
  async close(): Promise<void> {
    clearInterval(this.snapshotTimer);
    clearInterval(this.usesTimer);
    this.tellUses();
    this.files.close();
    await this.saving;
    await this.saveIndex();
  }

  /** Size of a committed blob without opening it. */
  sizeOf(digest: Digest): number | undefined {
    return this.index.peek(digest.value) ?? this.adopt(digest);
  }

  private tellUses(): void {
    if (this.uses.size === 0) return;
    this.shared?.tell({ kind: 'used', keys: [...this.uses] });
    this.uses.clear();
  }

  /**
   * Moves a verified fill into place and indexes it in the space held for it (which may
   * evict older blobs). The blob counts as read (not evicted) until the function returned
   * is called: the fill's followers may still be reading its descriptor.
   */
  async commit(digest: Digest, tempPath: string, size: number, space: FillSpace): Promise<() => void> {
    const key = digest.value;
    const settled = this.changing.hold(dirIdOf(key));
    try {
      await commitFile(tempPath, this.layout.blobPath(digest), this.fsync);
    } finally {
      settled();
    }
    // The path names a new file now: let go of a kept descriptor of the one it replaced, so its space comes back.
    this.files.drop(key);
    space.release();
    this.index.add(key, size);
    if (this.follows) this.shared?.tell({ kind: 'added', key, size });
    this.dirty = true;
    const readersGone = this.reading(key);
    this.makeRoom(0);
    this.report();
    return readersGone;
  }

  tempPath(digest: Digest): string {
    return this.layout.tempPath(`${digest.algorithm}-${digest.hex}`);
  }
}
