/**
 * The admin listener: /metrics for Prometheus, /healthz (process up), /readyz (this
 * replica can serve: its cache directory answers a read). Readiness is about faults of
 * this replica only: the centre being down is a fault every replica sees alike, and
 * taking them all out of service then would leave the zone without the cache exactly when
 * it matters most, so upstream reachability (and whether the cache takes writes: misses
 * then stream through uncached) is reported in the body and in metrics, never as 503.
 * The status page (`/`, its data at /status.json) says what the edge is doing now.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import type { Metrics } from '../metrics/metrics.js';
import type { AdminRoute } from './admin-request.js';
import { STATUS_PAGE_CSP, statusPage } from './status-page.js';
import type { StatusSnapshot } from './status.js';

export interface AdminDeps {
  readonly metrics: Metrics;
  /** Probes the cache directory now: whether it takes writes. */
  readonly cacheWritable: () => Promise<boolean>;
  /** Probes the cache directory now: whether it answers a read (a hung or lost volume does not). */
  readonly cacheReadable: () => Promise<boolean>;
  readonly upstreams: () => readonly string[];
  readonly readyTimeoutMs: number;
  /** POST routes by path (/notify, /prefetch); absent ones answer 404. */
  readonly routes?: ReadonlyMap<string, AdminRoute>;
  readonly status: () => Promise<StatusSnapshot>;
}

async function upstreamAnswers(url: string, timeoutMs: number): Promise<boolean> {
  try {
    // Any HTTP answer, 401 included, means the registry is there.
    const res = await request(`${url}/v2/`, { method: 'GET', headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal: AbortSignal.timeout(timeoutMs) });
    await res.body.dump();
    return true;
  } catch {
    return false;
  }
}

/** A cache probe, or false when the disk does not answer within the timeout (a hung mount must not hang /readyz). */
function cacheAnswers(probe: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
  return Promise.race([probe(), late]).finally(() => clearTimeout(timer));
}

async function readiness(deps: AdminDeps): Promise<{ ready: boolean; cache: boolean; upstream: boolean }> {
  const [ready, cache, answers] = await Promise.all([
    cacheAnswers(deps.cacheReadable, deps.readyTimeoutMs),
    cacheAnswers(deps.cacheWritable, deps.readyTimeoutMs),
    Promise.all(deps.upstreams().map((u) => upstreamAnswers(u, deps.readyTimeoutMs))),
  ]);
  return { ready, cache, upstream: answers.some(Boolean) };
}

export function createAdminHandler(deps: AdminDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (path === '/healthz') return reply(200, 'text/plain', 'ok\n');
    const route = deps.routes?.get(path ?? '');
    if (route) return route(req, res);
    if (path === '/readyz') {
      void readiness(deps).then((r) => reply(r.ready ? 200 : 503, 'application/json', JSON.stringify(r) + '\n'));
      return;
    }
    if (path === '/' || path === '/status.json') {
      void deps.status().then(
        (s) => {
          res.setHeader('cache-control', 'no-store');
          if (path === '/status.json') return reply(200, 'application/json', JSON.stringify(s) + '\n');
          res.setHeader('content-security-policy', STATUS_PAGE_CSP);
          reply(200, 'text/html; charset=utf-8', statusPage(s));
        },
        (err: Error) => reply(500, 'text/plain', `${err.message}\n`),
      );
      return;
    }
    if (path === '/metrics') {
      void deps.metrics.registry.metrics().then(
        (text) => reply(200, deps.metrics.registry.contentType, text),
        (err: Error) => reply(500, 'text/plain', `${err.message}\n`),
      );
      return;
    }
    reply(404, 'text/plain', 'not found\n');
  };
}
