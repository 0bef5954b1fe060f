/**
 * The client-facing request handler: parse once into a validated request, dispatch by
 * route, turn every failure into the OCI error envelope, and log one line per request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { RegistryError } from '../oci/errors.js';
import { parseDistributionPath, type DistributionRequest } from '../oci/request.js';
import type { BlobService } from '../proxy/blob-service.js';
import type { ManifestService } from '../proxy/manifest-service.js';
import { UpstreamAnswer } from '../proxy/upstream-answer.js';
import { pullScope, type AuthMode } from '../proxy/upstream-auth.js';
import type { UpstreamClient } from '../upstream/client.js';
import { getBlob, headBlob } from './blobs.js';
import type { Exchange } from './exchange.js';
import { serveManifest } from './manifests.js';
import { passThrough } from './passthrough.js';
import { API_VERSION_HEADER, sendError } from './respond.js';

export interface RouterDeps {
  readonly blobs: BlobService;
  readonly manifests: ManifestService;
  readonly upstream: UpstreamClient;
  readonly mode: AuthMode;
  readonly metrics: Metrics;
  readonly log: Logger;
}

const BASE_BODY = '{}';

async function dispatch(ex: Exchange, parsed: DistributionRequest, deps: RouterDeps): Promise<void> {
  const method = ex.req.method;
  if (method !== 'GET' && method !== 'HEAD') {
    throw new RegistryError('UNSUPPORTED', `${method} is not supported by this edge; it serves pulls`, { route: parsed.route });
  }
  switch (parsed.route) {
    case 'base':
      if (deps.mode === 'passthrough') return passThrough(ex, deps.upstream, deps.mode, '');
      ex.res.writeHead(200, { 'content-type': 'application/json', 'content-length': BASE_BODY.length, [API_VERSION_HEADER[0]]: API_VERSION_HEADER[1] });
      ex.res.end(method === 'HEAD' ? undefined : BASE_BODY);
      return;
    case 'blob':
      return method === 'HEAD' ? headBlob(ex, deps.blobs, parsed.name, parsed.digest) : getBlob(ex, deps.blobs, parsed.name, parsed.digest);
    case 'manifest':
      return serveManifest(ex, deps.manifests, parsed.name, parsed.reference);
    case 'tags':
    case 'referrers':
      return passThrough(ex, deps.upstream, deps.mode, pullScope(parsed.name));
    case 'catalog':
      return passThrough(ex, deps.upstream, deps.mode, 'registry:catalog:*');
    case 'upload':
      throw new RegistryError('UNSUPPORTED', 'pushes are not supported by this edge', { route: parsed.route });
  }
}

export function createRouter(deps: RouterDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { metrics, log } = deps;
  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const ex: Exchange = {
      req,
      res,
      path: q < 0 ? url : url.slice(0, q),
      query: q < 0 ? '' : url.slice(q),
      startedAt: performance.now(),
      route: 'unknown',
      cache: undefined,
      source: undefined,
      bodyBytes: 0,
      error: undefined,
    };
    const bytesBefore = req.socket.bytesWritten;
    res.once('close', () => {
      const seconds = (performance.now() - ex.startedAt) / 1000;
      const status = res.statusCode;
      const sent = req.socket.bytesWritten - bytesBefore;
      const completed = res.writableFinished;
      metrics.httpRequests.inc({ route: ex.route, method: req.method ?? '', status: String(status) });
      metrics.httpDuration.observe({ route: ex.route }, seconds);
      if (ex.source) metrics.servedBytes.inc({ source: ex.source }, completed ? ex.bodyBytes : sent);
      if (ex.route === 'blob' && ex.cache !== undefined) {
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
        client: req.socket.remoteAddress,
        completed,
      };
      if (ex.error && !(ex.error instanceof RegistryError) && !(ex.error instanceof UpstreamAnswer)) {
        log.warn({ ...entry, err: ex.error }, 'request failed');
      } else {
        log.info(entry, 'request');
      }
    });
    let parsed: DistributionRequest | undefined;
    try {
      parsed = parseDistributionPath(ex.path);
    } catch (err) {
      ex.route = 'invalid';
      ex.error = err;
      sendError(res, err);
      return;
    }
    if (!parsed) {
      sendError(res, new RegistryError('NAME_UNKNOWN', 'not a registry API path', { path: ex.path.slice(0, 200) }, 404));
      return;
    }
    ex.route = parsed.route;
    dispatch(ex, parsed, deps).catch((err: unknown) => {
      ex.error = err;
      sendError(res, err);
    });
  };
}
