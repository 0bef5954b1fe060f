/**
 * Read-only routes the edge does not cache (tags/list, _catalog, referrers, and /v2/
 * itself in passthrough mode): forwarded to the upstream and streamed back with the
 * headers a client needs, pagination `Link` included.
 */
import type { AuthMode } from '../proxy/upstream-auth.js';
import { upstreamAuth } from '../proxy/upstream-auth.js';
import type { UpstreamClient } from '../upstream/client.js';
import { header, type Exchange } from './exchange.js';
import { streamBody } from './respond.js';

const FORWARDED_RESPONSE_HEADERS = [
  'content-type', 'content-length', 'link', 'www-authenticate', 'docker-distribution-api-version',
  'docker-content-digest', 'oci-filters-applied', 'retry-after', 'etag', 'last-modified',
] as const;

export async function passThrough(ex: Exchange, upstream: UpstreamClient, mode: AuthMode, scope: string): Promise<void> {
  const method = ex.req.method === 'HEAD' ? 'HEAD' : 'GET';
  const accept = header(ex.req, 'accept');
  const res = await upstream.request({
    method,
    path: ex.path + ex.query,
    headers: accept ? { accept } : {},
    auth: upstreamAuth(mode, scope, header(ex.req, 'authorization')),
  });
  const headers: Record<string, string | string[]> = {};
  for (const name of FORWARDED_RESPONSE_HEADERS) {
    const value = res.headers[name];
    if (value !== undefined) headers[name] = value;
  }
  ex.cache = 'pass';
  ex.source = 'upstream';
  ex.res.writeHead(res.status, headers);
  await new Promise<void>((resolve) => {
    streamBody(ex.res, res.body, (err) => {
      if (err) ex.error = err;
      resolve();
    });
  });
}
