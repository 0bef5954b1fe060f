/**
 * Wires one edge from a validated config: stores, upstream client, services, the
 * client listener and the admin listener. Everything long-lived is closed by close().
 */
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join, resolve } from 'node:path';
import { Agent } from 'undici';
import { Authorizer } from './auth/authorizer.js';
import { Htpasswd } from './auth/htpasswd.js';
import { TokenVerifier } from './auth/token-verifier.js';
import { Membership } from './cache/membership.js';
import { BlobCache } from './cache/blob-cache.js';
import { BlobStore } from './cache/blob-store.js';
import { CacheLayout } from './cache/layout.js';
import { ManifestStore } from './cache/manifest-store.js';
import { Writability } from './cache/writability.js';
import { ConfigError } from './config/load.js';
import type { Config } from './config/schema.js';
import { createAdminHandler } from './http/admin.js';
import { closeServer, listen } from './http/listen.js';
import { createRouter } from './http/router.js';
import { TlsListener } from './http/tls.js';
import type { Logger } from './log/logger.js';
import { Metrics } from './metrics/metrics.js';
import { BlobService } from './proxy/blob-service.js';
import { ManifestService } from './proxy/manifest-service.js';
import { youngGcEvery } from './runtime/young-gc.js';
import { UpstreamClient, type UpstreamServer } from './upstream/client.js';
import { parseTrustedProxies } from './upstream/client-address.js';

export interface RunningEdge {
  readonly httpAddress: string;
  readonly adminAddress: string;
  /** Applies what can change without a restart: the upstream list and the TLS pair. */
  reload(config: Config): Promise<void>;
  close(): Promise<void>;
}

const SHUTDOWN_GRACE_MS = 10_000;
const READY_TIMEOUT_MS = 2_000;

export async function startEdge(config: Config, log: Logger): Promise<RunningEdge> {
  const metrics = new Metrics();
  const layout = new CacheLayout(resolve(config.cache.dir));
  const { maxsize, fsync, sync_read_max: syncReadMax, open_files: max, open_files_idle: idleSeconds } = config.cache;
  const maxBlobSize = config.cache.max_blob_size || Math.floor(maxsize / 2);
  const store = new BlobStore(layout, { maxSize: maxsize, maxBlobSize, fsync, syncReadMax, openFiles: { max, idleSeconds } }, {
    onSizeChange: (bytes, count) => {
      metrics.cacheSize.set(bytes);
      metrics.cacheBlobs.set(count);
    },
    onEvict: () => metrics.evictions.inc(),
    onSlowRead: () => metrics.slowReads.inc(),
  });
  const writability = new Writability(layout.tmp, config.cache.write_retry_interval * 1000, {
    onChange: (writable, cause) => {
      metrics.cacheWritable.set(writable ? 1 : 0);
      if (writable) log.info({ cacheDir: layout.root }, 'cache writable again: caching resumed');
      else log.warn({ cacheDir: layout.root, err: cause?.message, code: (cause as NodeJS.ErrnoException | undefined)?.code }, 'cache not writable: misses stream through uncached until a write succeeds');
    },
  });
  metrics.cacheWritable.set(1);
  const youngGc = youngGcEvery(config.cache.fill_gc_every);
  // Manifests first: their bytes are charged to the budget the blob index is then held to.
  const manifestStore = new ManifestStore(layout, config.cache.fsync, writability, (bytes) => store.charge(bytes));
  await manifestStore.init();
  await store.init();
  const blobCache = new BlobCache(store, config.cache.fsync, writability, {
    onFillStart: () => metrics.fillsInFlight.inc(),
    onFillEnd: (result, digest, error) => {
      metrics.fillsInFlight.dec();
      metrics.fills.inc({ result });
      if (result === 'digest_mismatch') metrics.digestMismatches.inc({ kind: 'blob' });
      // A refused source is the upstream's answer to one client (401, 404): not a fault of the fill.
      // An uncached fill served its clients; the cache said once why it is not writable.
      if (result !== 'committed' && result !== 'source_refused' && result !== 'write_error' && result !== 'not_kept') {
        log.warn({ result, digest: digest.value, err: error?.message }, 'blob fill failed; nothing was cached');
      }
    },
    onFollower: () => metrics.followers.inc(),
    onUpstreamBytes: (n) => {
      metrics.upstreamBytes.inc(n);
      youngGc?.(n);
    },
  });
  const up = config.upstream;
  const upstream = new UpstreamClient(
    {
      servers: upstreamServers(config),
      balance: up.balance,
      connectTimeoutMs: up.connect_timeout * 1000,
      headersTimeoutMs: up.headers_timeout * 1000,
      bodyTimeoutMs: up.body_timeout * 1000,
      connections: up.connections,
      maxRedirects: up.max_redirects,
      credentials: up.auth.username ? { username: up.auth.username, password: up.auth.password } : undefined,
      realms: up.auth.realms,
      healthIntervalMs: up.health.interval * 1000,
      healthTimeoutMs: up.health.timeout * 1000,
    },
    metrics,
    log,
  );
  const mode = config.auth.mode;
  const membership = new Membership(join(layout.root, 'membership.log'));
  await membership.init();
  const blobs = new BlobService(blobCache, upstream, mode, membership);
  const manifests = new ManifestService(
    manifestStore,
    upstream,
    { tagTtlMs: config.cache.tag_ttl * 1000, maxStaleMs: config.cache.max_stale * 1000, maxBytes: config.cache.manifest_max_bytes, mode, membership },
    metrics,
    log,
  );
  const tokenAgent = new Agent({ connect: { timeout: up.connect_timeout * 1000 } });
  const router = createRouter({
    blobs,
    manifests,
    forward: {
      upstream,
      hostHeader: up.host_header,
      tokenRealm: (ex) => (config.token.path && config.token.url ? `${ex.base}${config.token.path}` : undefined),
    },
    authorizer: await createAuthorizer(config),
    publicHost: config.http.host,
    trustedProxies: parseTrustedProxies(config.http.trusted_proxies),
    token: { path: config.token.path, url: config.token.url, dispatcher: tokenAgent, timeoutMs: up.headers_timeout * 1000 },
    manifestMaxBytes: config.cache.manifest_max_bytes,
    metrics,
    log,
  });

  const serverOptions = { headersTimeout: config.http.headers_timeout * 1000, keepAliveTimeout: config.http.idle_timeout * 1000 };
  const { certificate, key } = config.http.tls;
  const tls = certificate && key ? await TlsListener.create({ certificate, key }, serverOptions, router, log) : undefined;
  const servers: Server[] = [tls?.server ?? createServer({ ...serverOptions, requestTimeout: 0 }, router)];
  if (config.http.plain_addr) servers.push(createServer({ ...serverOptions, requestTimeout: 0 }, router));
  // Sockets with no bytes either way for body_timeout are closed, as nginx's proxy_read_timeout.
  for (const server of servers) server.setTimeout(config.http.body_timeout * 1000);
  const admin: Server = createServer(
    createAdminHandler({ metrics, cacheWritable: () => writability.probe(), upstreams: () => upstream.urls, readyTimeoutMs: READY_TIMEOUT_MS }),
  );
  const httpAddress = await listen(servers[0] as Server, config.http.addr);
  const plainAddress = servers[1] ? await listen(servers[1], config.http.plain_addr) : undefined;
  const adminAddress = await listen(admin, config.admin.addr);
  log.info({ httpAddress, plainAddress, adminAddress, tls: tls !== undefined, upstreams: upstream.urls, cacheDir: layout.root, mode }, 'registry-edge listening');

  return {
    httpAddress,
    adminAddress,
    async reload(next: Config) {
      upstream.update(upstreamServers(next));
      if (tls) await tls.reload('reload');
    },
    async close() {
      tls?.stopWatching();
      await Promise.all([...servers.map((s) => closeServer(s, SHUTDOWN_GRACE_MS)), closeServer(admin, 0)]);
      await blobCache.drain();
      writability.close();
      store.close();
      await Promise.all([upstream.close(), tokenAgent.close()]);
    },
  };
}

async function createAuthorizer(config: Config): Promise<Authorizer> {
  const { mode, token, check, htpasswd } = config.auth;
  if (mode === 'public' && htpasswd.path) {
    const users = await Htpasswd.load(htpasswd.path, check.ttl * 1000).catch((err: Error) => {
      throw new ConfigError([`auth.htpasswd.path: ${err.message}`]);
    });
    return new Authorizer(mode, { basic: { realm: htpasswd.realm, htpasswd: users }, checkTtlMs: check.ttl * 1000 });
  }
  if (mode !== 'token') return new Authorizer(mode, { checkTtlMs: check.ttl * 1000 });
  const verifier = new TokenVerifier({
    issuer: token.issuer,
    service: token.service,
    rootCertBundlePem: await readFile(token.rootcertbundle, 'utf8').catch((err: Error) => {
      throw new ConfigError([`auth.token.rootcertbundle: cannot read ${token.rootcertbundle}: ${err.message}`]);
    }),
    leewaySeconds: token.leeway,
  });
  const realm = (base: string): string => token.realm || `${base}${config.token.path}`;
  return new Authorizer(mode, { token: { realm, service: token.service, verifier }, checkTtlMs: check.ttl * 1000 });
}

function upstreamServers(config: Config): UpstreamServer[] {
  return config.upstreams.map((u) => ({ url: u.url, weight: u.weight, maxFails: u.max_fails, failTimeoutMs: u.fail_timeout * 1000, backup: u.backup }));
}
