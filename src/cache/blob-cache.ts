/**
 * The blob cache: committed blobs (BlobStore) plus the fills in flight, at most one
 * per digest. Concurrent misses for one digest share one fill, whatever repository
 * or client asked; this is where single-flight lives. While the cache cannot be
 * written, fills stream through without a temp file (followers still share them while
 * the fill still holds the blob's first bytes).
 */
import type { Digest } from '../oci/grammar.js';
import type { BlobStore, OpenBlob } from './blob-store.js';
import { Fill, type FillFailure, type FillSource } from './fill.js';
import type { Writability } from './writability.js';

export interface BlobCacheEvents {
  onFillStart(): void;
  onFillEnd(result: 'committed' | FillFailure, digest: Digest, error: Error | undefined): void;
  onFollower(): void;
  onUpstreamBytes(n: number): void;
}

/** One fill in flight as the status page shows it: how far it is. */
export interface FillProgress {
  readonly digest: string;
  readonly receivedBytes: number;
  /** The size the upstream announced; undefined when it sent none. */
  readonly size: number | undefined;
  /** Date.now() when the fill started. */
  readonly startedAt: number;
}

/** `leader`: this lookup started the fill (its source runs with this caller's request). */
export type Lookup = { kind: 'hit'; blob: OpenBlob } | { kind: 'fill'; fill: Fill; leader: boolean };

export class BlobCache {
  readonly store: BlobStore;
  private readonly inflight = new Map<string, Fill>();
  /** Bytes received and start time of each fill in flight, for snapshots. */
  private readonly progress = new WeakMap<Fill, { received: number; readonly startedAt: number }>();
  private readonly events: BlobCacheEvents;
  private readonly fsync: boolean;
  private readonly writability: Writability;

  constructor(store: BlobStore, fsync: boolean, writability: Writability, events: BlobCacheEvents) {
    this.store = store;
    this.fsync = fsync;
    this.writability = writability;
    this.events = events;
  }

  /**
   * A committed blob, or the fill in flight for it (joined as a follower), or a new
   * fill started from `source` when neither exists.
   */
  async lookup(digest: Digest, source: () => Promise<FillSource>): Promise<Lookup> {
    const blob = await this.store.open(digest);
    if (blob) return { kind: 'hit', blob };
    // No await between the look at the fills in flight and the start of one: single flight.
    return this.follow(digest) ?? { kind: 'fill', fill: this.start(digest, source), leader: true };
  }

  /** A committed blob or the fill in flight for it (joined as a follower); undefined when neither: nothing is started (a zone peer's read). */
  async join(digest: Digest): Promise<Lookup | undefined> {
    const blob = await this.store.open(digest);
    return blob ? { kind: 'hit', blob } : this.follow(digest);
  }

  private follow(digest: Digest): Lookup | undefined {
    const running = this.inflight.get(digest.value);
    if (!running?.joinable) return undefined;
    this.events.onFollower();
    return { kind: 'fill', fill: running, leader: false };
  }

  /** The fill in flight for a digest, if any (for HEAD answers while it runs). */
  inflightFill(digest: Digest): Fill | undefined {
    return this.inflight.get(digest.value);
  }

  /** The fills in flight and how far each is (a copy: for the status page). */
  snapshot(): FillProgress[] {
    return [...this.inflight.values()].map((fill) => {
      const p = this.progress.get(fill);
      return { digest: fill.digest.value, receivedBytes: p?.received ?? 0, size: fill.size, startedAt: p?.startedAt ?? 0 };
    });
  }

  private start(digest: Digest, source: () => Promise<FillSource>): Fill {
    this.events.onFillStart();
    const counted = { received: 0, startedAt: Date.now() };
    const fill = new Fill(
      digest,
      this.writability.writable ? this.store.tempPath(digest) : undefined,
      source,
      {
        reserve: (bytes) => this.store.reserve(bytes),
        commit: (tempPath, size, space) => this.store.commit(digest, tempPath, size, space),
        onWriteError: (err) => this.writability.failed(err),
        onBytes: (n) => {
          counted.received += n;
          this.events.onUpstreamBytes(n);
        },
      },
      this.fsync,
    );
    this.progress.set(fill, counted);
    // Replaces an uncached fill that can no longer take a reader from the start.
    this.inflight.set(digest.value, fill);
    void fill.done.then(() => {
      if (this.inflight.get(digest.value) === fill) this.inflight.delete(digest.value);
      const err = fill.error;
      this.events.onFillEnd((err as { reason?: FillFailure } | undefined)?.reason ?? 'committed', digest, err);
    });
    return fill;
  }

  /** Resolves when every fill in flight has settled (for shutdown). */
  async drain(): Promise<void> {
    await Promise.all([...this.inflight.values()].map((f) => f.done));
  }
}
