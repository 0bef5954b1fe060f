/**
 * The zone's coordinator over Redis: the replicas behind one load balancer agree on who
 * fetches a blob from the centre and share what they learnt from it.
 *
 * Keys, all under `zone.redis.prefix`:
 *   fill:<digest>                  "<zone.peer.url> <token>" of the lease holder, PX zone.lease_ttl
 *   held:<digest>                  set of the zone.peer.url of replicas that committed the digest, PX zone.facts_ttl
 *   tag:<repo>:<tag>               a tag mapping as JSON, PX cache.tag_ttl
 *   member:<repo> <digest>         the origin confirmed the repository holds the digest, PX zone.facts_ttl
 *   decision:[<host>/]<hash>       an upstream-check yes, PX auth.check.ttl
 * (<repo> is originKey's: <host>/<name>, a plain name for the default origin.)
 *   once:<id>                      claimOnce, PX as asked
 *
 * Redis is a courtesy, never a dependency: every call is bounded by zone.redis.timeout,
 * nothing is queued while the connection is down, and a failure is answered as a lone
 * edge would answer it. After a failure calls skip Redis (one PING probes it) until it
 * answers again, so a stalled server costs one timeout, not one per call.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { TagMapping } from '../cache/manifest-store.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { parseDigest } from '../oci/grammar.js';
import type { Coordinator, FillClaim, FillLease } from './coordinator.js';
import { LONE_LEASE, SoloCoordinator } from './solo.js';

export interface RedisZoneOptions {
  /** redis:// or rediss:// URL. */
  readonly url: string;
  readonly prefix: string;
  /** Longest a command or a connection attempt may take. */
  readonly timeoutMs: number;
  readonly leaseTtlMs: number;
  readonly warnIntervalMs: number;
  /** Longest pause between two reconnection attempts. */
  readonly reconnectMaxMs: number;
  /**
   * zone.peer.url, how the other replicas reach this one; it names this process in its
   * leases. '' (no peer listener): no sibling could follow this edge's fills, so it
   * takes no zone leases and fetches alone; it still shares and reads facts.
   */
  readonly peerUrl: string;
}

/**
 * KEYS: fill:, held: of one digest. ARGV: the lease value, its TTL, this replica's URL, and
 * for a takeover the dead peer's. The lease holder's value if another holds one (unless it
 * names the dead peer); else a replica that committed the blob, as "<url> held" (neither
 * this one, which is missing it, nor the dead peer, which did not serve it); else SET and nil.
 */
const CLAIM = `local v = redis.call('GET', KEYS[1])
if v and (ARGV[4] == nil or string.sub(v, 1, string.len(ARGV[4]) + 1) ~= ARGV[4] .. ' ') then return v end
if v then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], ARGV[3])
if ARGV[4] ~= nil then redis.call('SREM', KEYS[2], ARGV[4]) end
local h = redis.call('SRANDMEMBER', KEYS[2])
if h then return h .. ' held' end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`;

const HOLD = `redis.call('SADD', KEYS[1], ARGV[1])
return redis.call('PEXPIRE', KEYS[1], ARGV[2])`;

const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

const ADD_ALL = `for _, k in ipairs(KEYS) do redis.call('SET', k, '1', 'PX', ARGV[1]) end
return #KEYS`;

type Op = 'lease' | 'renew' | 'release' | 'fact' | 'claim_once' | 'connect';

/** The peer URL of a lease value ("<url> <token>"). */
const peerOf = (value: string): string => value.slice(0, Math.max(0, value.lastIndexOf(' ')));

/** Redis wants whole milliseconds of at least 1. */
const px = (ms: number): number => Math.max(1, Math.round(ms));

export class RedisCoordinator implements Coordinator {
  private readonly redis: Redis;
  private readonly opts: RedisZoneOptions;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  /** Where the server is, for log lines (never its password). */
  private readonly where: string;
  /** claimOnce remembered here too, so a duplicate is still refused while Redis is away. */
  private readonly lone = new SoloCoordinator();
  /** Leases this process holds: lease key -> its renewal timer. */
  private readonly held = new Map<string, { readonly value: string; readonly timer: NodeJS.Timeout }>();
  private closed = false;
  /** A call failed and no answer came since: calls skip Redis until a probe or a reconnection succeeds. */
  private stalled = false;
  private probing = false;
  private downSince: number | undefined;
  private failuresSinceWarn = 0;
  private lastWarnAt = -Infinity;

  constructor(opts: RedisZoneOptions, metrics: Metrics, log: Logger) {
    this.opts = opts;
    this.metrics = metrics;
    this.log = log;
    this.where = redisHost(opts.url);
    this.redis = new Redis(opts.url, {
      // A command while disconnected fails at once instead of waiting for a reconnection.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: opts.timeoutMs,
      connectTimeout: opts.timeoutMs,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 16), opts.reconnectMaxMs),
      connectionName: 'registry-edge',
    });
    metrics.zoneRedisUp.set(0);
    this.redis.on('ready', () => this.answered());
    this.redis.on('error', (err: Error) => this.alone('connect', err));
    this.redis.on('close', () => {
      this.stalled = true;
      metrics.zoneRedisUp.set(0);
    });
  }

  /** Resolves true once connected, false if not within `ms` (the edge starts alone then, and joins when Redis answers). */
  ready(ms: number): Promise<boolean> {
    if (this.redis.status === 'ready') return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        this.redis.off('ready', onReady);
        resolve(ok);
      };
      const onReady = (): void => done(true);
      const timer = setTimeout(() => done(false), ms);
      this.redis.on('ready', onReady);
    });
  }

  /** Callers claim once per local fill: the blob cache's single flight runs before the zone's. */
  claimFill(digest: string): Promise<FillClaim> {
    return this.claim(digest, undefined);
  }

  takeOver(digest: string, peer: string): Promise<FillClaim> {
    return this.claim(digest, peer);
  }

  private async claim(digest: string, deadPeer: string | undefined): Promise<FillClaim> {
    const self = this.opts.peerUrl;
    if (!self) return LONE_LEASE;
    const key = this.key('fill:', digest);
    const value = `${self} ${randomBytes(12).toString('base64url')}`;
    const ttl = px(this.opts.leaseTtlMs);
    const held = this.key('held:', digest);
    const holder = await this.run('lease', (r) =>
      (deadPeer === undefined ? r.eval(CLAIM, 2, key, held, value, ttl, self) : r.eval(CLAIM, 2, key, held, value, ttl, self, deadPeer)) as Promise<string | null>,
    );
    if (holder === undefined) return LONE_LEASE;
    if (holder === null) return { kind: 'lease', lease: this.hold(key, value) };
    const peer = peerOf(holder);
    // Named after this process but not held by it: an earlier run of it, which holds no fill now.
    if (peer === self && deadPeer === undefined && this.held.get(key)?.value !== holder) return this.claim(digest, self);
    return { kind: 'peer', peer };
  }

  /** Renewed every third of the TTL until released; a lease lost meanwhile (expired, taken over) is not renewed again. */
  private hold(key: string, value: string): FillLease {
    const ttl = px(this.opts.leaseTtlMs);
    const timer = setInterval(() => {
      void this.run('renew', (r) => r.eval(RENEW, 1, key, value, ttl) as Promise<number>).then((kept) => {
        if (kept !== 0 || this.held.get(key)?.value !== value) return;
        this.stopRenewing(key);
        this.log.warn({ lease: key, redis: this.where }, 'zone fill lease lost while filling (expired or taken over): a sibling may fetch the blob too');
      });
    }, Math.max(1, Math.floor(ttl / 3)));
    this.held.set(key, { value, timer });
    let released: Promise<void> | undefined;
    return {
      release: () => (released ??= this.release(key, value)),
    };
  }

  private stopRenewing(key: string): void {
    const lease = this.held.get(key);
    if (!lease) return;
    clearInterval(lease.timer);
    this.held.delete(key);
  }

  private async release(key: string, value: string): Promise<void> {
    if (this.held.get(key)?.value === value) this.stopRenewing(key);
    await this.run('release', (r) => r.eval(RELEASE, 1, key, value) as Promise<number>);
  }

  async holding(digest: string, ttlMs: number): Promise<void> {
    // Without a peer listener nobody could stream it from here.
    if (!this.opts.peerUrl) return;
    await this.run('fact', (r) => r.eval(HOLD, 1, this.key('held:', digest), this.opts.peerUrl, px(ttlMs)) as Promise<number>);
  }

  async claimOnce(id: string, ttlMs: number): Promise<boolean> {
    const set = await this.run('claim_once', (r) => r.set(this.key('once:', id), '1', 'PX', px(ttlMs), 'NX'));
    const locally = await this.lone.claimOnce(id, ttlMs);
    return set === undefined ? locally : set === 'OK';
  }

  async getTag(key: string): Promise<TagMapping | undefined> {
    const text = await this.run('fact', (r) => r.get(this.key('tag:', key)));
    return text ? tagMapping(text) : undefined;
  }

  async putTag(key: string, mapping: TagMapping, ttlMs: number): Promise<void> {
    const { digest, mediaType, confirmedAt } = mapping;
    await this.run('fact', (r) => r.set(this.key('tag:', key), JSON.stringify({ digest, mediaType, confirmedAt }), 'PX', px(ttlMs)));
  }

  async hasMember(repo: string, digest: string): Promise<boolean> {
    return (await this.run('fact', (r) => r.exists(this.memberKey(repo, digest)))) === 1;
  }

  async addMembers(repo: string, digests: readonly string[], ttlMs: number): Promise<void> {
    if (digests.length === 0) return;
    const keys = digests.map((d) => this.memberKey(repo, d));
    await this.run('fact', (r) => r.eval(ADD_ALL, keys.length, ...keys, px(ttlMs)) as Promise<number>);
  }

  async hasDecision(key: string): Promise<boolean> {
    return (await this.run('fact', (r) => r.exists(this.key('decision:', key)))) === 1;
  }

  async putDecision(key: string, ttlMs: number): Promise<void> {
    await this.run('fact', (r) => r.set(this.key('decision:', key), '1', 'PX', px(ttlMs)));
  }

  /** Releases the leases still held (so siblings need not wait for their TTL), then the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.held].map(([key, { value }]) => this.release(key, value)));
    this.closed = true;
    try {
      if (this.redis.status === 'ready' && !this.stalled) await this.redis.quit();
    } catch {
      // Already gone: disconnect below is all there is to do.
    }
    this.redis.disconnect();
    this.metrics.zoneRedisUp.set(0);
  }

  private key(kind: string, rest: string): string {
    return `${this.opts.prefix}${kind}${rest}`;
  }

  private memberKey(repo: string, digest: string): string {
    return this.key('member:', `${repo} ${digest}`);
  }

  /** `command`'s answer, or undefined when Redis did not give one (counted, and logged once per interval). */
  private async run<T>(op: Op, command: (redis: Redis) => Promise<T>): Promise<T | undefined> {
    if (this.closed) return undefined;
    if (this.stalled) {
      this.probe();
      this.alone(op, new Error(`not answering (connection ${this.redis.status})`));
      return undefined;
    }
    try {
      return await command(this.redis);
    } catch (err) {
      this.stalled = true;
      this.alone(op, err as Error);
      return undefined;
    }
  }

  private probe(): void {
    if (this.probing || this.redis.status !== 'ready') return;
    this.probing = true;
    this.redis.ping().then(
      () => this.answered(),
      () => undefined,
    ).finally(() => (this.probing = false));
  }

  private alone(op: Op, err: Error): void {
    if (this.closed) return;
    this.metrics.zoneRedisErrors.inc({ op });
    this.metrics.zoneRedisUp.set(0);
    this.downSince ??= Date.now();
    this.failuresSinceWarn++;
    const now = Date.now();
    if (now - this.lastWarnAt < this.opts.warnIntervalMs) return;
    this.lastWarnAt = now;
    this.log.warn({ redis: this.where, op, err: err.message, failures: this.failuresSinceWarn, key: 'zone.redis.url' }, 'zone Redis unreachable: this edge fetches and decides alone until it answers');
    this.failuresSinceWarn = 0;
  }

  private answered(): void {
    this.stalled = false;
    this.metrics.zoneRedisUp.set(1);
    if (this.downSince === undefined) return;
    this.log.info({ redis: this.where, downSeconds: Math.round((Date.now() - this.downSince) / 1000) }, 'zone Redis answering again: fills and facts shared with the zone');
    this.downSince = undefined;
    this.failuresSinceWarn = 0;
    this.lastWarnAt = -Infinity;
  }
}

/** A mapping a sibling wrote, checked as anything read from outside is. */
function tagMapping(text: string): TagMapping | undefined {
  try {
    const doc = JSON.parse(text) as Partial<TagMapping>;
    if (typeof doc.digest !== 'string' || !parseDigest(doc.digest) || typeof doc.mediaType !== 'string' || typeof doc.confirmedAt !== 'number') return undefined;
    return { digest: doc.digest, mediaType: doc.mediaType, confirmedAt: doc.confirmedAt };
  } catch {
    return undefined;
  }
}

/** host:port of a Redis URL, for log lines. */
function redisHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '';
  }
}
