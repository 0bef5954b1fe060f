/**
 * The edge's Prometheus metrics, in one registry created at start and passed down.
 * Labels are bounded sets (route, result, source, upstream, origin: the configured hosts): never a repository or digest.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface UpstreamHealth {
  readonly origin: string;
  /** The instance's host:port, as the upstream label of registry_edge_upstream_request_duration_seconds. */
  readonly upstream: string;
  readonly up: boolean;
}

export class Metrics {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: 'registry_edge_http_requests_total',
    help: 'Client requests by route, method, status and origin (a host of origins; "" without origins or before one is chosen).',
    labelNames: ['route', 'method', 'status', 'origin'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: 'registry_edge_http_request_duration_seconds',
    help: 'Time from request to the end of the response, by route.',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
    registers: [this.registry],
  });

  readonly cacheRequests = new Counter({
    name: 'registry_edge_cache_requests_total',
    help: 'Cache lookups by kind (blob, manifest, tag), result (hit, miss, follow, revalidated, stale, pass; shared: a tag mapping another replica of the zone confirmed) and origin.',
    labelNames: ['kind', 'result', 'origin'] as const,
    registers: [this.registry],
  });

  readonly servedBytes = new Counter({
    name: 'registry_edge_served_bytes_total',
    help: 'Body bytes sent to clients, by source (cache: a committed file; fill: a fill in progress; upstream: passed through).',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  readonly upstreamBytes = new Counter({
    name: 'registry_edge_upstream_received_bytes_total',
    help: 'Blob bytes received from upstream instances for cache fills.',
    registers: [this.registry],
  });

  readonly fillsInFlight = new Gauge({
    name: 'registry_edge_fills_in_flight',
    help: 'Blob fills currently streaming from an upstream.',
    registers: [this.registry],
  });

  readonly fills = new Counter({
    name: 'registry_edge_fills_total',
    help: 'Blob fills by result (committed, digest_mismatch, size_mismatch, upstream_error, source_refused; write_error: a cache write failed and the blob was streamed uncached; not_kept: streamed uncached because the cache was not writable or the blob had no room in cache.maxsize).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly followers = new Counter({
    name: 'registry_edge_fill_followers_total',
    help: 'Requests that joined a fill already in flight instead of fetching again.',
    registers: [this.registry],
  });

  readonly digestMismatches = new Counter({
    name: 'registry_edge_digest_mismatches_total',
    help: 'Upstream content whose bytes did not hash to the digest it was asked for (nothing was cached).',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly staleServed = new Counter({
    name: 'registry_edge_stale_served_total',
    help: 'Tag mappings served past their TTL because the upstream was unreachable or failing.',
    registers: [this.registry],
  });

  /** What registry_edge_upstream_up reports at each scrape: every origin's instances as its balancer sees them now. */
  #upstreamHealth: () => readonly UpstreamHealth[] = () => [];

  readonly upstreamUp = new Gauge({
    name: 'registry_edge_upstream_up',
    help: 'Upstream instances by origin and upstream (host:port): 1 while requests are sent to it, 0 while it is down (its health check failed, or upstream max_fails within fail_timeout).',
    labelNames: ['origin', 'upstream'] as const,
    registers: [this.registry],
    // With workers: N, up while any worker's checks find it up (each worker checks on its own).
    aggregator: 'max',
    collect: () => {
      this.upstreamUp.reset();
      for (const h of this.#upstreamHealth()) this.upstreamUp.set({ origin: h.origin, upstream: h.upstream }, h.up ? 1 : 0);
    },
  });

  readonly upstreamDuration = new Histogram({
    name: 'registry_edge_upstream_request_duration_seconds',
    help: 'Time to response headers from upstream instances, by upstream, method and status class.',
    labelNames: ['upstream', 'method', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly cacheSize = new Gauge({
    name: 'registry_edge_cache_size_bytes',
    help: 'Bytes counted against cache.maxsize: committed blobs, manifests, and the space held for fills in progress.',
    registers: [this.registry],
    // With workers: N, worker 1 keeps the directory's budget; the others count only what they have used.
    aggregator: 'max',
  });

  readonly cacheMaxBytes = new Gauge({
    name: 'registry_edge_cache_max_bytes',
    help: 'cache.maxsize: the budget registry_edge_cache_size_bytes is held to.',
    registers: [this.registry],
    aggregator: 'max',
  });

  readonly cacheWritable = new Gauge({
    name: 'registry_edge_cache_writable',
    help: '1 while the cache directory takes writes; 0 while a write failed (disk full, read-only) and misses stream through uncached.',
    registers: [this.registry],
    aggregator: 'min',
  });

  readonly cacheBlobs = new Gauge({
    name: 'registry_edge_cache_blobs',
    help: 'Committed blobs in the cache.',
    registers: [this.registry],
    aggregator: 'max',
  });

  readonly evictions = new Counter({
    name: 'registry_edge_cache_evictions_total',
    help: 'Blobs evicted to keep the cache under cache.maxsize.',
    registers: [this.registry],
  });

  readonly slowReads = new Counter({
    name: 'registry_edge_cache_slow_reads_total',
    help: 'Copies of cached blobs moved to thread-pool reads after a read slower than cache.sync_read_max (the page cache did not have the blob).',
    registers: [this.registry],
  });

  readonly uncaughtErrors = new Counter({
    name: 'registry_edge_uncaught_errors_total',
    help: 'Errors no handler caught while serving (kind: exception, rejection); each was logged with its stack and the process kept serving. Alert on any.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly prewarmEvents = new Counter({
    name: 'registry_edge_prewarm_events_total',
    help: 'Notification events from the centre by result (scheduled: a prefetch queued; duplicate: its id was taken before, a redelivery or another replica; filtered: outside prewarm.include/exclude; ignored: not a tagged manifest push; dropped: prewarm.queue was full; invalid: not a registry event).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly prewarmBlobs = new Counter({
    name: 'registry_edge_prewarm_blobs_total',
    help: 'Blobs of prefetches (notifications and POST /prefetch) by result (fetched, cached: held already, failed).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly prewarmQueueDepth = new Gauge({
    name: 'registry_edge_prewarm_queue_depth',
    help: 'Notified pushes waiting for a prefetch (at most prewarm.queue).',
    registers: [this.registry],
  });

  readonly zoneLeases = new Counter({
    name: 'registry_edge_zone_leases_total',
    help: 'Who fetches a missed blob from the origin, per miss this replica led: held (this replica, under the zone\'s lease; every miss of a lone edge), peer (another replica holding the lease: streamed from it), takeover (a holder that could not be reached: its lease taken over).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly zonePeerFills = new Counter({
    name: 'registry_edge_zone_peer_fills_total',
    help: 'Fills streamed from a zone peer, by result: the fill\'s own (committed, upstream_error: the peer failed mid-body, digest_mismatch, ...), or why the peer gave no body (unreachable, absent: it no longer held the blob, refused: it answered otherwise, e.g. 401 for a zone.secret that differs).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly zonePeerServedBytes = new Counter({
    name: 'registry_edge_zone_peer_served_bytes_total',
    help: 'Blob bytes this replica\'s peer listener sent to the zone\'s other replicas (complete answers).',
    registers: [this.registry],
  });

  readonly zoneRedisErrors = new Counter({
    name: 'registry_edge_zone_redis_errors_total',
    help: 'Calls to the zone\'s Redis answered as a lone edge would (a lease of its own, no shared fact) because Redis failed, timed out or was unreachable, by op (lease, renew, release, fact, claim_once, connect).',
    labelNames: ['op'] as const,
    registers: [this.registry],
  });

  readonly zoneRedisUp = new Gauge({
    name: 'registry_edge_zone_redis_up',
    help: '1 while the zone\'s Redis answers (fills and facts shared with the other replicas); 0 while this edge works alone.',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'registry_edge_' });
  }

  watchUpstreams(health: () => readonly UpstreamHealth[]): void {
    this.#upstreamHealth = health;
  }
}
