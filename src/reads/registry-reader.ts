/**
 * The one shape reads have, whoever holds the bytes: the local cache, a remote origin,
 * and (later) the zone's peers. As in distribution's registry/proxy (a local and a
 * remote BlobStatter/BlobProvider) and spegel's Store. Absent things reject with an
 * error whose `status` is 404 (the local store's own, or the origin's answer as it came),
 * so a refusal (401, 403) is never mistaken for absence. Policy (which reader first,
 * single-flight, tag TTL, membership) is the caller's, never the reader's.
 */
import type { Digest } from '../oci/grammar.js';

/** The bytes of one manifest, exactly as pushed, checked against `digest`. */
export interface ManifestBytes {
  readonly digest: string;
  readonly mediaType: string;
  readonly bytes: Buffer;
}

/** What a tag names now; `digest` undefined when the reader answered without saying. */
export interface ResolvedTag {
  readonly digest: string | undefined;
}

/** Bytes [start, end) of a blob. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/**
 * `Blob` is what an opened blob is for that reader (an open cache file, an origin's body):
 * each is read the way its hot path reads fastest, so no adapter sits between chunks.
 * `authorization` is the client's Authorization header; whose credentials go further is
 * the reader's business.
 */
export interface RegistryReader<Blob> {
  /** The blob's size under `name` (undefined when the reader holds it without knowing its length). */
  statBlob(name: string, digest: Digest, authorization: string | undefined): Promise<number | undefined>;
  /** The blob's bytes under `name`, all of them or `range`. */
  openBlob(name: string, digest: Digest, authorization: string | undefined, range?: ByteRange): Promise<Blob>;
  /** The digest `tag` names in `name` now. */
  resolveTag(name: string, tag: string, authorization: string | undefined): Promise<ResolvedTag>;
  /** The manifest `digest` names, its exact bytes, under `name`. */
  getManifest(name: string, digest: Digest, authorization: string | undefined): Promise<ManifestBytes>;
}

/** A reader's answer, or undefined where it said "absent" (404); anything else still rejects. */
export async function unlessAbsent<T>(answer: Promise<T>): Promise<T | undefined> {
  try {
    return await answer;
  } catch (err) {
    if ((err as { status?: unknown }).status === 404) return undefined;
    throw err;
  }
}
