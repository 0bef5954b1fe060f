/**
 * One origin the edge fronts (the private centre, docker.io, ghcr.io): its upstream
 * client, who may read its cached content, its blob and manifest services and how
 * requests pass through to it. Blobs and manifests by digest are shared by all origins
 * (content addressing); membership and tags are kept per origin, so content confirmed
 * under one origin's repository is never served under another's name unconfirmed.
 */
import { readFile } from 'node:fs/promises';
import { Agent, type Dispatcher } from 'undici';
import { Authorizer } from './auth/authorizer.js';
import { Gate } from './auth/gate.js';
import { Htpasswd } from './auth/htpasswd.js';
import { TokenVerifier } from './auth/token-verifier.js';
import type { BlobCache } from './cache/blob-cache.js';
import type { ManifestStore } from './cache/manifest-store.js';
import type { Membership } from './cache/membership.js';
import { ConfigError } from './config/load.js';
import type { Config, OriginConfig } from './config/schema.js';
import type { ForwardSettings } from './http/forward.js';
import type { Logger } from './log/logger.js';
import type { Metrics } from './metrics/metrics.js';
import { BlobService } from './proxy/blob-service.js';
import { ManifestService } from './proxy/manifest-service.js';
import { UpstreamClient, type UpstreamServer } from './upstream/client.js';
import { RemoteRegistry } from './upstream/remote-registry.js';
import { upstreamAuth } from './upstream/upstream-auth.js';
import { LocalRegistry } from './cache/local-registry.js';
import type { Coordinator } from './zone/coordinator.js';
import { sharedFacts, zoneMembership, type SharedDecisions } from './zone/shared-facts.js';
import type { ZoneFills } from './zone/zone-fills.js';

export interface Origin {
  /** The host clients name it by ('' for the one origin of a config without origins). */
  readonly host: string;
  readonly push: boolean;
  readonly upstream: UpstreamClient;
  /** Who may read what, decided before the services run. */
  readonly gate: Gate;
  readonly blobs: BlobService;
  readonly manifests: ManifestService;
  readonly forward: ForwardSettings;
  readonly token: { readonly path: string; readonly url: string; readonly dispatcher: Dispatcher; readonly timeoutMs: number };
  /** Applies a reloaded config's upstream list. */
  update(config: OriginConfig): void;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

/** The origins by host, for the router; `fallback` is the default one. */
export interface OriginTable {
  readonly fallback: Origin;
  /** Empty without origins in the config: then ?ns= and host prefixes mean nothing, as before. */
  readonly byHost: ReadonlyMap<string, Origin>;
  /** A ?ns= naming no origin: refused, or served by the default origin (unknown_ns). */
  readonly unknownNs: 'refuse' | 'default';
}

/** `origins[0]` is the default one (the loader puts it first). */
export function originTable(origins: readonly Origin[], unknownNs: 'refuse' | 'default'): OriginTable {
  const [fallback] = origins;
  if (!fallback) throw new Error('an edge needs at least one origin');
  return { fallback, byHost: new Map(origins.filter((o) => o.host).map((o) => [o.host, o])), unknownNs };
}

/** What all origins share: the content-addressed stores and the edge's own facts. */
export interface SharedParts {
  readonly blobCache: BlobCache;
  readonly manifestStore: ManifestStore;
  readonly membership: Membership;
  /** What the zone's replicas share (the lone edge's coordinator without a zone). */
  readonly zone: Coordinator;
  /** Where a miss's bytes come from: the origin under the zone's lease, or the replica holding it. */
  readonly zoneFills: ZoneFills;
  readonly edge: Config;
  readonly metrics: Metrics;
  readonly log: Logger;
}

/** Config durations are seconds; timers and lru-cache TTLs want whole milliseconds. */
const ms = (seconds: number): number => Math.round(seconds * 1000);

export async function createOrigin(config: OriginConfig, shared: SharedParts): Promise<Origin> {
  const { metrics, edge } = shared;
  const log = config.host ? shared.log.child({ origin: config.host }) : shared.log;
  const up = config.upstream;
  const upstream = new UpstreamClient(
    {
      servers: upstreamServers(config),
      balance: up.balance,
      connectTimeoutMs: ms(up.connect_timeout),
      headersTimeoutMs: ms(up.headers_timeout),
      bodyTimeoutMs: ms(up.body_timeout),
      connections: up.connections,
      maxRedirects: up.max_redirects,
      credentials: up.auth.username ? { username: up.auth.username, password: up.auth.password } : undefined,
      realms: up.auth.realms,
      healthIntervalMs: ms(up.health.interval),
      healthTimeoutMs: ms(up.health.timeout),
    },
    metrics,
    log,
  );
  const mode = config.auth.mode;
  const facts = sharedFacts(shared.zone, config.host, { tagMs: ms(config.cache.tag_ttl), membersMs: ms(edge.zone.facts_ttl), decisionsMs: ms(config.auth.check.ttl) });
  const membership = zoneMembership(shared.membership.of(config.host), facts);
  const manifestStore = shared.manifestStore.of(config.host);
  const local = new LocalRegistry(shared.blobCache.store, manifestStore);
  const remote = new RemoteRegistry(upstream, {
    credentials: (scope, authorization) => upstreamAuth(mode, scope, authorization),
    maxManifestBytes: edge.cache.manifest_max_bytes,
    onDigestMismatch: () => metrics.digestMismatches.inc({ kind: 'manifest' }),
  });
  const blobs = new BlobService(shared.blobCache, local, remote, membership, shared.zoneFills);
  const manifests = new ManifestService(
    manifestStore,
    local,
    remote,
    {
      tagTtlMs: ms(config.cache.tag_ttl),
      maxStaleMs: ms(config.cache.max_stale),
      revalidateTimeoutMs: ms(config.cache.revalidate_timeout),
      membership,
      zone: facts,
      origin: config.host,
    },
    metrics,
    log,
  );
  const tokenAgent = new Agent({ connect: { timeout: ms(up.connect_timeout) } });
  const { token } = config;
  return {
    host: config.host,
    push: config.push,
    upstream,
    gate: new Gate({
      authorizer: await createAuthorizer(config, log, facts),
      blobs: shared.blobCache,
      local,
      remote,
      membership,
      fillingUnder: (digest) => blobs.fillingUnder(digest),
    }),
    blobs,
    manifests,
    forward: {
      upstream,
      hostHeader: up.host_header,
      publicUrl: edge.http.host ? new URL(edge.http.host) : undefined,
      tokenRealm: (ex) => (token.path && token.url ? `${ex.base}${token.path}` : undefined),
    },
    token: { path: token.path, url: token.url, dispatcher: tokenAgent, timeoutMs: ms(up.headers_timeout) },
    update: (next) => upstream.update(upstreamServers(next)),
    close: async () => void (await Promise.all([upstream.close(), tokenAgent.close()])),
    destroy: async () => void (await Promise.all([upstream.destroy(), tokenAgent.destroy()])),
  };
}

async function createAuthorizer(config: OriginConfig, log: Logger, zone: SharedDecisions): Promise<Authorizer> {
  const { mode, token, check, htpasswd } = config.auth;
  const at = config.keyPrefix;
  if (mode === 'public' && htpasswd.path) {
    const users = await Htpasswd.load(htpasswd.path, ms(check.ttl)).catch((err: Error) => {
      throw new ConfigError([`${at}auth.htpasswd.path: ${err.message}`]);
    });
    return new Authorizer(mode, { basic: { realm: htpasswd.realm, htpasswd: users }, checkTtlMs: ms(check.ttl), log });
  }
  if (mode !== 'token') return new Authorizer(mode, { checkTtlMs: ms(check.ttl), zone, log });
  const verifier = new TokenVerifier({
    issuer: token.issuer,
    service: token.service,
    rootCertBundlePem: await readFile(token.rootcertbundle, 'utf8').catch((err: Error) => {
      throw new ConfigError([`${at}auth.token.rootcertbundle: cannot read ${token.rootcertbundle}: ${err.message}`]);
    }),
    leewaySeconds: token.leeway,
  });
  const realm = (base: string): string => token.realm || `${base}${config.token.path}`;
  return new Authorizer(mode, { token: { realm, service: token.service, verifier }, checkTtlMs: ms(check.ttl), log });
}

function upstreamServers(config: OriginConfig): UpstreamServer[] {
  return config.upstreams.map((u) => ({ url: u.url, weight: u.weight, maxFails: u.max_fails, failTimeoutMs: ms(u.fail_timeout), backup: u.backup }));
}
