/** Per-request facts gathered for the access log and metrics. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { UpstreamTrace } from '../upstream/client.js';

/** Also the trace of the upstream requests made for it: its id goes upstream, the instance that answered comes back. */
export interface Exchange extends UpstreamTrace {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly path: string;
  readonly query: string;
  /** The path and query the origin is asked for: without the origin's host prefix and without ?ns=. */
  upstreamPath: string;
  upstreamQuery: string;
  /** The host prefix the client put before the name (re-added to Location and Link), or ''. */
  prefix: string;
  /** The host of the origin serving the request ('' without origins), for the access log and metrics. */
  origin: string;
  readonly startedAt: number;
  /** The client's address: the socket peer, or what a trusted proxy in front says. */
  readonly client: string;
  /** The request came over TLS. */
  readonly secure: boolean;
  /** The edge's public base URL for this request (http.host, or scheme + Host). */
  readonly base: string;
  route: string;
  /** The repository named (a validated name), for the status page's top repositories. */
  repository: string | undefined;
  /** Who the client is: the verified token's subject, the htpasswd user; undefined when the edge does not know. */
  subject: string | undefined;
  /** hit | miss | follow | revalidated | stale | pass: how the cache answered. */
  cache: string | undefined;
  /** Where body bytes came from, for registry_edge_served_bytes_total. */
  source: 'cache' | 'fill' | 'upstream' | undefined;
  /** Body bytes the response was meant to carry (for served-bytes accounting). */
  bodyBytes: number;
  error: unknown;
}

export function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
