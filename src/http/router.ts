/**
 * The client-facing request handler: parse once into a validated request, dispatch by
 * route and method, turn every failure into the OCI error envelope, and log one line
 * per request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Dispatcher } from 'undici';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { RegistryError } from '../oci/errors.js';
import { parseDistributionPath, type DistributionRequest } from '../oci/request.js';
import type { BlobService } from '../proxy/blob-service.js';
import type { ManifestService } from '../proxy/manifest-service.js';
import { UpstreamAnswer } from '../proxy/upstream-answer.js';
import type { Authorizer } from '../auth/authorizer.js';
import { asClient, pullScope, upstreamAuth } from '../proxy/upstream-auth.js';
import { clientAddress, type TrustedProxies } from '../upstream/client-address.js';
import { getBlob, headBlob } from './blobs.js';
import { exhaustionCode, type DescriptorAlarm } from './descriptors.js';
import type { Exchange } from './exchange.js';
import { forward, type ForwardSettings } from './forward.js';
import { deleteManifest, pushManifest, serveManifest } from './manifests.js';
import { API_VERSION_HEADER, sendError } from './respond.js';
import { publicBase, rewriteRealm } from './rewrite.js';
import { forwardToken } from './token-route.js';

export interface RouterDeps {
  readonly blobs: BlobService;
  readonly manifests: ManifestService;
  readonly forward: ForwardSettings;
  readonly authorizer: Authorizer;
  readonly publicHost: string;
  readonly trustedProxies: TrustedProxies;
  readonly token: { readonly path: string; readonly url: string; readonly dispatcher: Dispatcher; readonly timeoutMs: number };
  readonly manifestMaxBytes: number;
  readonly metrics: Metrics;
  readonly descriptors: DescriptorAlarm;
  readonly log: Logger;
}

const BASE_BODY = '{}';

/** What the edge answers itself, from its cache, and what it forwards; by route and method. */
async function dispatch(ex: Exchange, parsed: DistributionRequest, deps: RouterDeps): Promise<void> {
  const method = ex.req.method ?? 'GET';
  const read = method === 'GET' || method === 'HEAD';
  const clientAuth = ex.req.headers.authorization;
  const clientOwn = { auth: asClient(clientAuth) };
  const { authorizer } = deps;
  const mode = authorizer.mode;
  switch (parsed.route) {
    case 'base':
      if (!read) break;
      if (mode === 'upstream-check') return void (await forward(ex, deps.forward, clientOwn));
      await authorizer.base(clientAuth, ex.base);
      ex.res.writeHead(200, { 'content-type': 'application/json', 'content-length': BASE_BODY.length, [API_VERSION_HEADER[0]]: API_VERSION_HEADER[1] });
      ex.res.end(method === 'HEAD' ? undefined : BASE_BODY);
      return;
    case 'blob':
      if (read) await authorizer.pull(parsed.name, clientAuth, ex.base, async () => void (await deps.blobs.checkAccess(parsed.name, parsed.digest, clientAuth)));
      if (method === 'HEAD') return headBlob(ex, deps.blobs, parsed.name, parsed.digest);
      if (method === 'GET') return getBlob(ex, deps.blobs, parsed.name, parsed.digest);
      if (method === 'DELETE') {
        const { name, digest } = parsed;
        return void (await forward(ex, deps.forward, { ...clientOwn, beforeReply: async (res) => void (res.status === 202 && (await deps.blobs.forgetDeleted(name, digest))) }));
      }
      break;
    case 'manifest':
      if (read) await authorizer.pull(parsed.name, clientAuth, ex.base, () => deps.manifests.checkAccess(parsed.name, parsed.reference, clientAuth));
      if (read) return serveManifest(ex, deps.manifests, parsed.name, parsed.reference, { settings: deps.forward, auth: upstreamAuth(mode, pullScope(parsed.name), clientAuth) });
      if (method === 'PUT') return pushManifest(ex, deps.forward, deps.manifests, parsed.name, parsed.reference, deps.manifestMaxBytes);
      if (method === 'DELETE') return deleteManifest(ex, deps.forward, deps.manifests, parsed.name, parsed.reference);
      break;
    case 'upload':
      return void (await forward(ex, deps.forward, clientOwn));
    case 'tags':
    case 'referrers':
      if (!read) break;
      return void (await forward(ex, deps.forward, { auth: upstreamAuth(mode, pullScope(parsed.name), clientAuth) }));
    case 'catalog':
      if (!read) break;
      return void (await forward(ex, deps.forward, { auth: upstreamAuth(mode, 'registry:catalog:*', clientAuth) }));
  }
  throw new RegistryError('UNSUPPORTED', `${method} is not supported on this route`, { route: parsed.route });
}

const OUT_OF_DESCRIPTORS = new RegistryError('UNAVAILABLE', 'the edge is out of file descriptors; try again', undefined, 503, { 'retry-after': '1' });

export function createRouter(deps: RouterDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { metrics, log } = deps;
  const { tokenRealm } = deps.forward;
  const fail = (ex: Exchange, err: unknown): void => {
    ex.error = err;
    const realm = tokenRealm(ex);
    const challenge = err instanceof UpstreamAnswer ? err.headers['www-authenticate'] : undefined;
    if (realm && challenge && err instanceof UpstreamAnswer) {
      sendError(ex.res, new UpstreamAnswer(err.status, { ...err.headers, 'www-authenticate': rewriteRealm(challenge, realm) }, err.body));
      return;
    }
    // Out of descriptors passes: a client told to come back soon beats an internal error.
    sendError(ex.res, exhaustionCode(err) ? OUT_OF_DESCRIPTORS : err);
  };
  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const secure = (req.socket as TLSSocket).encrypted === true;
    const ex: Exchange = {
      req,
      res,
      path: q < 0 ? url : url.slice(0, q),
      query: q < 0 ? '' : url.slice(q),
      startedAt: performance.now(),
      client: clientAddress(req.socket.remoteAddress, req.headers, deps.trustedProxies),
      secure,
      base: publicBase(deps.publicHost, secure, req.headers.host),
      route: 'unknown',
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
      metrics.httpRequests.inc({ route: ex.route, method: req.method ?? '', status: String(status) });
      metrics.httpDuration.observe({ route: ex.route }, seconds);
      if (ex.source) metrics.servedBytes.inc({ source: ex.source }, completed ? ex.bodyBytes : sent);
      if (ex.route === 'blob' && ex.cache !== undefined && ex.cache !== 'pass') {
        metrics.cacheRequests.inc({ kind: 'blob', result: ex.cache === 'hit' ? 'hit' : 'miss' });
      }
      const entry = {
        method: req.method,
        path: ex.path,
        route: ex.route,
        status,
        bytes: sent,
        durationMs: Math.round(seconds * 1e4) / 10,
        cache: ex.cache,
        client: ex.client,
        completed,
      };
      if (ex.error) deps.descriptors.note(ex.error, 'request');
      if (ex.error && !(ex.error instanceof RegistryError) && !(ex.error instanceof UpstreamAnswer)) {
        log.warn({ ...entry, err: ex.error }, 'request failed');
      } else {
        log.info(entry, 'request');
      }
    });
    if (deps.token.path && deps.token.url && ex.path === deps.token.path) {
      ex.route = 'token';
      forwardToken(ex, deps.token.url, deps.token.dispatcher, deps.token.timeoutMs).catch((err: unknown) => fail(ex, err));
      return;
    }
    let parsed: DistributionRequest | undefined;
    try {
      parsed = parseDistributionPath(ex.path);
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
    dispatch(ex, parsed, deps).catch((err: unknown) => fail(ex, err));
  };
}
