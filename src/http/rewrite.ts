/**
 * Rewrites of upstream headers that name the upstream, so that clients only ever talk
 * to the edge: upload Location (pinned to the instance that opened the upload),
 * pagination Link, and the realm of Bearer challenges (to the edge's token route).
 */
import { formatChallenge, parseChallenge } from '../upstream/challenge.js';
import type { Instance } from '../upstream/client.js';

/** Query parameter carrying the upload's instance in rewritten Location URLs. */
export const PIN_PARAM = '_edge_upstream';

/** The edge's public base URL for a request: `http.host` when configured, else the request's own scheme and Host. */
export function publicBase(configured: string, secure: boolean, hostHeader: string | undefined): string {
  if (configured) return configured;
  return `${secure ? 'https' : 'http'}://${hostHeader ?? 'localhost'}`;
}

/**
 * A URL from the upstream (absolute or relative) as the client must see it: on the
 * edge's base. Upload URLs also carry the instance key, so every PATCH and PUT of the
 * upload goes back to the instance that holds its state. A URL on the client's own Host
 * (an upstream that built it from Host) is the edge's too, and moves to the base.
 */
export function rewriteLocation(location: string, instance: Instance, base: string, clientHost?: string): string {
  let url: URL;
  try {
    url = new URL(location, instance.origin + instance.basePath + '/');
  } catch {
    return location;
  }
  // registry:2 builds URLs from X-Forwarded-Proto/Host, so they may already name the edge.
  // Redirects anywhere else (object storage) are the client's to follow as they are.
  const ours = url.origin === instance.origin || url.origin === new URL(base).origin || (clientHost !== undefined && url.host === clientHost.toLowerCase());
  if (!ours) return location;
  let path = url.pathname;
  if (instance.basePath && path.startsWith(instance.basePath + '/')) path = path.slice(instance.basePath.length);
  // The query is kept byte for byte (registry:2's _state is signed): the pin is appended, not re-serialized.
  const pin = /\/blobs\/uploads\//.test(path) ? `${url.search ? '&' : '?'}${PIN_PARAM}=${instance.key}` : '';
  return `${base}${path}${url.search}${pin}`;
}

/** `<url>; rel="next"` entries whose URL names the upstream, moved to the edge. */
export function rewriteLink(link: string, instance: Instance, base: string, clientHost?: string): string {
  return link.replace(/<([^>]*)>/g, (whole, target: string) => {
    if (!/^https?:\/\//i.test(target)) return whole;
    return `<${rewriteLocation(target, instance, base, clientHost)}>`;
  });
}

/**
 * Under a host prefix (`/v2/ghcr.io/...`) the client's next request (an upload's PATCH,
 * the next page) must carry the prefix again: absolute URLs on the base and relative
 * Link targets (registry:2 paginates tags and the catalog with `</v2/...>`) both get it.
 */
export function withPrefix(header: string, base: string, prefix: string): string {
  if (!prefix) return header;
  return header.split(`${base}/v2/`).join(`${base}/v2/${prefix}/`).replace(/(^|<)\/v2\//g, `$1/v2/${prefix}/`);
}

/** A Bearer challenge with its realm pointed at the edge's token route. */
export function rewriteRealm(header: string, realm: string): string {
  const challenge = parseChallenge(header);
  if (!challenge || challenge.scheme !== 'bearer' || !challenge.params.realm) return header;
  return formatChallenge({ scheme: challenge.scheme, params: { ...challenge.params, realm } });
}

/** Removes the pin from a client's request target, returning the target the upstream expects and the pinned key. */
export function takePin(path: string, query: string): { target: string; pin: string | undefined } {
  if (!query.includes(PIN_PARAM)) return { target: path + query, pin: undefined };
  let pin: string | undefined;
  const kept = query.slice(1).split('&').filter((pair) => {
    if (!pair.startsWith(`${PIN_PARAM}=`)) return true;
    pin = pair.slice(PIN_PARAM.length + 1);
    return false;
  });
  return { target: kept.length ? `${path}?${kept.join('&')}` : path, pin };
}
