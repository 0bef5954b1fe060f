/**
 * The client-facing request handler: parse once into a validated request, dispatch by
 * route and method, turn every failure into the OCI error envelope, and log one line
 * per request (and hand it to the status page's recorder).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { RegistryError } from '../oci/errors.js';
import { parseDistributionPath, splitOriginPrefix, takeNamespace, type DistributionRequest } from '../oci/request.js';
import type { Origin, OriginTable } from '../origins.js';
import { UpstreamAnswer } from '../upstream/upstream-answer.js';
import { asClient, pullScope, upstreamAuth } from '../upstream/upstream-auth.js';
import { clientAddress, type TrustedProxies } from './client-address.js';
import { getBlob, headBlob } from './blobs.js';
import { exhaustionCode, type DescriptorAlarm } from './descriptors.js';
import type { Exchange } from './exchange.js';
import { forward } from './forward.js';
import { deleteManifest, pushManifest, serveManifest } from './manifests.js';
import { API_VERSION_HEADER, sendError } from './respond.js';
import { publicBase, rewriteRealm } from './rewrite.js';
import { REQUEST_ID, requestId } from './request-id.js';
import type { StatusRecorder } from './status.js';
import { forwardToken } from './token-route.js';

export interface RouterDeps {
  readonly origins: OriginTable;
  readonly publicHost: string;
  readonly trustedProxies: TrustedProxies;
  readonly manifestMaxBytes: number;
  readonly metrics: Metrics;
  readonly descriptors: DescriptorAlarm;
  readonly log: Logger;
  readonly status: StatusRecorder;
}

const BASE_BODY = '{}';

/** What the edge answers itself, from the origin's cache, and what it forwards to the origin; by route and method. */
async function dispatch(ex: Exchange, parsed: DistributionRequest, origin: Origin, manifestMaxBytes: number): Promise<void> {
  const method = ex.req.method ?? 'GET';
  const read = method === 'GET' || method === 'HEAD';
  if ((!read || parsed.route === 'upload') && parsed.route !== 'base' && !origin.push) {
    throw new RegistryError('UNSUPPORTED', `this edge takes no pushes for ${origin.host} (origins.${origin.host}.push is false)`, { origin: origin.host });
  }
  const clientAuth = ex.req.headers.authorization;
  const clientOwn = { auth: asClient(clientAuth) };
  const { gate } = origin;
  const mode = gate.mode;
  switch (parsed.route) {
    case 'base':
      if (!read) break;
      if (mode === 'upstream-check') return void (await forward(ex, origin.forward, clientOwn));
      ex.subject = await gate.base(clientAuth, ex.base);
      ex.res.writeHead(200, { 'content-type': 'application/json', 'content-length': BASE_BODY.length, [API_VERSION_HEADER[0]]: API_VERSION_HEADER[1], [REQUEST_ID]: ex.requestId });
      ex.res.end(method === 'HEAD' ? undefined : BASE_BODY);
      return;
    case 'blob':
      if (read) ex.subject = await gate.admit(parsed, clientAuth, ex.base);
      if (method === 'HEAD') return headBlob(ex, origin.blobs, parsed.name, parsed.digest);
      if (method === 'GET') return getBlob(ex, origin.blobs, parsed.name, parsed.digest);
      if (method === 'DELETE') {
        const { name, digest } = parsed;
        return void (await forward(ex, origin.forward, { ...clientOwn, beforeReply: async (res) => void (res.status === 202 && (await origin.blobs.forgetDeleted(name, digest))) }));
      }
      break;
    case 'manifest':
      if (read) ex.subject = await gate.admit({ ...parsed, accept: ex.req.headers.accept }, clientAuth, ex.base);
      if (read) return serveManifest(ex, origin.manifests, parsed.name, parsed.reference, { settings: origin.forward, auth: upstreamAuth(mode, pullScope(parsed.name), clientAuth) });
      if (method === 'PUT') return pushManifest(ex, origin.forward, origin.manifests, parsed.name, parsed.reference, manifestMaxBytes);
      if (method === 'DELETE') return deleteManifest(ex, origin.forward, origin.manifests, parsed.name, parsed.reference);
      break;
    case 'upload':
      return void (await forward(ex, origin.forward, clientOwn));
    case 'tags':
    case 'referrers':
      if (!read) break;
      return void (await forward(ex, origin.forward, { auth: upstreamAuth(mode, pullScope(parsed.name), clientAuth) }));
    case 'catalog':
      if (!read) break;
      return void (await forward(ex, origin.forward, { auth: upstreamAuth(mode, 'registry:catalog:*', clientAuth) }));
  }
  throw new RegistryError('UNSUPPORTED', `${method} is not supported on this route`, { route: parsed.route });
}

const OUT_OF_DESCRIPTORS = new RegistryError('UNAVAILABLE', 'the edge is out of file descriptors; try again', undefined, 503, { 'retry-after': '1' });

/**
 * The origin a request is for: the one its ?ns= names (a closed list: an unknown host
 * is refused, never dialled), else the one its host prefix names, else the default.
 * Sets the path the origin is asked (without the prefix) and the OCI-Namespace answer
 * header; throws the refusal.
 */
function chooseOrigin(ex: Exchange, table: OriginTable, ns: string | undefined): Origin {
  if (table.byHost.size === 0) return table.fallback;
  const prefixed = splitOriginPrefix(ex.path, table.byHost);
  if (prefixed) {
    ex.prefix = prefixed.host;
    ex.upstreamPath = prefixed.path;
  }
  if (ns === undefined) return (prefixed && table.byHost.get(prefixed.host)) || table.fallback;
  const named = table.byHost.get(ns);
  // Configured so, an ns this edge does not front is served as a request that named none.
  if (!named && !prefixed && table.unknownNs === 'default') return table.fallback;
  if (!named || (prefixed && prefixed.host !== ns)) {
    const why = named ? `the path names origin ${prefixed?.host}, ns names ${ns}` : 'ns names no origin of this edge';
    throw new RegistryError('NAME_UNKNOWN', `${why}; origins: ${[...table.byHost.keys()].join(', ')}`, { ns: ns.slice(0, 200) }, 404);
  }
  // Distribution spec, "Registry Proxying": a registry that honoured ns says so.
  ex.res.setHeader('OCI-Namespace', named.host);
  return named;
}

export function createRouter(deps: RouterDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { metrics, log } = deps;
  const table = deps.origins;
  const tokenRoutes = new Map<string, Origin>();
  for (const o of [table.fallback, ...table.byHost.values()]) if (o.token.path && o.token.url && !tokenRoutes.has(o.token.path)) tokenRoutes.set(o.token.path, o);
  const originOf = (ex: Exchange): Origin => table.byHost.get(ex.origin) ?? table.fallback;
  const fail = (ex: Exchange, err: unknown): void => {
    ex.error = err;
    const realm = originOf(ex).forward.tokenRealm(ex);
    const challenge = err instanceof UpstreamAnswer ? err.headers['www-authenticate'] : undefined;
    if (realm && challenge && err instanceof UpstreamAnswer) {
      sendError(ex.res, new UpstreamAnswer(err.status, { ...err.headers, 'www-authenticate': rewriteRealm(challenge, realm) }, err.body), ex.requestId);
      return;
    }
    // Out of descriptors passes: a client told to come back soon beats an internal error.
    sendError(ex.res, exhaustionCode(err) ? OUT_OF_DESCRIPTORS : err, ex.requestId);
  };
  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const query = q < 0 ? '' : url.slice(q);
    // Dropped in every config, one origin or many: containerd sends ns to any mirror, and
    // it is no business of the origin's (nor of a cache key, which never holds the query).
    const { ns, rest: upstreamQuery } = takeNamespace(query);
    const secure = (req.socket as TLSSocket).encrypted === true;
    const ex: Exchange = {
      req,
      res,
      path: q < 0 ? url : url.slice(0, q),
      query,
      upstreamPath: q < 0 ? url : url.slice(0, q),
      upstreamQuery,
      prefix: '',
      origin: table.fallback.host,
      startedAt: performance.now(),
      client: clientAddress(req.socket.remoteAddress, req.headers, deps.trustedProxies),
      secure,
      base: publicBase(deps.publicHost, secure, req.headers.host),
      route: 'unknown',
      repository: undefined,
      subject: undefined,
      requestId: requestId(req.headers),
      upstream: undefined,
      cache: undefined,
      source: undefined,
      bodyBytes: 0,
      error: undefined,
    };
    // req.socket is detached by the time 'close' fires on some paths: keep our own reference.
    const socket = req.socket;
    const bytesBefore = socket.bytesWritten;
    res.once('close', () => {
      const seconds = (performance.now() - ex.startedAt) / 1000;
      const status = res.statusCode;
      const sent = socket.bytesWritten - bytesBefore;
      const completed = res.writableFinished;
      metrics.httpRequests.inc({ route: ex.route, method: req.method ?? '', status: String(status), origin: ex.origin });
      metrics.httpDuration.observe({ route: ex.route }, seconds);
      if (ex.source) metrics.servedBytes.inc({ source: ex.source }, completed ? ex.bodyBytes : sent);
      if (ex.route === 'blob' && ex.cache !== undefined && ex.cache !== 'pass') {
        metrics.cacheRequests.inc({ kind: 'blob', result: ex.cache === 'hit' ? 'hit' : 'miss', origin: ex.origin });
      }
      const entry = {
        method: req.method,
        path: ex.path,
        route: ex.route,
        origin: ex.origin,
        status,
        bytes: sent,
        durationMs: Math.round(seconds * 1e4) / 10,
        cache: ex.cache,
        client: ex.client,
        completed,
        requestId: ex.requestId,
        userAgent: req.headers['user-agent'],
        subject: ex.subject,
        upstream: ex.upstream,
      };
      const err = ex.error;
      deps.status.request({
        route: ex.route,
        status,
        cache: ex.cache,
        repository: ex.repository,
        bytes: sent,
        requestId: ex.requestId,
        code: err instanceof RegistryError ? err.code : err instanceof UpstreamAnswer ? `upstream ${err.status}` : err instanceof Error ? err.name : undefined,
        message: err instanceof Error ? err.message : undefined,
      });
      if (ex.error) deps.descriptors.note(ex.error, 'request');
      if (ex.error && !(ex.error instanceof RegistryError) && !(ex.error instanceof UpstreamAnswer)) {
        log.warn({ ...entry, err: ex.error }, 'request failed');
      } else {
        log.info(entry, 'request');
      }
    });
    const tokenOrigin = tokenRoutes.size > 0 ? tokenRoutes.get(ex.path) : undefined;
    if (tokenOrigin) {
      ex.route = 'token';
      ex.origin = tokenOrigin.host;
      const { url, dispatcher, timeoutMs } = tokenOrigin.token;
      forwardToken(ex, url, dispatcher, timeoutMs).catch((err: unknown) => fail(ex, err));
      return;
    }
    let parsed: DistributionRequest | undefined;
    let origin: Origin;
    try {
      origin = chooseOrigin(ex, table, ns);
      ex.origin = origin.host;
      parsed = parseDistributionPath(ex.upstreamPath);
    } catch (err) {
      ex.route = 'invalid';
      fail(ex, err);
      return;
    }
    if (!parsed) {
      fail(ex, new RegistryError('NAME_UNKNOWN', 'not a registry API path', { path: ex.path.slice(0, 200) }, 404));
      return;
    }
    ex.route = parsed.route;
    if (parsed.route !== 'base' && parsed.route !== 'catalog') ex.repository = parsed.name;
    dispatch(ex, parsed, origin, deps.manifestMaxBytes).catch((err: unknown) => fail(ex, err));
  };
}
