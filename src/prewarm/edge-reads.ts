/**
 * An origin as a prefetch reads it: with the edge's own upstream credentials, for no
 * client. In public mode those are the origin's own services; in the other modes the
 * origin's services forward the client's credentials (and a prefetch has no client), so
 * the prefetch gets services of its own over the same upstream client, stores and
 * membership, whose remote asks as the edge.
 */
import { LocalRegistry } from '../cache/local-registry.js';
import type { OriginConfig } from '../config/schema.js';
import type { Origin, SharedParts } from '../origins.js';
import { sharedFacts, zoneMembership } from '../zone/shared-facts.js';
import { BlobService } from '../proxy/blob-service.js';
import { ManifestService } from '../proxy/manifest-service.js';
import { RemoteRegistry } from '../upstream/remote-registry.js';
import type { PrefetchOrigin } from './prefetcher.js';

const ms = (seconds: number): number => Math.round(seconds * 1000);

export function readsAsEdge(origin: Origin, config: OriginConfig, shared: SharedParts): PrefetchOrigin {
  if (config.auth.mode === 'public') return { host: origin.host, manifests: origin.manifests, blobs: origin.blobs };
  const { metrics } = shared;
  const remote = new RemoteRegistry(origin.upstream, {
    credentials: (scope) => ({ kind: 'edge', scope }),
    maxManifestBytes: shared.edge.cache.manifest_max_bytes,
    onDigestMismatch: () => metrics.digestMismatches.inc({ kind: 'manifest' }),
  });
  const manifestStore = shared.manifestStore.of(config.host);
  const local = new LocalRegistry(shared.blobCache.store, manifestStore);
  const { tag_ttl: tagTtl, max_stale: maxStale, revalidate_timeout: revalidateTimeout } = config.cache;
  const facts = sharedFacts(shared.zone, config.host, { tagMs: ms(tagTtl), membersMs: ms(shared.edge.zone.facts_ttl), decisionsMs: ms(config.auth.check.ttl) });
  const membership = zoneMembership(shared.membership.of(config.host), facts);
  const policy = { tagTtlMs: ms(tagTtl), maxStaleMs: ms(maxStale), revalidateTimeoutMs: ms(revalidateTimeout), membership, origin: config.host, zone: facts };
  return {
    host: origin.host,
    manifests: new ManifestService(manifestStore, local, remote, policy, metrics, shared.log),
    blobs: new BlobService(shared.blobCache, local, remote, membership, shared.zoneFills),
  };
}
