/**
 * Blobs: local first, never revalidated (a digest names its bytes forever); on a miss,
 * one fill from the upstream that every concurrent request for the digest follows.
 */
import type { Writable } from 'node:stream';
import type { BlobCache } from '../cache/blob-cache.js';
import type { OpenBlob } from '../cache/blob-store.js';
import { FillError, type Fill, type FillSource } from '../cache/fill.js';
import type { LocalRegistry } from '../cache/local-registry.js';
import type { Digest } from '../oci/grammar.js';
import { RegistryError } from '../oci/errors.js';
import { resolveRange, type RangeSpec } from '../oci/range.js';
import { unlessAbsent } from '../reads/registry-reader.js';
import type { UpstreamTrace } from '../upstream/client.js';
import type { RemoteRegistry } from '../upstream/remote-registry.js';
import type { RepositoryMembership } from '../cache/membership.js';
import type { Flight, ZoneFills } from '../zone/zone-fills.js';

export interface BlobBody {
  readonly source: 'cache' | 'fill';
  /** Total size of the blob; undefined while a fill from an upstream that sent no length runs. */
  readonly size: number | undefined;
  /** The bytes sent: [start, end), or the whole blob when `range` is undefined. */
  readonly range: { readonly start: number; readonly end: number } | undefined;
  /**
   * Writes the bytes to `dest` and ends it; `done` once `dest` is over, with the error
   * if it is cut short (a failing source destroys `dest`: never a complete answer with
   * missing bytes). Releases what the body holds open. Call once.
   */
  readonly send: (dest: Writable, done: (err: Error | undefined) => void) => void;
}

export interface BlobRequest {
  readonly name: string;
  readonly digest: Digest;
  readonly range: RangeSpec | undefined;
  readonly authorization: string | undefined;
  /** The client request this read is for, carried to the upstream requests it makes. */
  readonly trace?: UpstreamTrace | undefined;
}

const unsatisfiable = (size: number): RegistryError =>
  new RegistryError('RANGE_INVALID', 'requested range not satisfiable', { size });

export class BlobService {
  private readonly cache: BlobCache;
  private readonly local: LocalRegistry;
  private readonly remote: RemoteRegistry;
  private readonly membership: RepositoryMembership;
  private readonly zone: ZoneFills;
  /** digest -> the repository its fill asks the upstream under, until the upstream has answered. */
  private readonly fetching = new Map<string, string>();

  /** `local` reads the same store `cache` fills; `zone` says whether a miss is fetched from the origin or streamed from a peer. */
  constructor(cache: BlobCache, local: LocalRegistry, remote: RemoteRegistry, membership: RepositoryMembership, zone: ZoneFills) {
    this.cache = cache;
    this.zone = zone;
    this.local = local;
    this.remote = remote;
    this.membership = membership;
  }

  /** The repository the fill of `digest` asks the upstream under, until the upstream has answered (the gate's follower rule). */
  fillingUnder(digest: string): string | undefined {
    return this.fetching.get(digest);
  }

  /** The upstream accepted a DELETE of the blob under `name`: the next read there asks it again (the bytes stay cached for other repositories). */
  forgetDeleted(name: string, digest: Digest): Promise<void> {
    return this.membership.remove(name, [digest.value]);
  }

  /** The gate has admitted `req` (its client and, for content held under another repository, its membership). */
  async get(req: BlobRequest): Promise<BlobBody> {
    // Two rounds at most: a follower whose leader was refused (another client's
    // credentials) tries again with its own, and a follower that arrives just as a
    // fill commits finds the blob in the store.
    for (let round = 0; round < 3; round++) {
      // Made only for a miss this request leads: a hit allocates nothing more than before.
      let flight: Flight | undefined;
      const found = await this.cache.lookup(req.digest, () => (flight = this.zone.flight(req.digest, { origin: () => this.fetch(req), confirm: () => this.confirm(req) })).source());
      if (found.kind === 'fill' && found.leader) {
        const { fill } = found;
        // The source has run by the time the fill settles.
        void fill.done.then(() => flight?.settled(fill));
        // Set before any other request can run (lookup returned in this same microtask chain);
        // by the time `ready` settles the answer is known and membership holds it if it was yes.
        const digest = req.digest.value;
        this.fetching.set(digest, req.name);
        const forget = (): void => void (this.fetching.get(digest) === req.name && this.fetching.delete(digest));
        fill.ready.then(forget, forget);
      }
      if (found.kind === 'hit') return hitBody(found.blob, req.range);
      try {
        const body = await fillBody(found.fill, req.range);
        if (body) return body;
      } catch (err) {
        const refused = err instanceof FillError && err.reason === 'source_refused';
        if (refused && !found.leader) continue;
        throw refused ? err.cause : err;
      }
    }
    // Only when, on every round, the fill joined could no longer serve this request (an uncached fill past its first bytes, or one committed and evicted at once).
    throw new RegistryError('UNAVAILABLE', 'blob could not be read from the cache', { digest: req.digest.value });
  }

  /** Size of a blob for HEAD: the store, a fill in flight, or the upstream's HEAD. */
  async head(req: BlobRequest): Promise<{ size: number | undefined; source: 'cache' | 'fill' | 'upstream' }> {
    const stored = await unlessAbsent(this.local.statBlob(req.name, req.digest));
    if (stored !== undefined) return { size: stored, source: 'cache' };
    const fill = this.cache.inflightFill(req.digest);
    const announced = fill ? await fill.ready.catch(() => undefined) : undefined;
    if (announced !== undefined) return { size: announced, source: 'fill' };
    // The upstream's 200 says the repository holds the blob: remembered.
    const size = await this.remote.statBlob(req.name, req.digest, req.authorization, req.trace);
    await this.membership.add(req.name, [req.digest.value]);
    return { size, source: 'upstream' };
  }

  private fetch(req: BlobRequest): Promise<FillSource> {
    return this.remote.openBlob(req.name, req.digest, req.authorization, undefined, req.trace).then((source) => {
      // Not awaited: the fill reads the body from here on (an unread body under a closing
      // connection kills the process in undici 7, nodejs/undici#5360); the fact is in memory now.
      void this.membership.add(req.name, [req.digest.value]);
      return source;
    });
  }

  /** A fill from a zone peer: the origin has not said this repository holds the blob; its HEAD does, as for a HEAD from a client. */
  private async confirm(req: BlobRequest): Promise<void> {
    if (this.membership.has(req.digest.value, req.name)) return;
    await this.remote.statBlob(req.name, req.digest, req.authorization);
    await this.membership.add(req.name, [req.digest.value]);
  }
}

/** A committed blob as the body for `requested` (the whole blob when undefined). */
export function hitBody(blob: OpenBlob, requested: RangeSpec | undefined): BlobBody {
  const range = requested ? resolveRange(requested, blob.size) : undefined;
  if (range === 'unsatisfiable') {
    blob.close();
    throw unsatisfiable(blob.size);
  }
  const send: BlobBody['send'] = (dest, done) =>
    blob.sendTo(dest, range?.start ?? 0, range?.end ?? blob.size, (err) => {
      blob.close();
      done(err);
    });
  return { source: 'cache', size: blob.size, range, send };
}

/**
 * A reader following `fill` as the body for `requested`, once its source answered
 * (rejecting as the fill failed). Undefined when the fill can no longer serve from the
 * range's start (committed and closed meanwhile): look again.
 */
export async function fillBody(fill: Fill, requested: RangeSpec | undefined): Promise<BlobBody | undefined> {
  const size = await fill.ready;
  const range = requested && size !== undefined ? resolveRange(requested, size) : undefined;
  if (range === 'unsatisfiable') throw unsatisfiable(size ?? 0);
  const send = fill.openReader(range?.start ?? 0, range?.end);
  return send && { source: 'fill', size, range, send };
}
