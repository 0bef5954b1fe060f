/**
 * Who may read what from the edge, decided before any cached answer is served, the
 * way the central registry would decide:
 *
 * - public: anyone (the edge pulls with its own credentials), or with an htpasswd
 *   file, any user in it;
 * - token: a bearer token the edge verifies itself (signature to the root bundle,
 *   issuer, audience, time, and `pull` on the repository), with the challenge the
 *   centre would give when it is missing or short;
 * - upstream-check: the upstream itself is asked with the client's credentials (a
 *   HEAD), and a yes is remembered for `ttl` under a hash of credential and repository
 *   (never the credential itself); a no is never remembered. A yes is shared with the
 *   zone's other replicas, whose yes is taken as this edge's own (until its own TTL in
 *   the zone ends: it is not remembered here, so it never outlives `ttl`).
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { RegistryError } from '../oci/errors.js';
import type { Logger } from '../log/logger.js';
import type { Htpasswd } from './htpasswd.js';
import { TokenVerifier, type Access } from './token-verifier.js';
import type { SharedDecisions } from '../zone/shared-facts.js';

export type AuthMode = 'public' | 'token' | 'upstream-check';

/** Asks the upstream whether these credentials may read the repository; throws its refusal. */
export type UpstreamCheck = () => Promise<void>;

export interface TokenSettings {
  readonly realm: (base: string) => string;
  readonly service: string;
  readonly verifier: TokenVerifier;
}

const MAX_DECISIONS = 100_000;

/** Clients of the edge itself in public mode, when an htpasswd file is configured. */
export interface BasicSettings {
  readonly realm: string;
  readonly htpasswd: Htpasswd;
}

export class Authorizer {
  readonly mode: AuthMode;
  private readonly token: TokenSettings | undefined;
  private readonly basic: BasicSettings | undefined;
  private readonly decisions: LRUCache<string, true>;
  private readonly zone: SharedDecisions | undefined;
  private readonly now: () => number;
  /** Says at debug level why a token was refused. */
  private readonly log: Logger | undefined;

  constructor(mode: AuthMode, opts: { token?: TokenSettings; basic?: BasicSettings; checkTtlMs: number; zone?: SharedDecisions; now?: () => number; log?: Logger }) {
    this.mode = mode;
    this.log = opts.log;
    this.zone = opts.zone;
    this.token = opts.token;
    this.basic = opts.basic;
    this.now = opts.now ?? Date.now;
    this.decisions = new LRUCache<string, true>({ max: MAX_DECISIONS, ttl: Math.max(1, opts.checkTtlMs), perf: { now: this.now } });
    if (mode === 'token' && !opts.token) throw new Error('token mode needs token settings');
  }

  /**
   * GET /v2/: token mode wants any valid token, public mode with htpasswd a known user; upstream-check asks the upstream.
   * Resolves with who the client is (the token's subject, the htpasswd user) when the edge knows.
   */
  async base(authorization: string | undefined, base: string): Promise<string | undefined> {
    if (this.mode === 'token') return this.verified(authorization, base, undefined).subject;
    if (this.mode === 'public') return this.basicUser(authorization);
    return undefined;
  }

  /**
   * Throws the error the client must see unless it may pull from `repository`; else
   * resolves with who the client is, as base() does. `check` is the upstream question
   * for upstream-check mode.
   */
  async pull(repository: string, authorization: string | undefined, base: string, check: UpstreamCheck): Promise<string | undefined> {
    if (this.mode === 'public') return this.basicUser(authorization);
    if (this.mode === 'token') {
      const { access, subject } = this.verified(authorization, base, repository);
      if (!TokenVerifier.allows(access, repository, 'pull')) {
        this.log?.debug({ check: 'access', subject, repository }, 'token refused: its access claim does not grant pull on the repository');
        throw this.challenge(base, repository, 'insufficient_scope');
      }
      return subject;
    }
    // Anonymous clients are keyed too: the upstream may let anyone pull a public repository.
    const key = createHash('sha256').update(authorization ?? '').update('\n').update(repository).digest('base64url');
    if (this.decisions.get(key)) return undefined;
    if (await this.zone?.hasDecision(key)) return undefined;
    await check();
    this.decisions.set(key, true);
    this.zone?.shareDecision(key);
    return undefined;
  }

  private async basicUser(authorization: string | undefined): Promise<string | undefined> {
    if (!this.basic) return undefined;
    const user = await this.basic.htpasswd.verify(authorization);
    if (user !== undefined) return user;
    throw new RegistryError('UNAUTHORIZED', 'authentication required', undefined, 401, { 'www-authenticate': `Basic realm="${this.basic.realm}"` });
  }

  private verified(authorization: string | undefined, base: string, repository: string | undefined): { access: readonly Access[]; subject: string } {
    const settings = this.token as TokenSettings;
    const match = authorization ? /^Bearer\s+(\S+)$/i.exec(authorization) : null;
    if (!match?.[1]) throw this.challenge(base, repository, undefined);
    const result = settings.verifier.verify(match[1]);
    if (!result.ok) {
      this.log?.debug({ check: result.check, reason: result.reason, repository }, `token refused: ${result.check}`);
      throw this.challenge(base, repository, 'invalid_token', result.reason);
    }
    return result;
  }

  private challenge(base: string, repository: string | undefined, error: string | undefined, reason?: string): RegistryError {
    const settings = this.token as TokenSettings;
    const params = [`realm="${settings.realm(base)}"`, `service="${settings.service}"`];
    if (repository) params.push(`scope="repository:${repository}:pull"`);
    if (error) params.push(`error="${error}"`);
    const message = error === 'insufficient_scope' ? 'authorization does not grant pull on this repository' : 'authentication required';
    return new RegistryError('UNAUTHORIZED', message, reason ? { reason } : undefined, 401, { 'www-authenticate': `Bearer ${params.join(',')}` });
  }
}
