/**
 * What a prefetch reports as it goes: the lines of POST /prefetch's NDJSON answer,
 * which `registry-edge prefetch` draws, and what the notification queue logs and counts.
 */

export type ProgressEvent =
  /** The image's manifest (and, for an index, the chosen platforms' manifests) resolved: these blobs follow. */
  | { readonly event: 'manifest'; readonly image: string; readonly digest: string; readonly mediaType: string; readonly platforms: readonly string[]; readonly blobs: ReadonlyArray<{ readonly digest: string; readonly size: number }> }
  | { readonly event: 'blob'; readonly image: string; readonly digest: string; readonly state: 'started'; readonly size: number }
  /** Bytes of the blob read so far (every few per cent of it, not every chunk). */
  | { readonly event: 'blob'; readonly image: string; readonly digest: string; readonly state: 'bytes'; readonly bytes: number; readonly size: number }
  /** `cached`: it was in the cache already and nothing was fetched. */
  | { readonly event: 'blob'; readonly image: string; readonly digest: string; readonly state: 'done'; readonly size: number; readonly cached: boolean }
  | { readonly event: 'blob'; readonly image: string; readonly digest: string; readonly state: 'failed'; readonly error: string }
  /** The image could not be resolved (unknown tag, refused, the centre unreachable): none of its blobs were tried. */
  | { readonly event: 'image_failed'; readonly image: string; readonly error: string }
  | ({ readonly event: 'summary' } & Tally);

export interface Tally {
  readonly blobs: number;
  /** Blobs fetched from the origin now, and their bytes. */
  readonly fetched: number;
  readonly fetchedBytes: number;
  /** Blobs that were in the cache already. */
  readonly cached: number;
  readonly failed: number;
  /** Images whose manifest could not be resolved. */
  readonly imagesFailed: number;
}

export const EMPTY_TALLY: Tally = { blobs: 0, fetched: 0, fetchedBytes: 0, cached: 0, failed: 0, imagesFailed: 0 };

export function addTallies(a: Tally, b: Tally): Tally {
  return {
    blobs: a.blobs + b.blobs,
    fetched: a.fetched + b.fetched,
    fetchedBytes: a.fetchedBytes + b.fetchedBytes,
    cached: a.cached + b.cached,
    failed: a.failed + b.failed,
    imagesFailed: a.imagesFailed + b.imagesFailed,
  };
}
