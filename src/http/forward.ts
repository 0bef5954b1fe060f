/**
 * Everything the edge does not answer from its cache goes to an upstream instance,
 * streamed both ways with no size limit: pushes (uploads, manifest PUT, mounts),
 * deletes, and the read-only routes (tags, catalog, referrers). Request and response
 * headers are rewritten as the nginx tier did (X-Real-IP, X-Forwarded-*, Host), and
 * every URL or realm naming the upstream is rewritten to the edge.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Transform, type Readable } from 'node:stream';
import type { UpstreamAuth, UpstreamClient, UpstreamResponse } from '../upstream/client.js';
import type { Exchange } from './exchange.js';
import { REQUEST_ID } from './request-id.js';
import { streamBody } from './respond.js';
import { rewriteLink, rewriteLocation, rewriteRealm, takePin, withPrefix } from './rewrite.js';

export interface ForwardSettings {
  readonly upstream: UpstreamClient;
  /** 'client': send the client's Host upstream (nginx `proxy_set_header Host $host`). */
  readonly hostHeader: 'upstream' | 'client';
  /**
   * http.host, when set: the authority for X-Forwarded-Host/Proto, so the upstream builds
   * its URLs on the public name and nothing of the client's Host reaches what it writes.
   */
  readonly publicUrl: URL | undefined;
  /** Absolute URL of the edge's token route, when one is configured. */
  readonly tokenRealm: (ex: Exchange) => string | undefined;
}

// RFC 9110 §7.6.1 hop-by-hop fields, plus what the edge sets itself.
const DROP_REQUEST = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'host', 'expect', 'x-real-ip', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host',
]);
// x-request-id: the client gets the id the edge logged.
const DROP_RESPONSE = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'x-request-id']);

function requestHeaders(ex: Exchange, settings: ForwardSettings, auth: UpstreamAuth): Record<string, string> {
  const out: Record<string, string> = {};
  const raw = ex.req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] ?? '').toLowerCase();
    if (DROP_REQUEST.has(name)) continue;
    const value = raw[i + 1] ?? '';
    out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`;
  }
  // The edge's own credentials replace the client's when it pulls on its own behalf.
  if (auth?.kind === 'edge') delete out.authorization;
  const peer = ex.req.socket.remoteAddress ?? '';
  const incoming = ex.req.headers['x-forwarded-for'];
  out['x-forwarded-for'] = incoming ? `${Array.isArray(incoming) ? incoming.join(', ') : incoming}, ${peer}` : peer;
  out['x-real-ip'] = ex.client;
  const host = ex.req.headers.host;
  if (host && settings.hostHeader === 'client') out.host = host;
  const { publicUrl } = settings;
  if (publicUrl) {
    out['x-forwarded-proto'] = publicUrl.protocol.slice(0, -1);
    out['x-forwarded-host'] = publicUrl.host;
  } else {
    out['x-forwarded-proto'] = ex.secure ? 'https' : 'http';
    if (host) out['x-forwarded-host'] = host;
  }
  return out;
}

function responseHeaders(ex: Exchange, res: UpstreamResponse, settings: ForwardSettings): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(res.headers as IncomingHttpHeaders)) {
    if (value === undefined || DROP_RESPONSE.has(name)) continue;
    out[name] = value;
  }
  out[REQUEST_ID] = ex.requestId;
  const clientHost = ex.req.headers.host;
  const prefixed = (header: string): string => withPrefix(header, ex.base, ex.prefix);
  if (typeof out.location === 'string') out.location = prefixed(rewriteLocation(out.location, res.instance, ex.base, clientHost));
  if (typeof out.link === 'string') out.link = prefixed(rewriteLink(out.link, res.instance, ex.base, clientHost));
  const realm = settings.tokenRealm(ex);
  const challenge = out['www-authenticate'];
  if (realm && challenge !== undefined) {
    out['www-authenticate'] = Array.isArray(challenge) ? challenge.map((c) => rewriteRealm(c, realm)) : rewriteRealm(challenge, realm);
  }
  return out;
}

/** Copies the bytes that flow through, up to `limit`, for a caller that needs them afterwards (a pushed manifest). */
export class BoundedTee extends Transform {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private readonly limit: number;
  overflowed = false;

  constructor(limit: number) {
    super();
    this.limit = limit;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (err: null, chunk: Buffer) => void): void {
    this.size += chunk.length;
    if (this.size <= this.limit) this.chunks.push(chunk);
    else this.overflowed = true;
    done(null, chunk);
  }

  bytes(): Buffer | undefined {
    return this.overflowed ? undefined : Buffer.concat(this.chunks);
  }
}

export interface ForwardOptions {
  readonly auth: UpstreamAuth;
  /** Wraps the request body on its way upstream (to copy a pushed manifest). */
  readonly body?: Readable;
  /** Runs on the upstream's answer before the client sees it (so the edge's state is current when the client moves on). */
  readonly beforeReply?: (res: UpstreamResponse) => Promise<void>;
}

export async function forward(ex: Exchange, settings: ForwardSettings, opts: ForwardOptions): Promise<UpstreamResponse> {
  const method = ex.req.method ?? 'GET';
  const { target, pin } = takePin(ex.upstreamPath, ex.upstreamQuery);
  const hasBody = method !== 'GET' && method !== 'HEAD';
  // A client that leaves before the answer is complete takes its upstream request with it,
  // instead of leaving it to run until the upstream timeouts.
  const gone = new AbortController();
  ex.res.once('close', () => {
    if (!ex.res.writableFinished) gone.abort();
  });
  const res = await settings.upstream.request({
    method,
    path: target,
    headers: requestHeaders(ex, settings, opts.auth),
    auth: opts.auth?.kind === 'edge' ? opts.auth : undefined,
    client: ex.client,
    instanceKey: pin,
    body: hasBody ? (opts.body ?? ex.req) : undefined,
    signal: gone.signal,
    trace: ex,
  });
  if (opts.beforeReply) await opts.beforeReply(res);
  ex.cache = 'pass';
  ex.source = 'upstream';
  ex.res.writeHead(res.status, responseHeaders(ex, res, settings));
  await new Promise<void>((resolve) => {
    streamBody(ex.res, res.body, (err) => {
      if (err) ex.error = err;
      resolve();
    });
  });
  return res;
}
