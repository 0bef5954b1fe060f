/**
 * Requests to the upstream registry instances: one keep-alive undici Pool per
 * instance, chosen per request by the balancer (ip_hash affinity, round robin or
 * least_conn) with passive and active health; idempotent requests that cannot
 * connect go to the next instance. What happens on one instance (a reset connection
 * retried, the edge's credentials answering a challenge, redirects to object storage)
 * is the pipeline composed from src/upstream/interceptors.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { Agent, Pool, type Dispatcher } from 'undici';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { RegistryError } from '../oci/errors.js';
import { Balancer, type ServerSpec, type Strategy } from './balancer.js';
import { isConnectError, isHeadersTimeout } from './connect-errors.js';
import { bearerChallenge } from './interceptors/bearer-challenge.js';
import { compose, IDEMPOTENT, type Send } from './interceptors/exchange.js';
import { instanceSend } from './interceptors/instance-send.js';
import { followRedirects } from './interceptors/redirects.js';
import { resetRetry } from './interceptors/reset-retry.js';
import { TokenCache, type Credentials } from './tokens.js';

export interface UpstreamServer {
  readonly url: string;
  readonly weight: number;
  readonly maxFails: number;
  readonly failTimeoutMs: number;
  readonly backup: boolean;
}

export interface UpstreamOptions {
  readonly servers: readonly UpstreamServer[];
  readonly balance: Strategy;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly connections: number;
  readonly maxRedirects: number;
  readonly credentials: Credentials | undefined;
  readonly realms: readonly string[];
  readonly healthIntervalMs: number;
  readonly healthTimeoutMs: number;
}

/**
 * The client request an upstream request is made for: its id goes upstream as
 * X-Request-Id, and the instance that answered is noted for its access line.
 */
export interface UpstreamTrace {
  readonly requestId: string;
  upstream: string | undefined;
}

/** One instance as the status page shows it: the balancer's view and the last failure it counted. */
export interface InstanceHealth {
  readonly url: string;
  /** host:port, as the access log and the upstream metrics name the instance. */
  readonly label: string;
  readonly healthy: boolean;
  readonly backup: boolean;
  readonly fails: number;
  readonly active: number;
  readonly probeHealthy: boolean | null;
  readonly lastFailure: { readonly at: number; readonly reason: string } | undefined;
}

export type UpstreamAuth = { readonly kind: 'edge'; readonly scope: string } | { readonly kind: 'client'; readonly header: string } | undefined;

export interface UpstreamRequest {
  readonly method: string;
  /** Path below the instance's base URL, with its query, e.g. `/v2/library/alpine/manifests/3`. */
  readonly path: string;
  readonly headers?: Record<string, string>;
  /** 'edge': the edge's own credentials for that token scope; 'client': forwarded as is; undefined: anonymous. */
  readonly auth: UpstreamAuth;
  readonly followRedirects?: boolean;
  /** The client's address, for ip_hash affinity. */
  readonly client?: string | undefined;
  /** Pins the request to one instance (an upload session), by Instance.key. */
  readonly instanceKey?: string | undefined;
  /** A request body streamed upstream; such requests are never retried on another instance. */
  readonly body?: Readable | undefined;
  /**
   * A deadline for the whole request, body included, shorter than upstream.headers_timeout
   * (a tag revalidation with a stale copy to fall back on); past it the request is aborted
   * and fails with a 504 RegistryError. For HEADs and other answers without a long body.
   */
  readonly deadlineMs?: number | undefined;
  /** Aborts the request when its caller no longer wants the answer (the client went away). */
  readonly signal?: AbortSignal | undefined;
  readonly trace?: UpstreamTrace | undefined;
}

export interface UpstreamResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** Must be consumed or destroyed: undici reuses the connection only then. */
  readonly body: Dispatcher.ResponseData['body'];
  /** The instance that answered. */
  readonly instance: Instance;
}

export interface Instance {
  /** The configured URL (origin + base path), also the balancer id. */
  readonly url: string;
  readonly origin: string;
  readonly basePath: string;
  /** Short stable name for this instance, used in rewritten upload URLs. */
  readonly key: string;
  readonly label: string;
  readonly pool: Pool;
}

/** Requests the edge makes on its own behalf say so; forwarded requests carry the client's User-Agent. */
const USER_AGENT = 'registry-edge/0.1';
/** Gateway answers from an instance (or a balancer in front of it): an idempotent request tries the next one. */
const NEXT_UPSTREAM = new Set([502, 503, 504]);

export function instanceKey(url: string): string {
  return createHash('sha256').update(url).digest('base64url').slice(0, 10);
}

function toSpec(s: UpstreamServer): ServerSpec {
  return { id: s.url, weight: s.weight, maxFails: s.maxFails, failTimeoutMs: s.failTimeoutMs, backup: s.backup };
}

export class UpstreamClient {
  private instances = new Map<string, Instance>();
  /** Each instance's composed request pipeline, built on first use. */
  private readonly pipelines = new WeakMap<Instance, Send>();
  private readonly balancer: Balancer;
  private readonly agent: Agent;
  private tokens: TokenCache;
  private readonly opts: UpstreamOptions;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly dispatcherOpts: Pool.Options;
  private healthTimer: NodeJS.Timeout | undefined;
  /** The last failure counted against each instance (by URL), for the status page. */
  private readonly lastFailure = new Map<string, { at: number; reason: string }>();

  constructor(opts: UpstreamOptions, metrics: Metrics, log: Logger) {
    this.opts = opts;
    this.metrics = metrics;
    this.log = log;
    this.dispatcherOpts = {
      connections: opts.connections,
      connect: { timeout: opts.connectTimeoutMs },
      headersTimeout: opts.headersTimeoutMs,
      bodyTimeout: opts.bodyTimeoutMs,
      keepAliveTimeout: 30_000,
    };
    this.agent = new Agent(this.dispatcherOpts);
    this.balancer = new Balancer(opts.servers.map(toSpec), opts.balance);
    this.tokens = this.makeTokens(opts.servers);
    this.setServers(opts.servers);
    if (opts.healthIntervalMs > 0) {
      this.healthTimer = setInterval(() => void this.probeAll(), opts.healthIntervalMs);
      this.healthTimer.unref();
    }
  }

  private makeTokens(servers: readonly UpstreamServer[]): TokenCache {
    const hosts = [...this.opts.realms, ...servers.map((s) => new URL(s.url).host)];
    return new TokenCache({ allowedHosts: hosts, credentials: this.opts.credentials, dispatcher: this.agent });
  }

  private setServers(servers: readonly UpstreamServer[]): void {
    const next = new Map<string, Instance>();
    for (const s of servers) {
      const existing = this.instances.get(s.url);
      if (existing) {
        next.set(s.url, existing);
        continue;
      }
      const url = new URL(s.url);
      next.set(s.url, {
        url: s.url,
        origin: url.origin,
        basePath: url.pathname.replace(/\/+$/, ''),
        key: instanceKey(s.url),
        label: url.host,
        pool: new Pool(url.origin, this.dispatcherOpts),
      });
    }
    for (const [url, old] of this.instances) {
      // In-flight requests on a removed instance finish; the pool closes after them.
      if (!next.has(url)) {
        void old.pool.close().catch(() => undefined);
        this.lastFailure.delete(url);
      }
    }
    this.instances = next;
  }

  /** Replaces the instance list (config reload), keeping health state and pools of instances that stay. */
  update(servers: readonly UpstreamServer[]): void {
    this.balancer.update(servers.map(toSpec));
    this.setServers(servers);
    this.tokens = this.makeTokens(servers);
    this.log.info({ upstreams: servers.map((s) => s.url) }, 'upstream instances updated');
  }

  /** Instance URLs as configured. */
  get urls(): string[] {
    return [...this.instances.keys()];
  }

  /** Each instance's health as the balancer sees it now. */
  health(): InstanceHealth[] {
    return this.balancer.snapshot().map((s) => ({
      url: s.id,
      label: this.instances.get(s.id)?.label ?? s.id,
      healthy: s.healthy,
      backup: s.backup,
      fails: s.fails,
      active: s.active,
      probeHealthy: s.probeHealthy,
      lastFailure: this.lastFailure.get(s.id),
    }));
  }

  /** Counts a failed request against an instance; says at debug level when that marks it down, and why. */
  private failed(instance: Instance, reason: string): void {
    this.lastFailure.set(instance.url, { at: Date.now(), reason });
    if (this.balancer.reportFailure(instance.url)) this.log.debug({ upstream: instance.label, reason }, 'upstream marked down');
  }

  byKey(key: string): Instance | undefined {
    for (const i of this.instances.values()) if (i.key === key) return i;
    return undefined;
  }

  private candidates(req: UpstreamRequest): Instance[] {
    if (req.instanceKey) {
      const pinned = this.byKey(req.instanceKey);
      if (pinned) return [pinned];
    }
    const ordered = this.balancer.order(req.client).map((s) => this.instances.get(s.id)).filter((i): i is Instance => i !== undefined);
    if (req.body || !IDEMPOTENT.has(req.method)) return ordered.slice(0, 1);
    // Instances marked down come last: a retry there beats failing the request.
    return [...ordered, ...[...this.instances.values()].filter((i) => !ordered.includes(i))];
  }

  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    let lastError: unknown;
    const candidates = this.candidates(req);
    const deadline = req.deadlineMs === undefined ? undefined : AbortSignal.timeout(req.deadlineMs);
    const signal = deadline && req.signal ? AbortSignal.any([deadline, req.signal]) : (deadline ?? req.signal);
    for (const [i, instance] of candidates.entries()) {
      this.balancer.acquire(instance.url);
      let res: UpstreamResponse;
      try {
        res = await this.requestOnInstance(instance, req, signal);
      } catch (err) {
        this.balancer.release(instance.url);
        if (req.signal?.aborted) throw err;
        if (signal?.aborted) {
          throw new RegistryError('UNAVAILABLE', 'upstream did not answer in time', { upstream: instance.label, deadlineMs: req.deadlineMs }, 504);
        }
        if (isHeadersTimeout(err)) {
          // Not tried on the next instance: the client has already waited the whole timeout (a gateway timeout, as nginx's 504).
          this.failed(instance, 'no headers within upstream.headers_timeout');
          this.log.warn({ upstream: instance.label, method: req.method, path: req.path, timeoutSeconds: this.opts.headersTimeoutMs / 1000 }, 'upstream sent no headers within upstream.headers_timeout');
          throw new RegistryError('UNAVAILABLE', 'upstream did not answer in time', { upstream: instance.label, timeout: 'upstream.headers_timeout' }, 504);
        }
        if (!isConnectError(err)) throw err;
        this.failed(instance, (err as Error).message);
        lastError = err;
        this.log.warn({ upstream: instance.label, err: (err as Error).message, method: req.method, path: req.path }, 'upstream unreachable');
        continue;
      }
      res.body.once('close', () => this.balancer.release(instance.url));
      if (req.trace) req.trace.upstream = instance.label;
      if (res.status < 500) {
        this.balancer.reportSuccess(instance.url);
        return res;
      }
      this.failed(instance, `answered ${res.status}`);
      if (!NEXT_UPSTREAM.has(res.status) || i === candidates.length - 1) return res;
      await res.body.dump();
      lastError = new Error(`upstream ${instance.label} answered ${res.status}`);
      this.log.warn({ upstream: instance.label, status: res.status, method: req.method, path: req.path }, 'upstream failed, trying the next instance');
    }
    throw new RegistryError('UNAVAILABLE', 'upstream registry unreachable', { cause: (lastError as Error | undefined)?.message });
  }

  /** One request on one instance, through that instance's pipeline (reset retry, edge credentials, redirects). */
  private async requestOnInstance(instance: Instance, req: UpstreamRequest, signal: AbortSignal | undefined): Promise<UpstreamResponse> {
    const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...req.headers };
    if (req.auth?.kind === 'client') headers.authorization = req.auth.header;
    // The edge's id replaces any the client sent: only a validated one goes on.
    if (req.trace) headers['x-request-id'] = req.trace.requestId;
    const res = await this.pipeline(instance)({
      origin: instance.origin,
      path: instance.basePath + req.path,
      method: req.method,
      headers,
      body: req.body,
      signal,
      edgeScope: req.auth?.kind === 'edge' ? req.auth.scope : undefined,
      followRedirects: req.followRedirects,
    });
    return { status: res.statusCode, headers: res.headers as IncomingHttpHeaders, body: res.body, instance };
  }

  private pipeline(instance: Instance): Send {
    let send = this.pipelines.get(instance);
    if (!send) {
      send = compose(
        instanceSend(instance, this.agent, this.metrics),
        resetRetry,
        bearerChallenge({ tokens: () => this.tokens, credentials: this.opts.credentials, log: this.log }),
        followRedirects(this.opts.maxRedirects),
      );
      this.pipelines.set(instance, send);
    }
    return send;
  }

  /** One active health check of every instance: any answer below 500 to GET /v2/ is healthy. */
  async probeAll(): Promise<void> {
    await Promise.all([...this.instances.values()].map(async (instance) => {
      let healthy = false;
      let reason: string;
      try {
        const res = await instance.pool.request({
          path: `${instance.basePath}/v2/`,
          method: 'GET',
          headersTimeout: this.opts.healthTimeoutMs,
          bodyTimeout: this.opts.healthTimeoutMs,
          signal: AbortSignal.timeout(this.opts.healthTimeoutMs),
        });
        await res.body.dump();
        healthy = res.statusCode < 500;
        reason = `GET /v2/ answered ${res.statusCode}`;
      } catch (err) {
        healthy = false;
        reason = `GET /v2/ failed: ${(err as Error).message}`;
      }
      if (!healthy) this.lastFailure.set(instance.url, { at: Date.now(), reason });
      const was = this.balancer.isHealthy(instance.url);
      this.balancer.setProbeHealthy(instance.url, healthy);
      if (was !== healthy) this.log.warn({ upstream: instance.label, healthy, reason }, 'upstream health changed');
    }));
  }

  /** Lets requests in flight finish, then closes every connection. */
  async close(): Promise<void> {
    if (this.healthTimer) clearInterval(this.healthTimer);
    await Promise.all([...[...this.instances.values()].map((i) => i.pool.close()), this.agent.close()]);
  }

  /** Aborts every request in flight (their bodies fail, so fills reading them stop) and closes every connection. */
  async destroy(): Promise<void> {
    if (this.healthTimer) clearInterval(this.healthTimer);
    await Promise.all([...[...this.instances.values()].map((i) => i.pool.destroy()), this.agent.destroy()]);
  }
}
