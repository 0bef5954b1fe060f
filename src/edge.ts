/**
 * Wires one edge from a validated config: stores, upstream client, services, the
 * client listener and the admin listener. Everything long-lived is closed by close().
 */
import { createServer, type Server } from 'node:http';
import { resolve } from 'node:path';
import { BlobCache } from './cache/blob-cache.js';
import { BlobStore } from './cache/blob-store.js';
import { CacheLayout } from './cache/layout.js';
import { ManifestStore } from './cache/manifest-store.js';
import type { Config } from './config/schema.js';
import { createAdminHandler } from './http/admin.js';
import { closeServer, listen } from './http/listen.js';
import { createRouter } from './http/router.js';
import type { Logger } from './log/logger.js';
import { Metrics } from './metrics/metrics.js';
import { BlobService } from './proxy/blob-service.js';
import { ManifestService } from './proxy/manifest-service.js';
import { UpstreamClient } from './upstream/client.js';

export interface RunningEdge {
  readonly httpAddress: string;
  readonly adminAddress: string;
  close(): Promise<void>;
}

const SHUTDOWN_GRACE_MS = 10_000;
const READY_TIMEOUT_MS = 2_000;

export async function startEdge(config: Config, log: Logger): Promise<RunningEdge> {
  const metrics = new Metrics();
  const layout = new CacheLayout(resolve(config.cache.dir));
  const store = new BlobStore(layout, config.cache.maxsize, config.cache.fsync, {
    onSizeChange: (bytes, count) => {
      metrics.cacheSize.set(bytes);
      metrics.cacheBlobs.set(count);
    },
    onEvict: () => metrics.evictions.inc(),
  });
  await store.init();
  const manifestStore = new ManifestStore(layout, config.cache.fsync);
  await manifestStore.init();
  const blobCache = new BlobCache(store, config.cache.fsync, {
    onFillStart: () => metrics.fillsInFlight.inc(),
    onFillEnd: (result) => {
      metrics.fillsInFlight.dec();
      metrics.fills.inc({ result });
      if (result === 'digest_mismatch') metrics.digestMismatches.inc({ kind: 'blob' });
      if (result !== 'committed' && result !== 'source_refused') log.warn({ result }, 'blob fill failed; nothing was cached');
    },
    onFollower: () => metrics.followers.inc(),
    onUpstreamBytes: (n) => metrics.upstreamBytes.inc(n),
  });
  const up = config.upstream;
  const upstream = new UpstreamClient(
    {
      urls: config.upstreams.map((u) => u.url),
      connectTimeoutMs: up.connect_timeout * 1000,
      headersTimeoutMs: up.headers_timeout * 1000,
      bodyTimeoutMs: up.body_timeout * 1000,
      connections: up.connections,
      maxRedirects: up.max_redirects,
      credentials: up.auth.username ? { username: up.auth.username, password: up.auth.password } : undefined,
      realms: up.auth.realms,
    },
    metrics,
    log,
  );
  const mode = config.auth.mode;
  const blobs = new BlobService(blobCache, upstream, mode);
  const manifests = new ManifestService(
    manifestStore,
    upstream,
    { tagTtlMs: config.cache.tag_ttl * 1000, maxStaleMs: config.cache.max_stale * 1000, maxBytes: config.cache.manifest_max_bytes, mode },
    metrics,
    log,
  );

  const server: Server = createServer(
    { headersTimeout: config.http.headers_timeout * 1000, requestTimeout: 0, keepAliveTimeout: config.http.idle_timeout * 1000 },
    createRouter({ blobs, manifests, upstream, mode, metrics, log }),
  );
  // Idle sockets (no bytes either way) are closed after body_timeout, as nginx's proxy_read_timeout.
  server.setTimeout(config.http.body_timeout * 1000);
  const admin: Server = createServer(
    createAdminHandler({ metrics, cacheDir: layout.root, upstreams: upstream.origins, readyTimeoutMs: READY_TIMEOUT_MS }),
  );
  const httpAddress = await listen(server, config.http.addr);
  const adminAddress = await listen(admin, config.admin.addr);
  log.info({ httpAddress, adminAddress, upstreams: upstream.origins, cacheDir: layout.root, mode }, 'registry-edge listening');

  return {
    httpAddress,
    adminAddress,
    async close() {
      await Promise.all([closeServer(server, SHUTDOWN_GRACE_MS), closeServer(admin, 0)]);
      await blobCache.drain();
      await upstream.close();
    },
  };
}
