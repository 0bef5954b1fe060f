/**
 * Requests to the upstream registry instances: one keep-alive undici Pool per
 * instance, chosen per request by the balancer (ip_hash affinity, round robin or
 * least_conn) with passive and active health; idempotent requests that cannot
 * connect go to the next instance. Cache fills carry the edge's own credentials
 * (bearer challenge or basic) or the client's Authorization, and follow redirects to
 * object storage without the registry's Authorization.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { Agent, Pool, type Dispatcher } from 'undici';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { RegistryError } from '../oci/errors.js';
import { Balancer, type ServerSpec, type Strategy } from './balancer.js';
import { parseChallenge } from './challenge.js';
import { TokenCache, TokenError, type Credentials } from './tokens.js';

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

/** One round trip of a request (the first try, the answer to a challenge, a redirect). */
interface OneRequest {
  readonly origin: string;
  readonly path: string;
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly body?: Readable | undefined;
  readonly signal: AbortSignal | undefined;
}

/** Requests the edge makes on its own behalf say so; forwarded requests carry the client's User-Agent. */
const USER_AGENT = 'registry-edge/0.1';
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Gateway answers from an instance (or a balancer in front of it): an idempotent request tries the next one. */
const NEXT_UPSTREAM = new Set([502, 503, 504]);
const IDEMPOTENT = new Set(['GET', 'HEAD']);
/** Bytes of an answer undici holds for certain whether or not it is read. */
const SMALL_BODY = 16 * 1024;

/** The instance took longer than upstream.headers_timeout to answer. */
function isHeadersTimeout(err: unknown): boolean {
  return (err as { code?: string }).code === 'UND_ERR_HEADERS_TIMEOUT';
}

/** A connection closed under a request before any answer came. */
function isResetConnection(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE';
}

/** Errors where the request never reached the upstream application, so trying another instance is safe. */
function isConnectError(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH'
    || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_SOCKET'
    || code === 'EPIPE';
}

export function instanceKey(url: string): string {
  return createHash('sha256').update(url).digest('base64url').slice(0, 10);
}

function toSpec(s: UpstreamServer): ServerSpec {
  return { id: s.url, weight: s.weight, maxFails: s.maxFails, failTimeoutMs: s.failTimeoutMs, backup: s.backup };
}

export class UpstreamClient {
  private instances = new Map<string, Instance>();
  private readonly balancer: Balancer;
  private readonly agent: Agent;
  private tokens: TokenCache;
  private readonly opts: UpstreamOptions;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly dispatcherOpts: Pool.Options;
  private healthTimer: NodeJS.Timeout | undefined;

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
      if (!next.has(url)) void old.pool.close().catch(() => undefined);
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
          this.balancer.reportFailure(instance.url);
          this.log.warn({ upstream: instance.label, method: req.method, path: req.path, timeoutSeconds: this.opts.headersTimeoutMs / 1000 }, 'upstream sent no headers within upstream.headers_timeout');
          throw new RegistryError('UNAVAILABLE', 'upstream did not answer in time', { upstream: instance.label, timeout: 'upstream.headers_timeout' }, 504);
        }
        if (!isConnectError(err)) throw err;
        this.balancer.reportFailure(instance.url);
        lastError = err;
        this.log.warn({ upstream: instance.label, err: (err as Error).message, method: req.method, path: req.path }, 'upstream unreachable');
        continue;
      }
      res.body.once('close', () => this.balancer.release(instance.url));
      if (res.status < 500) {
        this.balancer.reportSuccess(instance.url);
        return res;
      }
      this.balancer.reportFailure(instance.url);
      if (!NEXT_UPSTREAM.has(res.status) || i === candidates.length - 1) return res;
      await res.body.dump();
      lastError = new Error(`upstream ${instance.label} answered ${res.status}`);
      this.log.warn({ upstream: instance.label, status: res.status, method: req.method, path: req.path }, 'upstream failed, trying the next instance');
    }
    throw new RegistryError('UNAVAILABLE', 'upstream registry unreachable', { cause: (lastError as Error | undefined)?.message });
  }

  /**
   * A reused keep-alive connection that the instance (or a balancer in front of it) closed
   * just as the request went out fails with a reset before any answer: a GET or HEAD is
   * sent once more, on a new connection, before the instance counts a failure. Without
   * this a zone with one upstream answered 503 for a connection the upstream had retired.
   */
  private async requestOnInstance(instance: Instance, req: UpstreamRequest, signal: AbortSignal | undefined): Promise<UpstreamResponse> {
    try {
      return await this.requestInstance(instance, req, signal);
    } catch (err) {
      if (!isResetConnection(err) || req.body || !IDEMPOTENT.has(req.method) || signal?.aborted) throw err;
      return this.requestInstance(instance, req, signal);
    }
  }

  private async requestInstance(instance: Instance, req: UpstreamRequest, signal: AbortSignal | undefined): Promise<UpstreamResponse> {
    const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...req.headers };
    if (req.auth?.kind === 'client') headers.authorization = req.auth.header;
    if (req.auth?.kind === 'edge') {
      const token = this.tokens.peek(req.auth.scope);
      if (token) headers.authorization = `Bearer ${token}`;
    }
    const path = instance.basePath + req.path;
    let res = await this.send(instance.pool, instance, { origin: instance.origin, path, method: req.method, headers, body: req.body, signal });
    if (res.statusCode === 401 && req.auth?.kind === 'edge' && !req.body) {
      // A body past undici's buffer left unread across the token fetch can end the process when
      // the connection closes (nodejs/undici#5360): a large one is dropped first (registries send a few bytes).
      const length = Number(res.headers['content-length']);
      if (!(length <= SMALL_BODY)) await res.body.dump();
      const authorization = await this.answerChallenge(res.headers['www-authenticate'], req.auth.scope);
      if (authorization) {
        await res.body.dump();
        res = await this.send(instance.pool, instance, { origin: instance.origin, path, method: req.method, headers: { ...headers, authorization }, signal });
      }
    }
    let redirects = 0;
    while (req.followRedirects && REDIRECTS.has(res.statusCode) && redirects < this.opts.maxRedirects) {
      const location = res.headers.location;
      if (typeof location !== 'string') break;
      await res.body.dump();
      const target = new URL(location, instance.origin + path);
      redirects += 1;
      const sameOrigin = target.origin === instance.origin;
      // Object storage signs its URLs; the registry's credentials must not go there.
      const { authorization: _dropped, ...anonymous } = headers;
      res = await this.send(sameOrigin ? instance.pool : this.agent, instance, {
        origin: target.origin,
        path: target.pathname + target.search,
        method: req.method,
        headers: sameOrigin ? headers : anonymous,
        signal,
      });
    }
    return { status: res.statusCode, headers: res.headers as IncomingHttpHeaders, body: res.body, instance };
  }

  private async send(dispatcher: Dispatcher, instance: Instance, one: OneRequest): Promise<Dispatcher.ResponseData> {
    const started = performance.now();
    const { origin, path, method, headers, body, signal } = one;
    const res = await dispatcher.request({ origin, path, method: method as Dispatcher.HttpMethod, headers, body: body ?? null, signal });
    this.metrics.upstreamDuration.observe(
      { upstream: instance.label, method, status: `${Math.floor(res.statusCode / 100)}xx` },
      (performance.now() - started) / 1000,
    );
    return res;
  }

  /** The Authorization answering a challenge with the edge's own credentials, or undefined. */
  private async answerChallenge(header: string | string[] | undefined, scope: string): Promise<string | undefined> {
    const challenge = parseChallenge(Array.isArray(header) ? header[0] : header);
    if (!challenge) return undefined;
    if (challenge.scheme === 'basic') {
      const creds = this.opts.credentials;
      return creds ? 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64') : undefined;
    }
    if (challenge.scheme !== 'bearer') return undefined;
    try {
      return `Bearer ${await this.tokens.fetch(scope, challenge, scope)}`;
    } catch (err) {
      if (!(err instanceof TokenError) && !isConnectError(err)) throw err;
      this.log.warn({ err: (err as Error).message, scope }, 'upstream token request failed');
      return undefined;
    }
  }

  /** One active health check of every instance: any answer below 500 to GET /v2/ is healthy. */
  async probeAll(): Promise<void> {
    await Promise.all([...this.instances.values()].map(async (instance) => {
      let healthy = false;
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
      } catch {
        healthy = false;
      }
      const was = this.balancer.isHealthy(instance.url);
      this.balancer.setProbeHealthy(instance.url, healthy);
      if (was !== healthy) this.log.warn({ upstream: instance.label, healthy }, 'upstream health changed');
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
