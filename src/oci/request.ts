/**
 * Parses a request line into one validated value before any handler or I/O runs.
 * Handlers never look at raw paths: what reaches them has passed the grammar.
 */
import { RegistryError } from './errors.js';
import { isValidName, isValidTag, looksLikeDigest, parseDigest, type Digest } from './grammar.js';

export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest };

export type DistributionRequest =
  | { route: 'base' }
  | { route: 'catalog' }
  | { route: 'blob'; name: string; digest: Digest }
  | { route: 'manifest'; name: string; reference: Reference }
  | { route: 'tags'; name: string }
  | { route: 'referrers'; name: string; digest: Digest }
  | { route: 'upload'; name: string; session: string | undefined };

export type Route = DistributionRequest['route'];

// Suffix patterns after `/v2/<name>`; the name is everything before the last match.
const SUFFIXES: Array<[RegExp, (name: string, m: RegExpExecArray) => DistributionRequest]> = [
  [/\/blobs\/uploads\/?$/, (name) => ({ route: 'upload', name, session: undefined })],
  [/\/blobs\/uploads\/([^/]+)$/, (name, m) => ({ route: 'upload', name, session: m[1] })],
  [/\/blobs\/([^/]+)$/, (name, m) => ({ route: 'blob', name, digest: blobDigestOrThrow(m[1] ?? '') })],
  [/\/manifests\/([^/]+)$/, (name, m) => ({ route: 'manifest', name, reference: referenceOrThrow(m[1] ?? '') })],
  [/\/tags\/list$/, (name) => ({ route: 'tags', name })],
  [/\/referrers\/([^/]+)$/, (name, m) => ({ route: 'referrers', name, digest: digestOrThrow(m[1] ?? '') })],
];

function digestOrThrow(text: string): Digest {
  const digest = parseDigest(text);
  if (!digest) throw new RegistryError('DIGEST_INVALID', 'provided digest is not a valid sha256 or sha512 digest', { digest: text.slice(0, 200) });
  return digest;
}

/** Text not even shaped like a digest names no blob: 404, as the spec gives for a blob that does not exist. */
function blobDigestOrThrow(text: string): Digest {
  if (!looksLikeDigest(text)) throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { digest: text.slice(0, 200) });
  return digestOrThrow(text);
}

/**
 * A tag outside the grammar names no manifest, so it is one that does not exist: 404
 * (the spec's answer for a manifest that does not exist, and registry:2's for every
 * method). It never reaches the upstream or a cache key.
 */
function referenceOrThrow(text: string): Reference {
  if (looksLikeDigest(text)) return { kind: 'digest', digest: digestOrThrow(text) };
  if (!isValidTag(text)) throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown: the reference is not a valid tag', { tag: text.slice(0, 200) });
  return { kind: 'tag', tag: text };
}

// A '%' not followed by two hex digits: the request target is not a URI (RFC 3986 §2.1).
const MALFORMED_PERCENT = /%(?![0-9A-Fa-f]{2})/;

/**
 * `pathname` is the raw path without the query string. Returns undefined for paths
 * outside `/v2/`; throws RegistryError for malformed ones inside it.
 */
export function parseDistributionPath(pathname: string): DistributionRequest | undefined {
  if (pathname === '/v2' || pathname === '/v2/') return { route: 'base' };
  if (!pathname.startsWith('/v2/')) return undefined;
  if (MALFORMED_PERCENT.test(pathname)) {
    throw new RegistryError('NAME_INVALID', 'the request path is not a URI: a % must be followed by two hex digits', { path: pathname.slice(0, 300) });
  }
  if (pathname === '/v2/_catalog') return { route: 'catalog' };
  const rest = pathname.slice(4);
  for (const [re, build] of SUFFIXES) {
    const m = re.exec(rest);
    if (!m) continue;
    const name = rest.slice(0, m.index);
    // Percent-encodings, dot segments and upper case all fail the grammar, so nothing odd reaches a path.
    if (!isValidName(name)) throw new RegistryError('NAME_INVALID', 'invalid repository name', { name: name.slice(0, 300) });
    return build(name, m);
  }
  throw new RegistryError('NAME_UNKNOWN', 'unknown distribution route', { path: pathname.slice(0, 300) }, 404);
}

/**
 * `/v2/<host>/<name>/...` where `<host>` is one of `hosts` (a registries.conf prefix
 * mirror, `location = "edge:5000/ghcr.io"`, or a containerd mirror with
 * `override_path = true` and `server = "https://edge:5000/v2/ghcr.io"`): the host and
 * the path as that origin names it. Repository components may contain dots, so only a
 * configured host is taken as a prefix, never anything host-shaped.
 */
export function splitOriginPrefix(pathname: string, hosts: ReadonlyMap<string, unknown>): { host: string; path: string } | undefined {
  if (!pathname.startsWith('/v2/')) return undefined;
  const end = pathname.indexOf('/', 4);
  if (end < 0) return undefined;
  const host = pathname.slice(4, end);
  return hosts.has(host) ? { host, path: `/v2${pathname.slice(end)}` } : undefined;
}

/**
 * containerd's `ns` (the registry host of the image reference, on every request to a
 * mirror) and the query without it: it names the origin to the edge and is no business
 * of the origin's, so it is never forwarded (Dragonfly's forwarding it drew 400s).
 */
export function takeNamespace(query: string): { ns: string | undefined; rest: string } {
  if (!query.includes('ns=')) return { ns: undefined, rest: query };
  let ns: string | undefined;
  const kept = query.slice(1).split('&').filter((pair) => {
    if (!pair.startsWith('ns=')) return true;
    // A malformed escape stays as sent: it then names no origin and is refused.
    try {
      ns = decodeURIComponent(pair.slice(3));
    } catch {
      ns = pair.slice(3);
    }
    return false;
  });
  return { ns, rest: kept.length ? `?${kept.join('&')}` : '' };
}
