/**
 * The admin listener: /metrics for Prometheus, /healthz (process up), /readyz (the edge
 * can serve: an upstream answers; its body also says whether the cache takes writes,
 * which does not make the edge unready: misses then stream through uncached), and the
 * status page (`/`, its data at /status.json).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import type { Metrics } from '../metrics/metrics.js';
import { STATUS_PAGE_CSP, statusPage } from './status-page.js';
import type { StatusSnapshot } from './status.js';

export interface AdminDeps {
  readonly metrics: Metrics;
  /** Probes the cache directory now: whether it takes writes. */
  readonly cacheWritable: () => Promise<boolean>;
  readonly upstreams: () => readonly string[];
  readonly readyTimeoutMs: number;
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

/** The cache probe, or false when the disk does not answer within the timeout (a hung mount must not hang /readyz). */
function cacheAnswers(deps: AdminDeps): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), deps.readyTimeoutMs)));
  return Promise.race([deps.cacheWritable(), late]).finally(() => clearTimeout(timer));
}

async function readiness(deps: AdminDeps): Promise<{ ready: boolean; cache: boolean; upstream: boolean }> {
  const [cache, answers] = await Promise.all([cacheAnswers(deps), Promise.all(deps.upstreams().map((u) => upstreamAnswers(u, deps.readyTimeoutMs)))]);
  const upstream = answers.some(Boolean);
  return { ready: upstream, cache, upstream };
}

export function createAdminHandler(deps: AdminDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (path === '/healthz') return reply(200, 'text/plain', 'ok\n');
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
