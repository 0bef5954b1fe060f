/**
 * Every config key, its type, default and meaning, in one table. The loader, the
 * env overrides (`REGISTRY_EDGE_<PATH>`) and `config reference` all read this table,
 * so a key cannot exist in one place and be missing from another.
 */
export type KeyType = 'string' | 'int' | 'bytes' | 'duration' | 'bool' | 'addr' | 'enum' | 'upstreams' | 'strings';

export interface KeySpec {
  readonly path: string;
  readonly type: KeyType;
  readonly default: unknown;
  readonly doc: string;
  readonly values?: readonly string[];
  readonly min?: number;
}

export const KEYS: readonly KeySpec[] = [
  { path: 'log.level', type: 'enum', default: 'info', values: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], doc: 'pino log level; access log lines are at info.' },
  { path: 'http.addr', type: 'addr', default: '0.0.0.0:5000', doc: 'host:port of the client listener (registry API).' },
  { path: 'http.host', type: 'string', default: '', doc: 'Public base URL of the edge (as registry:2 http.host), used to rewrite Location headers; empty means the request\'s Host.' },
  { path: 'http.headers_timeout', type: 'duration', default: '60s', min: 1, doc: 'Time a client has to send its request headers.' },
  { path: 'http.idle_timeout', type: 'duration', default: '75s', min: 1, doc: 'Keep-alive idle time of client connections.' },
  { path: 'http.body_timeout', type: 'duration', default: '900s', min: 1, doc: 'Longest pause in a request or response body before the connection is closed (nginx proxy_read_timeout).' },
  { path: 'admin.addr', type: 'addr', default: '127.0.0.1:5001', doc: 'host:port of /metrics, /healthz and /readyz; keep it off the public interface.' },
  { path: 'upstreams', type: 'upstreams', default: ['https://registry-1.docker.io'], doc: 'Upstream registry base URLs (list of strings, or of {url}). Env: comma-separated.' },
  { path: 'upstream.connect_timeout', type: 'duration', default: '10s', min: 0.001, doc: 'TCP+TLS connect timeout to an upstream instance.' },
  { path: 'upstream.headers_timeout', type: 'duration', default: '60s', min: 0.001, doc: 'Time the upstream has to answer with headers.' },
  { path: 'upstream.body_timeout', type: 'duration', default: '900s', min: 0.001, doc: 'Longest pause between two chunks of an upstream body.' },
  { path: 'upstream.connections', type: 'int', default: 64, min: 1, doc: 'Keep-alive connections per upstream instance.' },
  { path: 'upstream.max_redirects', type: 'int', default: 3, min: 0, doc: 'Redirects followed for a blob (registry to object storage).' },
  { path: 'upstream.auth.username', type: 'string', default: '', doc: 'Basic credentials of the edge itself, for its token requests and basic challenges.' },
  { path: 'upstream.auth.password', type: 'string', default: '', doc: 'Password for upstream.auth.username (prefer the env override).' },
  { path: 'upstream.auth.realms', type: 'strings', default: [], doc: 'Hosts allowed as token realms besides the upstream hosts themselves (Docker Hub: auth.docker.io). The edge never sends credentials elsewhere.' },
  { path: 'auth.mode', type: 'enum', default: 'public', values: ['public', 'passthrough'], doc: 'public: the edge pulls with its own upstream credentials and serves anyone. passthrough: client Authorization is forwarded upstream and challenges are passed back.' },
  { path: 'cache.dir', type: 'string', default: './data', doc: 'Cache directory (blobs, manifests, tags, temp fills on the same filesystem).' },
  { path: 'cache.maxsize', type: 'bytes', default: '10GiB', min: 1, doc: 'Blob cache size; least recently used blobs are evicted beyond it.' },
  { path: 'cache.tag_ttl', type: 'duration', default: '60s', min: 0, doc: 'How long a tag-to-digest mapping is served without asking the upstream (HEAD revalidation after it).' },
  { path: 'cache.max_stale', type: 'duration', default: '7d', min: 0, doc: 'How old a tag mapping may be and still be served while the upstream is unreachable or failing.' },
  { path: 'cache.manifest_max_bytes', type: 'bytes', default: '4MiB', min: 1024, doc: 'Largest manifest accepted from the upstream (registry:2 uses 4 MiB).' },
  { path: 'cache.fsync', type: 'bool', default: true, doc: 'fsync a fill before it is committed, so a crash never leaves a torn blob.' },
];

export interface UpstreamConfig {
  readonly url: string;
}

export interface Config {
  readonly log: { readonly level: string };
  readonly http: {
    readonly addr: string;
    readonly host: string;
    readonly headers_timeout: number;
    readonly idle_timeout: number;
    readonly body_timeout: number;
  };
  readonly admin: { readonly addr: string };
  readonly upstreams: readonly UpstreamConfig[];
  readonly upstream: {
    readonly connect_timeout: number;
    readonly headers_timeout: number;
    readonly body_timeout: number;
    readonly connections: number;
    readonly max_redirects: number;
    readonly auth: { readonly username: string; readonly password: string; readonly realms: readonly string[] };
  };
  readonly auth: { readonly mode: 'public' | 'passthrough' };
  readonly cache: {
    readonly dir: string;
    readonly maxsize: number;
    readonly tag_ttl: number;
    readonly max_stale: number;
    readonly manifest_max_bytes: number;
    readonly fsync: boolean;
  };
}

/** `cache.tag_ttl` → `REGISTRY_EDGE_CACHE_TAG_TTL`, as registry:2 maps `REGISTRY_<PATH>`. */
export function envName(path: string): string {
  return 'REGISTRY_EDGE_' + path.replace(/\./g, '_').toUpperCase();
}
