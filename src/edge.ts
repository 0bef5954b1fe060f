/**
 * Wires one edge from a validated config: stores, one Origin per configured origin, the
 * client listener and the admin listener. Everything long-lived is closed by close().
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join, resolve } from 'node:path';
import { Membership } from './cache/membership.js';
import type { HostCoordinator } from './zone/host-coordinator.js';
import { BlobCache } from './cache/blob-cache.js';
import { BlobStore, type SharedDirectory } from './cache/blob-store.js';
import { CacheLayout } from './cache/layout.js';
import { ManifestStore } from './cache/manifest-store.js';
import { Writability } from './cache/writability.js';
import { underKey } from './config/problem.js';
import type { Config } from './config/schema.js';
import { createAdminHandler } from './http/admin.js';
import { ClientConnections } from './http/connections.js';
import { DescriptorAlarm, connectionCap } from './http/descriptors.js';
import { clientServerOptions, closeServer, listen } from './http/listen.js';
import { createRouter } from './http/router.js';
import { StatusRecorder, statusSnapshot } from './http/status.js';
import { TlsListener } from './http/tls.js';
import type { Logger } from './log/logger.js';
import { Metrics } from './metrics/metrics.js';
import { createOrigin, originTable, type Origin } from './origins.js';
import { createZonePeers } from './zone/zone-peers.js';
import { parseTrustedProxies } from './http/client-address.js';
import { createPrewarm } from './prewarm/prewarm.js';
import { createCoordinator } from './zone/create.js';

export interface RunningEdge {
  readonly httpAddress: string;
  readonly plainAddress: string | undefined;
  readonly tls: boolean;
  readonly adminAddress: string;
  readonly metrics: Metrics;
  /** Applies what can change without a restart: the upstream list and the TLS pair. */
  reload(config: Config): Promise<void>;
  close(): Promise<void>;
}

/** One of several workers of a host sharing the listeners and the cache directory (workers: N). */
export interface WorkerRole {
  /** 1 for the worker that owns the cache directory's budget, index snapshot and eviction. */
  readonly id: number;
  /** The host's, answered by the primary; undefined in a zone, where each worker is a replica of its own in Redis. */
  readonly coordinator: HostCoordinator | undefined;
  readonly directory: SharedDirectory;
  /** Passes the other workers' directory events on to this worker's store. */
  hear(store: BlobStore): void;
}

const READY_TIMEOUT_MS = 2_000;

/** Config durations are seconds; timers and lru-cache TTLs want whole milliseconds (1.1 * 1000 is 1100.0000000000002). */
const ms = (seconds: number): number => Math.round(seconds * 1000);
/** After http.shutdown_timeout, how long aborted fills get to remove their temp files before the process exits anyway. */
const ABORT_GRACE_MS = 2_000;

export async function startEdge(config: Config, log: Logger, worker?: WorkerRole): Promise<RunningEdge> {
  const metrics = new Metrics();
  const descriptors = new DescriptorAlarm(metrics.registry, log);
  const status = new StatusRecorder({ errors: config.status.errors, repositories: config.status.repositories, windowMs: ms(config.status.window) });
  const layout = new CacheLayout(resolve(config.cache.dir), worker?.id);
  const { maxsize, fsync, sync_read_max: syncReadMax, open_files: max, open_files_idle: idleSeconds } = config.cache;
  const maxBlobSize = config.cache.max_blob_size || Math.floor(maxsize / 2);
  const snapshotInterval = config.cache.index_snapshot_interval;
  const store = new BlobStore(layout, { maxSize: maxsize, maxBlobSize, fsync, syncReadMax, openFiles: { max, idleSeconds }, snapshotInterval, shared: worker?.directory }, {
    onSizeChange: (bytes, count) => {
      metrics.cacheSize.set(bytes);
      metrics.cacheBlobs.set(count);
    },
    onEvict: () => metrics.evictions.inc(),
    onSlowRead: () => metrics.slowReads.inc(),
    onIndexLoad: (load) => log.info({ cacheDir: layout.root, ...load }, load.from === 'walk' ? 'blob index built by a walk of every blob; a snapshot is written next' : 'blob index loaded from its snapshot'),
    onIndexSave: (blobs, seconds, err) => {
      if (err) log.warn({ cacheDir: layout.root, key: 'cache.index_snapshot_interval', err: err.message, code: (err as NodeJS.ErrnoException).code }, 'blob index snapshot not written; the next start checks the older one against the directory');
      else log.debug({ blobs, seconds }, 'blob index snapshot written');
    },
  });
  const writability = new Writability(layout.tmp, ms(config.cache.write_retry_interval), {
    onChange: (writable, cause) => {
      metrics.cacheWritable.set(writable ? 1 : 0);
      if (writable) log.info({ cacheDir: layout.root }, 'cache writable again: caching resumed');
      else log.warn({ cacheDir: layout.root, err: cause?.message, code: (cause as NodeJS.ErrnoException | undefined)?.code }, 'cache not writable: misses stream through uncached until a write succeeds');
    },
  });
  metrics.cacheWritable.set(1);
  metrics.cacheMaxBytes.set(maxsize);
  // Manifests first: their bytes are charged to the budget the blob index is then held to.
  const manifestStore = new ManifestStore(layout, config.cache.fsync, writability, (bytes) => store.charge(bytes));
  await underKey('cache.dir', `cannot prepare ${layout.root}`, manifestStore.init());
  await underKey('cache.dir', `cannot prepare ${layout.root}`, store.init());
  worker?.hear(store);
  const blobCache = new BlobCache(store, config.cache.fsync, writability, {
    onFillStart: () => metrics.fillsInFlight.inc(),
    onFillEnd: (result, digest, error) => {
      metrics.fillsInFlight.dec();
      if (error) descriptors.note(error, 'fill');
      metrics.fills.inc({ result });
      if (result === 'digest_mismatch') metrics.digestMismatches.inc({ kind: 'blob' });
      // A refused source is the upstream's answer to one client (401, 404): not a fault of the fill.
      // An uncached fill served its clients; the cache said once why it is not writable.
      if (result !== 'committed' && result !== 'source_refused' && result !== 'write_error' && result !== 'not_kept') {
        log.warn({ result, digest: digest.value, err: error?.message }, 'blob fill failed; nothing was cached');
        status.fillFailed(digest.value, result, error?.message);
      }
    },
    onFollower: () => metrics.followers.inc(),
    onUpstreamBytes: (n) => metrics.upstreamBytes.inc(n),
  });
  const membership = new Membership(join(layout.root, 'membership.log'));
  await underKey('cache.dir', `cannot prepare ${layout.root}`, membership.init());
  const coordinator = worker?.coordinator ?? (await createCoordinator(config, metrics, log, config.zone.peer.addr ? config.zone.peer.url : ''));
  const zone = await createZonePeers({ config, coordinator, blobCache, manifestStore, metrics, log, exclusive: worker !== undefined });
  const parts = { blobCache, manifestStore, membership, zone: coordinator, zoneFills: zone.fills, edge: config, metrics, log };
  const origins: Origin[] = [];
  for (const origin of config.origins) origins.push(await createOrigin(origin, parts));
  // With Redis, one replica of the zone does each notified prefetch.
  const prewarm = createPrewarm(config, origins, parts, coordinator);
  const router = createRouter({
    origins: originTable(origins, config.unknown_ns),
    publicHost: config.http.host,
    trustedProxies: parseTrustedProxies(config.http.trusted_proxies),
    manifestMaxBytes: config.cache.manifest_max_bytes,
    metrics,
    descriptors,
    log,
    status,
  });

  const headersTimeoutMs = ms(config.http.headers_timeout);
  const bodyTimeoutMs = ms(config.http.body_timeout);
  const serverOptions = clientServerOptions(headersTimeoutMs, ms(config.http.idle_timeout));
  const { certificate, key } = config.http.tls;
  const tls = certificate && key
    ? await underKey('http.tls.certificate', `cannot load ${certificate} with ${key}`, TlsListener.create({ certificate, key }, serverOptions, router, log))
    : undefined;
  const servers: Server[] = [tls?.server ?? createServer(serverOptions, router)];
  if (config.http.plain_addr) servers.push(createServer(serverOptions, router));
  const maxConnections = connectionCap(config.http.max_connections, { keptFiles: config.cache.open_files, upstreamSockets: config.origins.reduce((n, o) => n + o.upstream.connections * (o.upstreams.length + 1), 0) }, log);
  const connections = new ClientConnections({ max: maxConnections, headersTimeoutMs, bodyTimeoutMs }, metrics.registry, log);
  for (const server of servers) {
    // Sockets with no bytes either way for body_timeout are closed, as nginx's proxy_read_timeout.
    server.setTimeout(bodyTimeoutMs);
    connections.attach(server);
  }
  metrics.watchUpstreams(() => origins.flatMap((o) => o.upstream.health().map((h) => ({ origin: o.host, upstream: h.label, up: h.healthy }))));
  const admin: Server = createServer(
    createAdminHandler({
      metrics,
      cacheWritable: () => writability.probe(),
      cacheReadable: () => access(layout.blobs, constants.R_OK).then(() => true, () => false),
      upstreams: () => origins.flatMap((o) => o.upstream.urls),
      readyTimeoutMs: READY_TIMEOUT_MS,
      routes: prewarm.routes,
      status: () =>
        statusSnapshot({
          recorder: status,
          metrics,
          maxBytes: maxsize,
          fills: () => blobCache.snapshot(),
          origins: () => origins.map((o) => ({ host: o.host, instances: o.upstream.health() })),
        }),
    }),
  );
  const listenAs = (key: string, server: Server, addr: string, exclusive = false): Promise<string> => underKey(key, `cannot listen on ${addr}`, listen(server, addr, exclusive));
  const httpAddress = await listenAs('http.addr', servers[0] as Server, config.http.addr);
  const plainAddress = servers[1] ? await listenAs('http.plain_addr', servers[1], config.http.plain_addr) : undefined;
  const adminAddress = await listenAs('admin.addr', admin, config.admin.addr, worker !== undefined);
  const peerAddress = await zone.listen();
  if (worker?.coordinator && peerAddress) worker.coordinator.listening(`http://${peerAddress}`);
  for (const server of [...servers, admin]) {
    server.on('error', (err) => {
      if (!descriptors.note(err, 'accept')) log.error({ err }, 'listener error');
    });
  }
  log.info({ pid: process.pid, httpAddress, plainAddress, adminAddress, peerAddress, tls: tls !== undefined, upstreams: origins.flatMap((o) => o.upstream.urls), origins: origins.map((o) => o.host).filter(Boolean), cacheDir: layout.root, mode: config.origins[0]?.auth.mode }, worker ? 'worker listening' : 'registry-edge listening');

  return {
    httpAddress,
    plainAddress,
    tls: tls !== undefined,
    adminAddress,
    metrics,
    async reload(next: Config) {
      // Origins themselves (hosts, auth) are fixed at start; their instances follow the file.
      for (const origin of origins) {
        const changed = next.origins.find((o) => o.host === origin.host);
        if (changed) origin.update(changed);
      }
      if (tls) await tls.reload('reload');
      await zone.reload();
    },
    /**
     * Stops accepting and lets responses, fills and upstream requests in flight finish
     * until http.shutdown_timeout; then cuts the connections and aborts what is left
     * upstream, which fails the fills reading from it, so they remove their temp files.
     */
    async close() {
      const shutdownMs = ms(config.http.shutdown_timeout);
      tls?.stopWatching();
      connections.drain();
      const serversClosed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      const adminClosed = closeServer(admin, 0);
      const peersClosed = zone.stopListening(shutdownMs);
      const calm = Promise.all([serversClosed, prewarm.close()]).then(() => blobCache.drain()).then(() => Promise.all([...origins.map((o) => o.close()), zone.close()]));
      if (!(await settlesWithin(calm, shutdownMs))) {
        log.warn({ key: 'http.shutdown_timeout', seconds: config.http.shutdown_timeout, connections: connections.open }, 'shutdown deadline reached: cutting connections and aborting fills');
        connections.destroyAll();
        await Promise.all([...origins.map((o) => o.destroy()), zone.destroy()]);
        if (!(await settlesWithin(Promise.all([serversClosed, blobCache.drain()]), ABORT_GRACE_MS))) {
          log.warn('fills still running after they were aborted; their temp files are removed at the next start');
        }
      }
      await Promise.all([adminClosed, peersClosed]);
      writability.close();
      await store.close();
      // Last: fills that ran until now held their zone leases.
      await coordinator.close();
    },
  };
}

/** Whether `work` settled within `ms` (its outcome is the caller's to read elsewhere). */
async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const settled = work.then(() => true, () => true);
  const result = await Promise.race([settled, timeout]);
  clearTimeout(timer);
  return result;
}
