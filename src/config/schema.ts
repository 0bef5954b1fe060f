/**
 * Every config key, its type, default and meaning, in one table. The loader, the
 * env overrides (`REGISTRY_EDGE_<PATH>`) and `config reference` all read this table,
 * so a key cannot exist in one place and be missing from another.
 */
export type KeyType = 'string' | 'int' | 'bytes' | 'duration' | 'bool' | 'addr' | 'url' | 'enum' | 'upstreams' | 'strings' | 'workers';

export interface KeySpec {
  readonly path: string;
  readonly type: KeyType;
  readonly default: unknown;
  readonly doc: string;
  readonly values?: readonly string[];
  readonly min?: number;
  /** Largest value (seconds for durations); keys that feed timers have one. */
  readonly max?: number;
  /** '' is allowed and means "off" (for addr and url keys). */
  readonly optional?: boolean;
  /** A credential: `config check` prints it masked (so do keys named *password, *secret, *token). */
  readonly secret?: boolean;
}

/**
 * Longest duration a key that feeds a timer takes: a Node timer holds at most 2^31-1 ms
 * (~24.8 days), and a longer one fires after 1 ms with a TimeoutOverflowWarning.
 */
export const TIMER_MAX = 24 * 86400;

/** Keys that were removed: a file that still sets one loads, with a warning saying what to do. */
export const RETIRED_KEYS: Readonly<Record<string, string>> = {
  'cache.fill_gc_every': 'no longer has an effect (removed: the run-time young-generation collection it set fought the runtime for no lasting gain, bench/README.md "Peak RSS"); delete it',
};

export const KEYS: readonly KeySpec[] = [
  { path: 'log.level', type: 'enum', default: 'info', values: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], doc: 'pino log level; access log lines are at info.' },
  { path: 'log.sync', type: 'bool', default: true, doc: 'Write each log line to stdout before going on, as nginx writes its access log (no thread-pool hand-off per request: about a third less CPU per cached hit). false: lines go through the thread pool, so a log reader that stops reading cannot stall serving.' },
  { path: 'log.timestamp', type: 'enum', default: 'epoch', values: ['epoch', 'iso'], doc: 'The `time` of each log line: epoch milliseconds (pino\'s own, cheapest), or an ISO 8601 UTC string for a person reading the log.' },
  { path: 'http.addr', type: 'addr', default: '0.0.0.0:5000', doc: 'host:port of the client listener (registry API).' },
  { path: 'http.host', type: 'url', optional: true, default: '', doc: 'Public base URL of the edge (as registry:2 http.host), e.g. https://hub.example.internal; Location, Link and token realms are rewritten to it. Empty: the scheme and Host of each request.' },
  { path: 'http.tls.certificate', type: 'string', default: '', doc: 'PEM certificate chain for the client listener; with http.tls.key it makes http.addr HTTPS (TLS 1.2 and 1.3). Reloaded when the file changes or on SIGHUP.' },
  { path: 'http.tls.key', type: 'string', default: '', doc: 'PEM private key for http.tls.certificate.' },
  { path: 'http.plain_addr', type: 'addr', optional: true, default: '', doc: 'Optional second listener speaking plain HTTP (in-cluster clients); empty: off.' },
  { path: 'http.trusted_proxies', type: 'strings', default: [], doc: 'Peers (IPs or CIDRs) whose X-Forwarded-For / X-Real-IP are believed (LVS/F5 in front); others are taken by their socket address.' },
  { path: 'http.headers_timeout', type: 'duration', default: '60s', min: 1, max: TIMER_MAX, doc: 'Time a client has to send its request headers (nginx client_header_timeout); also the time a new connection may stay silent and a TLS handshake may take.' },
  { path: 'http.idle_timeout', type: 'duration', default: '75s', min: 1, max: TIMER_MAX, doc: 'Keep-alive idle time of client connections.' },
  { path: 'http.body_timeout', type: 'duration', default: '900s', min: 1, max: TIMER_MAX, doc: 'Longest pause in a request or response body before the connection is closed (nginx proxy_read_timeout).' },
  { path: 'http.max_connections', type: 'int', default: 4096, min: 1, doc: 'Client connections of all client listeners together (nginx worker_connections). Near it the longest-idle connections are closed so a new client is served; at it, with none idle, new connections are closed on arrival (a warn line every 10 s). Kept below the descriptor limit (RLIMIT_NOFILE): when it is not comfortably below, the edge warns at start and uses what fits.' },
  { path: 'http.shutdown_timeout', type: 'duration', default: '8s', min: 0, max: TIMER_MAX, doc: 'On SIGTERM/SIGINT: how long in-flight responses and fills may go on (nginx worker_shutdown_timeout); then connections are cut, fills aborted, their temp files removed, and the process exits 0. Keep it below the runtime\'s kill grace (docker stop: 10 s, Kubernetes: 30 s).' },
  { path: 'workers', type: 'workers', default: 1, min: 1, max: 256, doc: 'Serving processes on this host (nginx worker_processes), sharing the listeners and cache.dir: an integer, or auto for one per core this process may use (the cgroup CPU limit of a container, else os.availableParallelism()). Above 1 a primary process supervises them (restarts one that dies, forwards SIGHUP and SIGTERM), serves admin.addr with /metrics summed over the workers, and gives each blob fill to one worker, which the others follow; the first worker evicts for all. Per worker: http.max_connections, the descriptor limit. In a zone (zone.redis.url) each worker is a replica of its own in Redis: worker n listens for peers on zone.peer.addr\'s port + n - 1 and names itself with zone.peer.url\'s port + n - 1.' },
  { path: 'admin.addr', type: 'addr', default: '127.0.0.1:5001', doc: 'host:port of /metrics, /healthz and /readyz; keep it off the public interface.' },
  { path: 'status.errors', type: 'int', default: 50, min: 1, max: 10_000, doc: 'Recent errors the status page (admin `/`, `/status.json`) keeps: requests answered 5xx and blob fills that failed, newest first.' },
  { path: 'status.repositories', type: 'int', default: 1000, min: 1, max: 100_000, doc: 'Repositories whose requests and bytes the status page counts since start (it shows the busiest 10); past it a new name takes the place of the least requested one.' },
  { path: 'status.window', type: 'duration', default: '60s', min: 1, doc: 'The recent window of the status page\'s hit ratio (beside the ratio since start).' },
  { path: 'upstreams', type: 'upstreams', default: ['https://registry-1.docker.io'], doc: 'Upstream registry instances: URLs, or {url, weight, max_fails, fail_timeout, backup} as nginx server lines. Env: comma-separated URLs. Reloaded on SIGHUP.' },
  { path: 'upstream.balance', type: 'enum', default: 'ip_hash', values: ['ip_hash', 'round_robin', 'least_conn'], doc: 'How a request picks an instance. ip_hash: by client address (IPv4 /24, whole IPv6) with rendezvous hashing, so removing an instance moves only its clients.' },
  { path: 'upstream.host_header', type: 'enum', default: 'upstream', values: ['upstream', 'client'], doc: 'Host sent upstream on passed-through requests: the instance\'s own, or the client\'s (nginx proxy_set_header Host $host).' },
  { path: 'upstream.health.interval', type: 'duration', default: '5s', min: 0, max: TIMER_MAX, doc: 'Active health check period (GET /v2/ on each instance; any HTTP answer below 500 is healthy); 0 turns it off.' },
  { path: 'upstream.health.timeout', type: 'duration', default: '2s', min: 0.001, max: TIMER_MAX, doc: 'Timeout of one active health check.' },
  { path: 'upstream.connect_timeout', type: 'duration', default: '10s', min: 0.001, max: TIMER_MAX, doc: 'TCP+TLS connect timeout to an upstream instance.' },
  { path: 'upstream.headers_timeout', type: 'duration', default: '60s', min: 0.001, max: TIMER_MAX, doc: 'Time the upstream has to answer with headers.' },
  { path: 'upstream.body_timeout', type: 'duration', default: '900s', min: 0.001, max: TIMER_MAX, doc: 'Longest pause between two chunks of an upstream body.' },
  { path: 'upstream.connections', type: 'int', default: 64, min: 1, doc: 'Keep-alive connections per upstream instance.' },
  { path: 'upstream.max_redirects', type: 'int', default: 3, min: 0, doc: 'Redirects followed for a blob (registry to object storage).' },
  { path: 'upstream.auth.username', type: 'string', default: '', doc: 'Basic credentials of the edge itself, for its token requests and basic challenges.' },
  { path: 'upstream.auth.password', type: 'string', default: '', secret: true, doc: 'Password for upstream.auth.username (prefer the env override).' },
  { path: 'upstream.auth.realms', type: 'strings', default: [], doc: 'Hosts allowed as token realms besides the upstream hosts themselves (Docker Hub: auth.docker.io). The edge never sends credentials elsewhere.' },
  { path: 'token.path', type: 'string', default: '', doc: 'Path of the token route on the edge (e.g. /token or /ECA/token); requests to it are forwarded to token.url, and every Bearer realm passing through is rewritten to it. Empty: off.' },
  { path: 'token.url', type: 'url', optional: true, default: '', doc: 'The token service (auth realm) the token route forwards to, e.g. https://auth.example.internal:9090/token.' },
  { path: 'auth.mode', type: 'enum', default: 'public', values: ['public', 'token', 'upstream-check'], doc: 'Who may read cached content. public: anyone (the edge pulls with its own upstream credentials). token: bearer tokens verified by the edge as registry:2 does (auth.token.*). upstream-check: the upstream is asked with the client\'s credentials (a HEAD) and a yes is kept for auth.check.ttl.' },
  { path: 'auth.token.realm', type: 'url', optional: true, default: '', doc: 'Realm in the challenges the edge gives in token mode; empty: the edge\'s own token route (token.path).' },
  { path: 'auth.token.service', type: 'string', default: '', doc: 'Service (token audience) the edge accepts, as the central registry\'s auth.token.service.' },
  { path: 'auth.token.issuer', type: 'string', default: '', doc: 'Issuer the edge accepts, as the central registry\'s auth.token.issuer.' },
  { path: 'auth.token.rootcertbundle', type: 'string', default: '', doc: 'PEM file with the certificates token signatures chain to, the same file as the central registry\'s auth.token.rootcertbundle.' },
  { path: 'auth.token.leeway', type: 'duration', default: '60s', min: 0, doc: 'Clock skew allowed on exp and nbf.' },
  { path: 'auth.htpasswd.path', type: 'string', default: '', doc: 'public mode: an htpasswd file (bcrypt, htpasswd -B) whose users alone may use the edge; empty: anyone.' },
  { path: 'auth.htpasswd.realm', type: 'string', default: 'registry-edge', doc: 'Realm of the Basic challenge for auth.htpasswd.path.' },
  { path: 'auth.check.ttl', type: 'duration', default: '60s', min: 0, doc: 'upstream-check mode: how long a yes from the upstream (per credential hash and repository) is reused; public mode with htpasswd: how long a verified password is. Refusals are never kept.' },
  { path: 'cache.dir', type: 'string', default: './data', doc: 'Cache directory (blobs, manifests, tags, temp fills on the same filesystem).' },
  { path: 'cache.maxsize', type: 'bytes', default: '10GiB', min: 1, doc: 'Disk budget of the cache: committed blobs, manifests and fills in progress (their announced size) together stay within it; least recently used blobs are evicted to make room. Tags and membership.log are small metadata outside it.' },
  { path: 'cache.tag_ttl', type: 'duration', default: '60s', min: 0, doc: 'How long a tag-to-digest mapping is served without asking the upstream (HEAD revalidation after it).' },
  { path: 'cache.max_stale', type: 'duration', default: '7d', min: 0, doc: 'How old a tag mapping may be and still be served while the upstream is unreachable or failing.' },
  { path: 'cache.revalidate_timeout', type: 'duration', default: '5s', min: 0.001, max: TIMER_MAX, doc: 'How long a tag revalidation (the HEAD after cache.tag_ttl) may take when a copy within cache.max_stale exists; after it the stale copy is served. Without such a copy the request waits upstream.headers_timeout.' },
  { path: 'cache.manifest_max_bytes', type: 'bytes', default: '4MiB', min: 1024, doc: 'Largest manifest accepted from the upstream (registry:2 uses 4 MiB).' },
  { path: 'cache.fsync', type: 'bool', default: true, doc: 'fsync a fill before it is committed, so a crash never leaves a torn blob.' },
  { path: 'cache.sync_read_max', type: 'duration', default: '1ms', min: 0, doc: 'Cached blobs are read on the event loop (like nginx without `aio threads`) while each 256 KiB read takes at most this (the page cache has it); after a slower read the rest of that copy uses the thread pool. 0: always the thread pool (for a slow cache disk).' },
  { path: 'cache.open_files', type: 'int', default: 256, min: 0, doc: 'Descriptors of cached blobs kept open between requests, as nginx open_file_cache max (a hit then costs no open, fstat and close); least recently used beyond it are closed. 0: open and close per request.' },
  { path: 'cache.open_files_idle', type: 'duration', default: '60s', min: 0.001, max: TIMER_MAX, doc: 'How long an unused descriptor of cache.open_files stays open (nginx open_file_cache inactive).' },
  { path: 'cache.max_blob_size', type: 'bytes', default: '0', min: 0, doc: 'Largest blob kept in the cache; a larger one is streamed to its clients (still verified) and not kept. 0: half of cache.maxsize. Never more than cache.maxsize.' },
  { path: 'cache.write_retry_interval', type: 'duration', default: '10s', min: 0.01, max: TIMER_MAX, doc: 'How often, while the cache cannot be written (disk full, read-only, I/O errors) and misses stream through uncached, a small probe file is written under tmp/; caching resumes when one succeeds.' },
  { path: 'cache.index_snapshot_interval', type: 'duration', default: '5m', min: 1, max: TIMER_MAX, doc: 'How often the blob index (every cached digest, its size and the least-recently-used order) is written to `index/snapshot` under cache.dir when it changed; also at shutdown. A restart reads it instead of a stat of every blob; after a crash, the uses of blobs since the last snapshot are lost from the order (commits and removals are found again on disk).' },
  { path: 'default_origin', type: 'string', default: '', doc: 'With origins: the origin (one of its hosts) for requests that name none (no ?ns=, no host prefix), e.g. Docker\'s registry-mirrors for docker.io. Required when origins is set; without origins there is one origin, built from the top-level keys.' },
  { path: 'unknown_ns', type: 'enum', default: 'refuse', values: ['refuse', 'default'], doc: 'With origins: a ?ns= naming no configured origin is refused (404 NAME_UNKNOWN, nothing dialled), or served by default_origin as if it had named none (no OCI-Namespace then). The edge never dials a host it was not configured with.' },
  { path: 'prewarm.token', type: 'string', default: '', doc: 'Bearer token the centre\'s registry sends to POST /notify on the admin listener (its notifications.endpoints[].headers: Authorization: [Bearer <token>]), and that `registry-edge prefetch` sends to POST /prefetch; compared in constant time. Empty: both routes are off (404). Prefer the env override.' },
  { path: 'prewarm.include', type: 'strings', default: ['**'], doc: 'Globs a pushed repository must match to be prefetched (`*` within a path component, `**` across them, `?` one character); a glob with a `:` matches `<repository>:<tag>` instead, e.g. `team/*:release-*`.' },
  { path: 'prewarm.exclude', type: 'strings', default: [], doc: 'Globs (as prewarm.include) of pushes never prefetched; they win over prewarm.include.' },
  { path: 'prewarm.platforms', type: 'strings', default: [], doc: 'Platforms (os/arch or os/arch/variant, e.g. linux/amd64, linux/arm64/v8) prefetched of an index pushed to the centre; empty: every manifest of the index.' },
  { path: 'prewarm.queue', type: 'int', default: 1000, min: 1, doc: 'Pushes waiting for a prefetch; a notification arriving when it is full is dropped (registry_edge_prewarm_events_total{result="dropped"} and a warn line), its image is fetched at its first pull.' },
  { path: 'prewarm.concurrency', type: 'int', default: 2, min: 1, doc: 'Images prefetched at once from notifications (each fetches its blobs one after the other), so prefetches leave the link to the centre to the zone\'s pulls.' },
  { path: 'prewarm.dedupe_ttl', type: 'duration', default: '24h', min: 1, doc: 'How long a notification\'s event id is remembered (the registry retries and may deliver an event twice); with zone.redis.url one replica of the zone takes each event.' },
  { path: 'prewarm.max_body', type: 'bytes', default: '1MiB', min: 1024, doc: 'Largest body POST /notify and POST /prefetch accept (413 beyond it).' },
  { path: 'startup.timeout', type: 'duration', default: '10s', min: 0.001, max: TIMER_MAX, doc: 'Deadline for the start-up file checks (TLS pair, cache.dir made and writable, auth files read), also in `config check`: a filesystem that has not answered by then (a hung mount) fails start-up with exit code 2 instead of hanging it.' },
  { path: 'zone.redis.url', type: 'string', default: '', doc: 'Redis shared by the replicas of one zone (redis:// or rediss://, e.g. redis://:secret@redis.zone-a:6379/0): one replica fetches each blob from the centre under a lease, and tag mappings, repository membership and upstream-check yes decisions are shared. Empty: no zone sharing, the edge works alone. While Redis is unreachable each replica works alone (registry_edge_zone_redis_up 0).' },
  { path: 'zone.redis.timeout', type: 'duration', default: '250ms', min: 0.001, max: TIMER_MAX, doc: 'Longest a Redis command or connection attempt may take; after it the edge answers as a lone one would (a fill of its own, no shared fact), so no request waits longer for Redis.' },
  { path: 'zone.redis.prefix', type: 'string', default: 'registry-edge:', doc: 'Prefix of every key the edge writes in zone.redis.url, so zones or other users can share one Redis.' },
  { path: 'zone.redis.reconnect_max', type: 'duration', default: '2s', min: 0.01, max: TIMER_MAX, doc: 'Longest pause between two reconnection attempts while Redis is unreachable (the pauses grow from 100 ms to it).' },
  { path: 'zone.lease_ttl', type: 'duration', default: '10s', min: 0.1, max: TIMER_MAX, doc: 'Life of a fill lease in Redis, renewed every third of it while the fill runs: a replica that dies mid-fill holds the blob for at most this before another fetches it.' },
  { path: 'zone.facts_ttl', type: 'duration', default: '24h', min: 0.001, doc: 'How long Redis keeps a repository membership one replica learnt from the centre, for the others to take instead of asking the centre (a replica that takes it keeps it as its own confirmation, as membership.log does). Tag mappings are kept there for cache.tag_ttl, upstream-check decisions for auth.check.ttl.' },
  { path: 'zone.warn_interval', type: 'duration', default: '30s', min: 0, doc: 'While Redis fails, at most one warn line per this interval (one info line when it answers again).' },
  { path: 'zone.secret', type: 'string', default: '', doc: 'Shared by the replicas of one zone: the bearer token their peer listeners require of each other (prefer the env override REGISTRY_EDGE_ZONE_SECRET). Required with zone.peer.addr.' },
  { path: 'zone.peer.addr', type: 'addr', optional: true, default: '', doc: 'host:port of the peer listener, from which the zone\'s other replicas stream the blobs this one holds or is filling (never an origin fetch on their behalf). Keep it on the internal network; empty: off.' },
  { path: 'zone.peer.url', type: 'url', optional: true, default: '', doc: 'How the other replicas reach this one\'s peer listener, e.g. http://10.0.3.7:5002 (https:// with zone.peer.tls). Required with zone.redis.url and zone.peer.addr.' },
  { path: 'zone.peer.tls', type: 'bool', default: false, doc: 'Serve the peer listener over TLS with the http.tls.* pair (reloaded with it); the other replicas must trust that certificate for the zone.peer.url host (NODE_EXTRA_CA_CERTS).' },
  { path: 'zone.peer.timeout', type: 'duration', default: '2s', min: 0.001, max: TIMER_MAX, doc: 'How long a replica waits for a peer\'s connection and answer headers; past it the peer counts as gone and its fill lease is taken over.' },
];

/**
 * The keys each entry of `origins.<host>` takes: the top-level keys that describe one
 * origin. Without `origins` the top-level keys are the one (default) origin.
 */
export const ORIGIN_KEYS: readonly KeySpec[] = [
  ...KEYS.filter((k) => k.path === 'upstreams' || /^(upstream|auth|token)\./.test(k.path) || ['cache.tag_ttl', 'cache.max_stale', 'cache.revalidate_timeout'].includes(k.path)),
  { path: 'push', type: 'bool', default: false, doc: 'Whether pushes (POST, PATCH, PUT, DELETE) to this origin are forwarded; others get 405 UNSUPPORTED. Default: false for an entry of origins (public origins are read-only); the origin built from the top-level keys always takes pushes, as before.' },
];

export interface UpstreamConfig {
  readonly url: string;
  readonly weight: number;
  readonly max_fails: number;
  /** seconds */
  readonly fail_timeout: number;
  readonly backup: boolean;
}

export interface Config {
  readonly log: { readonly level: string; readonly sync: boolean; readonly timestamp: 'epoch' | 'iso' };
  readonly http: {
    readonly addr: string;
    readonly host: string;
    readonly tls: { readonly certificate: string; readonly key: string };
    readonly plain_addr: string;
    readonly trusted_proxies: readonly string[];
    readonly headers_timeout: number;
    readonly idle_timeout: number;
    readonly body_timeout: number;
    readonly max_connections: number;
    readonly shutdown_timeout: number;
  };
  /** A count, or 'auto' (one per core), resolved when serving starts. */
  readonly workers: number | 'auto';
  readonly admin: { readonly addr: string };
  readonly upstreams: readonly UpstreamConfig[];
  readonly upstream: {
    readonly balance: 'ip_hash' | 'round_robin' | 'least_conn';
    readonly host_header: 'upstream' | 'client';
    readonly health: { readonly interval: number; readonly timeout: number };
    readonly connect_timeout: number;
    readonly headers_timeout: number;
    readonly body_timeout: number;
    readonly connections: number;
    readonly max_redirects: number;
    readonly auth: { readonly username: string; readonly password: string; readonly realms: readonly string[] };
  };
  readonly token: { readonly path: string; readonly url: string };
  readonly auth: {
    readonly mode: 'public' | 'token' | 'upstream-check';
    readonly token: { readonly realm: string; readonly service: string; readonly issuer: string; readonly rootcertbundle: string; readonly leeway: number };
    readonly htpasswd: { readonly path: string; readonly realm: string };
    readonly check: { readonly ttl: number };
  };
  readonly cache: {
    readonly dir: string;
    readonly maxsize: number;
    readonly tag_ttl: number;
    readonly max_stale: number;
    readonly revalidate_timeout: number;
    readonly manifest_max_bytes: number;
    readonly fsync: boolean;
    readonly sync_read_max: number;
    readonly open_files: number;
    readonly open_files_idle: number;
    readonly max_blob_size: number;
    readonly write_retry_interval: number;
    readonly index_snapshot_interval: number;
  };
  readonly startup: { readonly timeout: number };
  readonly prewarm: {
    readonly token: string;
    readonly include: readonly string[];
    readonly exclude: readonly string[];
    readonly platforms: readonly string[];
    readonly queue: number;
    readonly concurrency: number;
    /** seconds */
    readonly dedupe_ttl: number;
    readonly max_body: number;
  };
  readonly status: { readonly errors: number; readonly repositories: number; readonly window: number };
  readonly zone: {
    readonly redis: { readonly url: string; readonly timeout: number; readonly prefix: string; readonly reconnect_max: number };
    readonly lease_ttl: number;
    readonly facts_ttl: number;
    readonly warn_interval: number;
    readonly secret: string;
    readonly peer: { readonly addr: string; readonly url: string; readonly tls: boolean; readonly timeout: number };
  };
  readonly default_origin: string;
  readonly unknown_ns: 'refuse' | 'default';
  /**
   * The origins the edge fronts, the default one first. Without `origins` in the file:
   * one, built from the top-level keys, with host ''.
   */
  readonly origins: readonly OriginConfig[];
}

/** One origin: the registry a host name (in ?ns= or a path prefix) stands for. */
export interface OriginConfig {
  /** The registry host clients name it by (docker.io, ghcr.io, 10.0.0.5:5000); '' for the one origin of a config without origins. */
  readonly host: string;
  /** What its keys are called in problem lines: '' (top level) or `origins.<host>.`. */
  readonly keyPrefix: string;
  readonly push: boolean;
  readonly upstreams: Config['upstreams'];
  readonly upstream: Config['upstream'];
  readonly token: Config['token'];
  readonly auth: Config['auth'];
  readonly cache: Pick<Config['cache'], 'tag_ttl' | 'max_stale' | 'revalidate_timeout'>;
}

/**
 * A registry host as an origin key: lower-case DNS labels or an IPv4 address, optional
 * port, with a dot or a colon in it (as Docker tells a registry host from a repository
 * component), so it cannot be mistaken for the first component of a repository name
 * that clients send without a prefix.
 */
export const ORIGIN_HOST = /^(?=[^/]*[.:])[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::\d{1,5})?$/;

/**
 * `origins.ghcr.io.upstream.auth.password` → `REGISTRY_EDGE_ORIGINS_GHCR_IO_UPSTREAM_AUTH_PASSWORD`:
 * the host upper-cased with its dots, dashes and colons as `_`.
 */
export function originEnvName(host: string, path: string): string {
  return `REGISTRY_EDGE_ORIGINS_${host.toUpperCase().replace(/[.:-]/g, '_')}_${path.replace(/\./g, '_').toUpperCase()}`;
}

/** `cache.tag_ttl` → `REGISTRY_EDGE_CACHE_TAG_TTL`, as registry:2 maps `REGISTRY_<PATH>`. */
export function envName(path: string): string {
  return 'REGISTRY_EDGE_' + path.replace(/\./g, '_').toUpperCase();
}
