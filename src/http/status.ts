/**
 * What the status page shows: the edge now (cache size against its budget, upstream
 * instances and their health, fills in flight) and what it did lately (hit ratio over a
 * short window, recent errors, the busiest repositories). `StatusRecorder` keeps the
 * bounded memory of finished requests that the router feeds; `statusSnapshot` joins it
 * with the metrics (the same figures /metrics gives), the cache and the upstreams into
 * the one value /status.json serves and the page renders.
 */
import type { FillProgress } from '../cache/blob-cache.js';
import type { Metrics } from '../metrics/metrics.js';
import type { InstanceHealth } from '../upstream/client.js';

export interface StatusLimits {
  /** Errors kept (status.errors). */
  readonly errors: number;
  /** Repositories counted (status.repositories). */
  readonly repositories: number;
  /** The recent window of the hit ratio (status.window), in ms. */
  readonly windowMs: number;
}

/** One answered request, as the router saw it at its end. */
export interface FinishedRequest {
  readonly route: string;
  readonly status: number;
  /** How the cache answered (Exchange.cache). */
  readonly cache: string | undefined;
  readonly repository: string | undefined;
  readonly bytes: number;
  readonly requestId: string;
  /** The error it failed with: an OCI code, or the error's name. */
  readonly code: string | undefined;
  readonly message: string | undefined;
}

export interface RecentError {
  /** ISO time. */
  readonly at: string;
  /** A request's route, or `fill` for a fill that failed on its own. */
  readonly route: string;
  /** HTTP status, or 0 for a fill. */
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly repository: string | undefined;
  readonly requestId: string | undefined;
}

export interface HitCount {
  readonly hits: number;
  readonly misses: number;
  /** hits / (hits + misses); null before any lookup. */
  readonly ratio: number | null;
}

/** Times in a snapshot are ISO strings, as the page and a person reading the JSON want them. */
export type FillStatus = Omit<FillProgress, 'startedAt'> & { readonly startedAt: string };
export type InstanceStatus = Omit<InstanceHealth, 'lastFailure'> & { readonly lastFailure: { readonly at: string; readonly reason: string } | undefined };

export interface StatusSnapshot {
  readonly now: string;
  readonly startedAt: string;
  readonly uptimeSeconds: number;
  readonly cache: { readonly sizeBytes: number; readonly maxBytes: number; readonly blobs: number; readonly writable: boolean };
  /** Blob lookups, as registry_edge_cache_requests_total{kind="blob"} counts them. */
  readonly hits: { readonly sinceStart: HitCount; readonly window: HitCount & { readonly seconds: number } };
  /** Body bytes served by source (registry_edge_served_bytes_total); `fromCache` is what the cache saved the centre. */
  readonly bytes: { readonly fromCache: number; readonly fromFill: number; readonly fromUpstream: number; readonly upstreamReceived: number };
  readonly origins: ReadonlyArray<{ readonly host: string; readonly instances: readonly InstanceStatus[] }>;
  readonly fills: readonly FillStatus[];
  readonly errors: readonly RecentError[];
  readonly repositories: ReadonlyArray<{ readonly name: string; readonly requests: number; readonly bytes: number }>;
}

/** Repositories on the page: the busiest few of those counted. */
const TOP_SHOWN = 10;
/** The window is counted in this many buckets whatever its length (so memory does not grow with it). */
const BUCKETS = 60;

const iso = (ms: number): string => new Date(ms).toISOString();

interface Bucket {
  at: number;
  hits: number;
  misses: number;
}

export class StatusRecorder {
  readonly startedAt: number;
  private readonly limits: StatusLimits;
  private readonly now: () => number;
  /** The window in BUCKETS slices, reused round the ring. */
  private readonly buckets: Bucket[];
  private readonly bucketMs: number;
  private readonly errors: RecentError[] = [];
  private readonly repositories = new Map<string, { requests: number; bytes: number }>();

  constructor(limits: StatusLimits, now: () => number = Date.now) {
    this.limits = limits;
    this.now = now;
    this.startedAt = now();
    this.bucketMs = Math.max(1, limits.windowMs / BUCKETS);
    this.buckets = Array.from({ length: BUCKETS }, () => ({ at: -1, hits: 0, misses: 0 }));
  }

  request(r: FinishedRequest): void {
    const now = this.now();
    // The same lookups registry_edge_cache_requests_total{kind="blob"} counts.
    if (r.route === 'blob' && r.cache !== undefined && r.cache !== 'pass') {
      const bucket = this.bucket(now);
      if (r.cache === 'hit') bucket.hits++;
      else bucket.misses++;
    }
    if (r.repository !== undefined) this.count(r.repository, r.bytes);
    if (r.status >= 500) {
      this.error({ at: iso(now), route: r.route, status: r.status, code: r.code ?? String(r.status), message: r.message ?? '', repository: r.repository, requestId: r.requestId });
    }
  }

  /** A fill that failed on its own (not a refusal a client was given). */
  fillFailed(digest: string, result: string, message: string | undefined): void {
    this.error({ at: iso(this.now()), route: 'fill', status: 0, code: result, message: `${digest}${message ? `: ${message}` : ''}`, repository: undefined, requestId: undefined });
  }

  /** The window's lookups, the recent errors (newest first), the busiest repositories. */
  view(): { window: HitCount & { seconds: number }; errors: RecentError[]; repositories: StatusSnapshot['repositories'] } {
    const from = this.now() - this.limits.windowMs;
    let hits = 0;
    let misses = 0;
    for (const b of this.buckets) {
      if (b.at <= from) continue;
      hits += b.hits;
      misses += b.misses;
    }
    const repositories = [...this.repositories]
      .map(([name, c]) => ({ name, requests: c.requests, bytes: c.bytes }))
      .sort((a, b) => b.requests - a.requests || b.bytes - a.bytes || (a.name < b.name ? -1 : 1))
      .slice(0, TOP_SHOWN);
    return { window: { ...hitCount(hits, misses), seconds: this.limits.windowMs / 1000 }, errors: [...this.errors].reverse(), repositories };
  }

  private bucket(now: number): Bucket {
    const slice = Math.floor(now / this.bucketMs);
    const b = this.buckets[slice % BUCKETS] as Bucket;
    if (b.at !== slice * this.bucketMs) {
      b.at = slice * this.bucketMs;
      b.hits = 0;
      b.misses = 0;
    }
    return b;
  }

  private error(e: RecentError): void {
    this.errors.push(e);
    if (this.errors.length > this.limits.errors) this.errors.shift();
  }

  /**
   * Counts a request for a repository. At the bound, a new name takes the place of the
   * least requested one (names come from clients: memory must not grow with them), so
   * past status.repositories names the counts of the quiet ones are approximate.
   */
  private count(name: string, bytes: number): void {
    const known = this.repositories.get(name);
    if (known) {
      known.requests++;
      known.bytes += bytes;
      return;
    }
    if (this.repositories.size >= this.limits.repositories) {
      let least: string | undefined;
      let fewest = Infinity;
      for (const [n, c] of this.repositories) {
        if (c.requests < fewest) {
          fewest = c.requests;
          least = n;
        }
      }
      if (least !== undefined) this.repositories.delete(least);
    }
    this.repositories.set(name, { requests: 1, bytes });
  }
}

function hitCount(hits: number, misses: number): HitCount {
  return { hits, misses, ratio: hits + misses > 0 ? hits / (hits + misses) : null };
}

export interface StatusSources {
  readonly recorder: StatusRecorder;
  readonly metrics: Metrics;
  /** cache.maxsize */
  readonly maxBytes: number;
  readonly fills: () => FillProgress[];
  readonly origins: () => ReadonlyArray<{ readonly host: string; readonly instances: readonly InstanceHealth[] }>;
}

/** What prom-client's counters and gauges give: their samples, with labels. */
interface Sampled {
  get(): Promise<{ values: ReadonlyArray<{ value: number; labels: Partial<Record<string, string | number>> }> }>;
}

/** Sum of a metric's samples whose labels include `labels`. */
async function sample(metric: Sampled, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await metric.get();
  let total = 0;
  for (const v of values) if (Object.entries(labels).every(([k, want]) => v.labels[k] === want)) total += v.value;
  return total;
}

export async function statusSnapshot(src: StatusSources): Promise<StatusSnapshot> {
  const { metrics, recorder } = src;
  const [sizeBytes, blobs, writable, hits, misses, fromCache, fromFill, fromUpstream, upstreamReceived] = await Promise.all([
    sample(metrics.cacheSize),
    sample(metrics.cacheBlobs),
    sample(metrics.cacheWritable),
    sample(metrics.cacheRequests, { kind: 'blob', result: 'hit' }),
    sample(metrics.cacheRequests, { kind: 'blob', result: 'miss' }),
    sample(metrics.servedBytes, { source: 'cache' }),
    sample(metrics.servedBytes, { source: 'fill' }),
    sample(metrics.servedBytes, { source: 'upstream' }),
    sample(metrics.upstreamBytes),
  ]);
  const now = Date.now();
  const { window, errors, repositories } = recorder.view();
  return {
    now: iso(now),
    startedAt: iso(recorder.startedAt),
    uptimeSeconds: Math.round((now - recorder.startedAt) / 1000),
    cache: { sizeBytes, maxBytes: src.maxBytes, blobs, writable: writable === 1 },
    hits: { sinceStart: hitCount(hits, misses), window },
    bytes: { fromCache, fromFill, fromUpstream, upstreamReceived },
    origins: src.origins().map((o) => ({
      host: o.host,
      instances: o.instances.map((i) => ({ ...i, lastFailure: i.lastFailure && { at: iso(i.lastFailure.at), reason: i.lastFailure.reason } })),
    })),
    fills: src.fills().map((f) => ({ ...f, startedAt: iso(f.startedAt) })),
    errors,
    repositories,
  };
}
