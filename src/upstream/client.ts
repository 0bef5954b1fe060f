/**
 * Requests to the upstream registry: one keep-alive undici Pool per instance, failover
 * to the next instance for idempotent requests that cannot connect, the edge's own
 * credentials (bearer challenge or basic) or the client's Authorization, and redirects
 * to object storage followed without the registry's Authorization.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, Pool, type Dispatcher } from 'undici';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { RegistryError } from '../oci/errors.js';
import { parseChallenge } from './challenge.js';
import { TokenCache, TokenError, type Credentials } from './tokens.js';

export interface UpstreamOptions {
  readonly urls: readonly string[];
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly connections: number;
  readonly maxRedirects: number;
  readonly credentials: Credentials | undefined;
  readonly realms: readonly string[];
}

export interface UpstreamRequest {
  readonly method: 'GET' | 'HEAD';
  /** Path below the instance's base URL, with its query, e.g. `/v2/library/alpine/manifests/3`. */
  readonly path: string;
  readonly headers?: Record<string, string>;
  /**
   * 'edge': the edge's own credentials, for the token scope given.
   * A string: the client's Authorization header, forwarded as it is.
   * undefined: anonymous.
   */
  readonly auth: { readonly kind: 'edge'; readonly scope: string } | { readonly kind: 'client'; readonly header: string } | undefined;
  readonly followRedirects?: boolean;
}

export interface UpstreamResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** Must be consumed or destroyed: undici reuses the connection only then. */
  readonly body: Dispatcher.ResponseData['body'];
  /** Origin of the instance that answered (for logs). */
  readonly instance: string;
}

interface Instance {
  readonly origin: string;
  readonly basePath: string;
  readonly pool: Pool;
  readonly label: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Errors where the request never reached the upstream application, so trying another instance is safe. */
function isConnectError(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH'
    || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_SOCKET'
    || code === 'EPIPE';
}

export class UpstreamClient {
  private readonly instances: readonly Instance[];
  private readonly agent: Agent;
  private readonly tokens: TokenCache;
  private readonly opts: UpstreamOptions;
  private readonly metrics: Metrics;
  private readonly log: Logger;

  constructor(opts: UpstreamOptions, metrics: Metrics, log: Logger) {
    this.opts = opts;
    this.metrics = metrics;
    this.log = log;
    const dispatcherOpts = {
      connections: opts.connections,
      connect: { timeout: opts.connectTimeoutMs },
      headersTimeout: opts.headersTimeoutMs,
      bodyTimeout: opts.bodyTimeoutMs,
      keepAliveTimeout: 30_000,
    };
    this.instances = opts.urls.map((u) => {
      const url = new URL(u);
      return { origin: url.origin, basePath: url.pathname.replace(/\/+$/, ''), pool: new Pool(url.origin, dispatcherOpts), label: url.host };
    });
    this.agent = new Agent(dispatcherOpts);
    const hosts = [...opts.realms, ...this.instances.map((i) => new URL(i.origin).host)];
    this.tokens = new TokenCache({ allowedHosts: hosts, credentials: opts.credentials, dispatcher: this.agent });
  }

  /** Instance origins, in the order they are tried. */
  get origins(): string[] {
    return this.instances.map((i) => i.origin);
  }

  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    let lastError: unknown;
    for (const instance of this.instances) {
      try {
        return await this.requestInstance(instance, req);
      } catch (err) {
        if (!isConnectError(err)) throw err;
        lastError = err;
        this.log.warn({ upstream: instance.label, err: (err as Error).message, path: req.path }, 'upstream unreachable, trying the next instance');
      }
    }
    throw new RegistryError('UNAVAILABLE', 'upstream registry unreachable', { cause: (lastError as Error | undefined)?.message });
  }

  private async requestInstance(instance: Instance, req: UpstreamRequest): Promise<UpstreamResponse> {
    const headers: Record<string, string> = { ...req.headers };
    if (req.auth?.kind === 'client') headers.authorization = req.auth.header;
    if (req.auth?.kind === 'edge') {
      const token = this.tokens.peek(req.auth.scope);
      if (token) headers.authorization = `Bearer ${token}`;
    }
    let res = await this.send(instance.pool, instance, instance.basePath + req.path, req.method, headers);
    if (res.statusCode === 401 && req.auth?.kind === 'edge') {
      const authorization = await this.answerChallenge(res.headers['www-authenticate'], req.auth.scope);
      if (authorization) {
        await res.body.dump();
        res = await this.send(instance.pool, instance, instance.basePath + req.path, req.method, { ...headers, authorization });
      }
    }
    let redirects = 0;
    while (req.followRedirects && REDIRECTS.has(res.statusCode) && redirects < this.opts.maxRedirects) {
      const location = res.headers.location;
      if (typeof location !== 'string') break;
      await res.body.dump();
      const target = new URL(location, instance.origin + instance.basePath + req.path);
      redirects += 1;
      if (target.origin === instance.origin) {
        res = await this.send(instance.pool, instance, target.pathname + target.search, req.method, headers);
      } else {
        // Object storage signs its URLs; the registry's credentials must not go there.
        const { authorization: _dropped, ...rest } = headers;
        res = await this.send(this.agent, instance, target.toString(), req.method, rest, target.origin);
      }
    }
    return { status: res.statusCode, headers: res.headers as IncomingHttpHeaders, body: res.body, instance: instance.origin };
  }

  private async send(
    dispatcher: Dispatcher,
    instance: Instance,
    path: string,
    method: 'GET' | 'HEAD',
    headers: Record<string, string>,
    origin?: string,
  ): Promise<Dispatcher.ResponseData> {
    const started = performance.now();
    const res = await dispatcher.request(origin ? { origin, path: new URL(path).pathname + new URL(path).search, method, headers } : { origin: instance.origin, path, method, headers });
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

  async close(): Promise<void> {
    await Promise.all([...this.instances.map((i) => i.pool.close()), this.agent.close()]);
  }
}
