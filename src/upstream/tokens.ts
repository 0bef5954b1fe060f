/**
 * The edge's own bearer tokens for its upstream pulls: fetched from the realm a
 * challenge names (only realms on the allow-list receive the edge's credentials),
 * cached per realm, service and scope until shortly before they expire, and fetched
 * once however many requests need the same token at the same time.
 */
import { request, type Dispatcher } from 'undici';
import type { Challenge } from './challenge.js';

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

interface CachedToken {
  readonly token: string;
  readonly expiresAt: number;
}

const DEFAULT_EXPIRES_IN_S = 60;
const EARLY_REFRESH_MS = 10_000;
const MAX_TOKEN_RESPONSE = 1024 * 1024;

export class TokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenError';
  }
}

export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<string>>();
  private readonly allowedHosts: ReadonlySet<string>;
  private readonly credentials: Credentials | undefined;
  private readonly dispatcher: Dispatcher;
  private readonly now: () => number;

  constructor(opts: { allowedHosts: Iterable<string>; credentials: Credentials | undefined; dispatcher: Dispatcher; now?: () => number }) {
    this.allowedHosts = new Set([...opts.allowedHosts].map((h) => h.toLowerCase()));
    this.credentials = opts.credentials;
    this.dispatcher = opts.dispatcher;
    this.now = opts.now ?? Date.now;
  }

  /** A cached token for the scope a request will need, if one is still valid. */
  peek(key: string): string | undefined {
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > this.now()) return cached.token;
    if (cached) this.tokens.delete(key);
    return undefined;
  }

  /** Fetches (or joins the fetch of) a token answering `challenge`, cached under `key`. */
  async fetch(key: string, challenge: Challenge, scope: string | undefined): Promise<string> {
    const cached = this.peek(key);
    if (cached) return cached;
    const running = this.pending.get(key);
    if (running) return running;
    const promise = this.fetchToken(challenge, scope).then(
      ({ token, expiresAt }) => {
        this.tokens.set(key, { token, expiresAt });
        this.pending.delete(key);
        return token;
      },
      (err: unknown) => {
        this.pending.delete(key);
        throw err;
      },
    );
    this.pending.set(key, promise);
    return promise;
  }

  private async fetchToken(challenge: Challenge, scope: string | undefined): Promise<CachedToken> {
    const realm = challenge.params.realm;
    if (!realm) throw new TokenError('bearer challenge without a realm');
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new TokenError(`bearer challenge realm is not a URL: ${realm.slice(0, 200)}`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TokenError(`token realm ${url.origin} is not http(s)`);
    if (!this.allowedHosts.has(url.host.toLowerCase()) && !this.allowedHosts.has(url.hostname.toLowerCase())) {
      throw new TokenError(`token realm ${url.host} is not in upstream.auth.realms; the edge sends no credentials there`);
    }
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    const wanted = challenge.params.scope ?? scope;
    if (wanted) url.searchParams.set('scope', wanted);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.credentials) {
      headers.authorization = 'Basic ' + Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64');
    }
    const started = this.now();
    const res = await request(url, { method: 'GET', headers, dispatcher: this.dispatcher });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new TokenError(`token realm ${url.host} answered ${res.statusCode}`);
    }
    const declared = Number(res.headers['content-length'] ?? 0);
    if (declared > MAX_TOKEN_RESPONSE) {
      await res.body.dump();
      throw new TokenError(`token response of ${declared} bytes is too large`);
    }
    const doc = (await res.body.json()) as { token?: unknown; access_token?: unknown; expires_in?: unknown };
    const token = typeof doc.token === 'string' ? doc.token : typeof doc.access_token === 'string' ? doc.access_token : undefined;
    if (!token) throw new TokenError(`token realm ${url.host} answered without a token`);
    const expiresIn = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : DEFAULT_EXPIRES_IN_S;
    return { token, expiresAt: started + Math.max(1000, expiresIn * 1000 - EARLY_REFRESH_MS) };
  }
}
