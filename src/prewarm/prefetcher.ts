/**
 * One image into the cache without a client: its manifest (for an index, the manifests
 * of the wanted platforms) through the origin's manifest service, then every blob
 * (configs and layers, each once) through its blob service into a sink that discards,
 * so the cache's single flight, verification and budget apply as for a pull, and a blob
 * already cached costs nothing. Blobs are fetched one after the other: the link to the
 * centre is the zone's, and a pull running meanwhile should not wait behind a prefetch.
 */
import type { StoredManifest } from '../cache/manifest-store.js';
import type { Digest } from '../oci/grammar.js';
import type { Reference } from '../oci/request.js';
import type { BlobService } from '../proxy/blob-service.js';
import type { ManifestService } from '../proxy/manifest-service.js';
import { discardSink } from './discard-sink.js';
import { manifestContents, type BlobRef } from './manifest-contents.js';
import { platformWanted, showPlatform, type Platform } from './platforms.js';
import { EMPTY_TALLY, type ProgressEvent, type Tally } from './progress.js';

/** An origin as a prefetch reads it: as the edge itself, with no client's Authorization. */
export interface PrefetchOrigin {
  readonly host: string;
  readonly manifests: Pick<ManifestService, 'get'>;
  readonly blobs: Pick<BlobService, 'get'>;
}

export interface PrefetchTarget {
  readonly origin: PrefetchOrigin;
  readonly name: string;
  readonly reference: Reference;
  /** As the user or the event named it, for reports. */
  readonly image: string;
}

export type BlobResult = 'fetched' | 'cached' | 'failed';

export interface PrefetcherDeps {
  /** Whether the cache holds the blob now (committed). */
  readonly cached: (digest: Digest) => boolean;
  readonly onBlob: (result: BlobResult) => void;
}

/** A nested index (an index of indexes) is followed this deep, no deeper. */
const MAX_DEPTH = 3;
/** A progress line per this fraction of a blob, and never more often than per MIN_STEP bytes. */
const STEPS = 40;
const MIN_STEP = 64 * 1024;

const describe = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export class Prefetcher {
  private readonly deps: PrefetcherDeps;

  constructor(deps: PrefetcherDeps) {
    this.deps = deps;
  }

  /** Never rejects: what failed is in the events and the tally. `signal`: no further blob is started once it aborts (those left count as failed). */
  async run(target: PrefetchTarget, platforms: readonly Platform[], emit: (e: ProgressEvent) => void, signal?: AbortSignal): Promise<Tally> {
    const { image } = target;
    let resolved: { top: StoredManifest; blobs: BlobRef[]; platforms: string[] };
    try {
      resolved = await this.resolve(target, platforms);
    } catch (err) {
      emit({ event: 'image_failed', image, error: describe(err) });
      return { ...EMPTY_TALLY, imagesFailed: 1 };
    }
    const { top, blobs } = resolved;
    emit({ event: 'manifest', image, digest: top.digest, mediaType: top.mediaType, platforms: resolved.platforms, blobs: blobs.map((b) => ({ digest: b.digest.value, size: b.size })) });
    let tally: Tally = { ...EMPTY_TALLY, blobs: blobs.length };
    for (const [i, blob] of blobs.entries()) {
      // Nobody is there to be told blob by blob (the edge is stopping, or the client left): counted only.
      if (signal?.aborted) {
        tally = { ...tally, failed: tally.failed + blobs.length - i };
        break;
      }
      const result = await this.blob(target, blob, emit);
      this.deps.onBlob(result);
      if (result === 'fetched') tally = { ...tally, fetched: tally.fetched + 1, fetchedBytes: tally.fetchedBytes + blob.size };
      else if (result === 'cached') tally = { ...tally, cached: tally.cached + 1 };
      else tally = { ...tally, failed: tally.failed + 1 };
    }
    return tally;
  }

  private async resolve(target: PrefetchTarget, platforms: readonly Platform[]): Promise<{ top: StoredManifest; blobs: BlobRef[]; platforms: string[] }> {
    const blobs = new Map<string, BlobRef>();
    const chosen: string[] = [];
    const walk = async (reference: Reference, depth: number): Promise<StoredManifest> => {
      const manifest = await this.manifest(target, reference);
      const contents = manifestContents(manifest.mediaType, manifest.bytes);
      if (!contents) throw new Error(`manifest ${manifest.digest} is not JSON`);
      if (contents.kind === 'image') {
        for (const b of contents.blobs) blobs.set(b.digest.value, b);
        return manifest;
      }
      if (depth >= MAX_DEPTH) throw new Error(`manifest ${manifest.digest}: indexes nested deeper than ${MAX_DEPTH}`);
      for (const entry of contents.manifests) {
        if (!platformWanted(platforms, entry.platform)) continue;
        if (entry.platform) chosen.push(showPlatform(entry.platform));
        await walk({ kind: 'digest', digest: entry.digest }, depth + 1);
      }
      return manifest;
    };
    const top = await walk(target.reference, 1);
    if (chosen.length === 0 && platforms.length > 0 && blobs.size === 0) throw new Error(`the index has none of the platforms ${platforms.map(showPlatform).join(', ')}`);
    return { top, blobs: [...blobs.values()], platforms: [...new Set(chosen)] };
  }

  private async manifest(target: PrefetchTarget, reference: Reference): Promise<StoredManifest> {
    const result = await target.origin.manifests.get({ name: target.name, reference, accepted: undefined, acceptHeader: undefined, authorization: undefined });
    // 'pass' is a schema1 tag: the edge never keeps those, so there is nothing to warm.
    if (result.kind !== 'stored') throw new Error('a schema1 manifest: not cached by the edge, nothing to prefetch');
    return result.manifest;
  }

  private async blob(target: PrefetchTarget, blob: BlobRef, emit: (e: ProgressEvent) => void): Promise<BlobResult> {
    const { image } = target;
    const digest = blob.digest.value;
    const { size } = blob;
    if (this.deps.cached(blob.digest)) {
      emit({ event: 'blob', image, digest, state: 'done', size, cached: true });
      return 'cached';
    }
    emit({ event: 'blob', image, digest, state: 'started', size });
    try {
      const body = await target.origin.blobs.get({ name: target.name, digest: blob.digest, range: undefined, authorization: undefined });
      const sink = discardSink(Math.max(MIN_STEP, Math.ceil(size / STEPS)), (bytes) => emit({ event: 'blob', image, digest, state: 'bytes', bytes, size }));
      await new Promise<void>((resolve, reject) => body.send(sink, (err) => (err ? reject(err) : resolve())));
      const cached = body.source === 'cache';
      emit({ event: 'blob', image, digest, state: 'done', size, cached });
      return cached ? 'cached' : 'fetched';
    } catch (err) {
      emit({ event: 'blob', image, digest, state: 'failed', error: describe(err) });
      return 'failed';
    }
  }
}
