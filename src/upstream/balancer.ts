/**
 * Choice of the upstream registry instance for a request, and passive/active health
 * state — the part of nginx's `upstream { ip_hash | least_conn; server ... max_fails=
 * fail_timeout= weight= backup; }` the edge replaces. Pure: no I/O, no timers; time
 * comes from the injected clock.
 *
 * - ip_hash: weighted rendezvous hashing (highest random weight) on ipHashKey(client),
 *   so marking a server down or removing it moves only the clients that were on it,
 *   and adding one moves only the ~1/n that now land on the new server. (Unlike nginx's
 *   own ip_hash, which remaps far more on any change.)
 * - round_robin: nginx's smooth weighted round robin.
 * - least_conn: fewest active requests relative to weight (nginx: conns/weight; the same
 *   as fewest active when weights are equal), ties by smooth weighted round robin.
 */
import { parseIp } from '../net/ip.js';

export interface ServerSpec {
  /** Identity of the server, e.g. its origin URL. Unique within a balancer. */
  readonly id: string;
  /** Relative share of requests, >= 1 (nginx `weight`). */
  readonly weight: number;
  /** Failures within failTimeoutMs that mark the server down (nginx `max_fails`, default 1); 0 disables accounting. */
  readonly maxFails: number;
  /** Window for counting failures and time a server stays down (nginx `fail_timeout`, default 10 s). */
  readonly failTimeoutMs: number;
  /** Used only when every primary server is down (nginx `backup`). */
  readonly backup: boolean;
}

export type Strategy = 'ip_hash' | 'round_robin' | 'least_conn';

export const DEFAULT_MAX_FAILS = 1;
export const DEFAULT_FAIL_TIMEOUT_MS = 10_000;

export interface ServerState {
  readonly id: string;
  readonly backup: boolean;
  readonly weight: number;
  /** What order() currently treats it as: probe not down and not passively down. */
  readonly healthy: boolean;
  /** Failures counted in the current window (or since it was marked down). */
  readonly fails: number;
  /** Requests between acquire() and release(). */
  readonly active: number;
  /** Last active probe result; null before any probe. */
  readonly probeHealthy: boolean | null;
  /** Clock time until which the server is passively down; null when it is not. */
  readonly downUntil: number | null;
}

interface Peer {
  spec: ServerSpec;
  /** Position in the configured list: ties and "every server in order". */
  index: number;
  /** Two 32-bit hashes of the id, for rendezvous hashing. */
  h1: number;
  h2: number;
  /** Smooth weighted round robin state (nginx current_weight). */
  current: number;
  active: number;
  fails: number;
  windowStart: number;
  /** Marked down by maxFails failures, and not yet vindicated by a success. */
  tripped: boolean;
  downUntil: number;
  probe: boolean | undefined;
}

// ---- hashing -------------------------------------------------------------------------
// murmur3 (x86, 32-bit) building blocks, all in Math.imul int32 arithmetic.

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const SEED_A = 0x9747b28c;
const SEED_B = 0x5bd1e995;
const TWO_POW_20 = 2 ** 20;
const TWO_POW_52 = 2 ** 52;

function mixBlock(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** murmur3_32 over the string's UTF-16 code units, two per 32-bit block. Stable across processes. */
function hashString(text: string, seed: number): number {
  let h = seed | 0;
  const n = text.length;
  let i = 0;
  for (; i + 1 < n; i += 2) h = mixBlock(h, text.charCodeAt(i) | (text.charCodeAt(i + 1) << 16));
  if (i < n) {
    let k = Math.imul(text.charCodeAt(i), C1);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, C2);
  }
  return fmix32(h ^ (n * 2));
}

/** murmur3_32 of the three words (k, a, b). */
function hash3(seed: number, k: number, a: number, b: number): number {
  let h = mixBlock(seed, k);
  h = mixBlock(h, a);
  h = mixBlock(h, b);
  return fmix32(h ^ 12);
}

/**
 * Rendezvous score of (key, server): weight / -ln(u) with u uniform in (0,1) from 52
 * hash bits (+ 1/2, exact below 2^52, so u is never 0 or 1). The server with the highest score wins; the ranking of any two servers
 * does not depend on the others, which is what keeps remapping minimal.
 */
function rendezvousScore(k1: number, k2: number, peer: Peer): number {
  const a = hash3(SEED_A, k1, peer.h1, peer.h2);
  const b = hash3(SEED_B, k2, peer.h2, peer.h1);
  const u = (a * TWO_POW_20 + (b >>> 12) + 0.5) / TWO_POW_52;
  return peer.spec.weight / -Math.log(u);
}

/**
 * nginx's ip_hash key: an IPv4 client (also IPv4-mapped IPv6) by its first three
 * octets ("10.1.2"), an IPv6 client by its whole (normalised) address. Anything that is
 * not an address is used as it is (trimmed).
 */
export function ipHashKey(address: string): string {
  const ip = parseIp(address);
  if (!ip) return address.trim();
  if (ip.family === 'ipv6') return ip.address;
  return ip.address.slice(0, ip.address.lastIndexOf('.'));
}

// ---- balancer ------------------------------------------------------------------------

function validate(servers: readonly ServerSpec[]): void {
  const seen = new Set<string>();
  for (const s of servers) {
    if (typeof s.id !== 'string' || s.id.length === 0) throw new Error('upstream server without an id');
    if (seen.has(s.id)) throw new Error(`duplicate upstream server ${JSON.stringify(s.id)}`);
    seen.add(s.id);
    if (!Number.isFinite(s.weight) || s.weight < 1) throw new Error(`upstream server ${s.id}: weight must be >= 1, got ${s.weight}`);
    if (!Number.isInteger(s.maxFails) || s.maxFails < 0) throw new Error(`upstream server ${s.id}: maxFails must be an integer >= 0, got ${s.maxFails}`);
    if (!Number.isFinite(s.failTimeoutMs) || s.failTimeoutMs < 0) throw new Error(`upstream server ${s.id}: failTimeoutMs must be >= 0, got ${s.failTimeoutMs}`);
  }
}

export class Balancer {
  readonly strategy: Strategy;
  readonly #now: () => number;
  #peers: Peer[] = [];
  readonly #byId = new Map<string, Peer>();

  constructor(servers: readonly ServerSpec[], strategy: Strategy, now: () => number = Date.now) {
    this.strategy = strategy;
    this.#now = now;
    this.update(servers);
  }

  /** The configured servers, in order. */
  servers(): ServerSpec[] {
    return this.#peers.map((p) => p.spec);
  }

  /**
   * Servers to try for one request, best first: the chosen one, then the other healthy
   * servers of its group in the strategy's order, then (when the chosen one is a
   * primary) the healthy backups. When none is healthy: every server, primaries first,
   * in the strategy's order, so the request still tries (as nginx does when all are down).
   * Advances round-robin state once per call; call it once per request.
   */
  order(clientKey: string | undefined): ServerSpec[] {
    const now = this.#now();
    const primaries: Peer[] = [];
    const backups: Peer[] = [];
    for (const p of this.#peers) {
      if (!this.#healthyAt(p, now)) continue;
      (p.spec.backup ? backups : primaries).push(p);
    }
    const key = this.strategy === 'ip_hash' && clientKey !== undefined && clientKey !== '' ? keyHash(ipHashKey(clientKey)) : undefined;
    let ranked: Peer[];
    if (primaries.length > 0) {
      ranked = [...this.#rank(primaries, key, true), ...this.#rank(backups, key, false)];
    } else if (backups.length > 0) {
      ranked = this.#rank(backups, key, true);
    } else {
      const all = this.#peers;
      ranked = [
        ...this.#rank(all.filter((p) => !p.spec.backup), key, true),
        ...this.#rank(all.filter((p) => p.spec.backup), key, false),
      ];
    }
    return ranked.map((p) => p.spec);
  }

  /** Marks a request start on a server, for least_conn. */
  acquire(id: string): void {
    const p = this.#byId.get(id);
    if (p) p.active++;
  }

  /** Marks a request end on a server, for least_conn. */
  release(id: string): void {
    const p = this.#byId.get(id);
    if (p && p.active > 0) p.active--;
  }

  /**
   * A failed request (connect error or 5xx). maxFails failures within failTimeoutMs mark
   * the server down for failTimeoutMs. After that it gets requests again, but (as in
   * nginx) one more failure before any success marks it down again at once.
   * True when this failure marked the server down (it was up before).
   */
  reportFailure(id: string): boolean {
    const p = this.#byId.get(id);
    if (!p || p.spec.maxFails <= 0) return false;
    const wasHealthy = this.#healthyAt(p, this.#now());
    const now = this.#now();
    const { maxFails, failTimeoutMs } = p.spec;
    if (p.tripped) {
      p.fails++;
      p.downUntil = now + failTimeoutMs;
      return wasHealthy;
    }
    if (p.fails === 0 || now - p.windowStart >= failTimeoutMs) {
      p.fails = 0;
      p.windowStart = now;
    }
    p.fails++;
    if (p.fails >= maxFails) {
      p.tripped = true;
      p.downUntil = now + failTimeoutMs;
    }
    return wasHealthy && p.tripped;
  }

  /** A successful request: clears the failure count and any passive down state. */
  reportSuccess(id: string): void {
    const p = this.#byId.get(id);
    if (p) this.#resetPassive(p);
  }

  /**
   * Result of an active probe. false: the server is down whatever the passive state,
   * until a probe succeeds. true after false: back, with a clean passive state.
   */
  setProbeHealthy(id: string, healthy: boolean): void {
    const p = this.#byId.get(id);
    if (!p) return;
    if (healthy && p.probe === false) this.#resetPassive(p);
    p.probe = healthy;
  }

  isHealthy(id: string): boolean {
    const p = this.#byId.get(id);
    return p !== undefined && this.#healthyAt(p, this.#now());
  }

  /**
   * Replaces the server list (config reload, an instance added), keeping the health,
   * active counts and round-robin state of ids that remain. Throws on an invalid list
   * (duplicate id, weight < 1, ...) and then changes nothing.
   */
  update(servers: readonly ServerSpec[]): void {
    validate(servers);
    const old = new Map(this.#byId);
    this.#byId.clear();
    this.#peers = servers.map((spec, index) => {
      const kept = old.get(spec.id);
      const peer: Peer = kept ?? {
        spec,
        index,
        h1: hashString(spec.id, SEED_A),
        h2: hashString(spec.id, SEED_B),
        current: 0,
        active: 0,
        fails: 0,
        windowStart: 0,
        tripped: false,
        downUntil: 0,
        probe: undefined,
      };
      peer.spec = { ...spec };
      peer.index = index;
      if (spec.maxFails === 0) this.#resetPassive(peer);
      this.#byId.set(spec.id, peer);
      return peer;
    });
  }

  snapshot(): ServerState[] {
    const now = this.#now();
    return this.#peers.map((p) => ({
      id: p.spec.id,
      backup: p.spec.backup,
      weight: p.spec.weight,
      healthy: this.#healthyAt(p, now),
      fails: p.tripped || (p.fails > 0 && now - p.windowStart < p.spec.failTimeoutMs) ? p.fails : 0,
      active: p.active,
      probeHealthy: p.probe ?? null,
      downUntil: p.tripped && now < p.downUntil ? p.downUntil : null,
    }));
  }

  #healthyAt(p: Peer, now: number): boolean {
    if (p.probe === false) return false;
    return !p.tripped || now >= p.downUntil;
  }

  #resetPassive(p: Peer): void {
    p.fails = 0;
    p.windowStart = 0;
    p.tripped = false;
    p.downUntil = 0;
  }

  /** One group ranked by the strategy; `advance` moves round-robin state (the group the request goes to). */
  #rank(group: Peer[], key: KeyHash | undefined, advance: boolean): Peer[] {
    if (group.length <= 1) return group.slice();
    if (key !== undefined) return rankRendezvous(group, key);
    if (this.strategy === 'least_conn') return rankLeastConn(group, advance);
    return rankRoundRobin(group, advance);
  }
}

interface KeyHash {
  readonly k1: number;
  readonly k2: number;
}

function keyHash(key: string): KeyHash {
  return { k1: hashString(key, SEED_A), k2: hashString(key, SEED_B) };
}

function rankRendezvous(group: Peer[], key: KeyHash): Peer[] {
  const scored = group.map((peer) => ({ peer, score: rendezvousScore(key.k1, key.k2, peer) }));
  scored.sort((x, y) => y.score - x.score || x.peer.index - y.peer.index);
  return scored.map((s) => s.peer);
}

/**
 * nginx's smooth weighted round robin step over `group`: every peer's current weight
 * grows by its weight, the largest (first on ties) is chosen and loses the total.
 * Returns the chosen peer.
 */
function smoothStep(group: Peer[]): Peer {
  let total = 0;
  let best: Peer | undefined;
  for (const p of group) {
    p.current += p.spec.weight;
    total += p.spec.weight;
    if (best === undefined || p.current > best.current) best = p;
  }
  const chosen = best as Peer;
  chosen.current -= total;
  return chosen;
}

/** The others by current weight, highest first: the order the next steps would favour. */
function byCurrentWeight(x: Peer, y: Peer): number {
  return y.current - x.current || x.index - y.index;
}

function rankRoundRobin(group: Peer[], advance: boolean): Peer[] {
  if (!advance) return group.slice().sort(byCurrentWeight);
  const chosen = smoothStep(group);
  return [chosen, ...group.filter((p) => p !== chosen).sort(byCurrentWeight)];
}

function rankLeastConn(group: Peer[], advance: boolean): Peer[] {
  // active/weight compared without division, as nginx does.
  const load = (x: Peer, y: Peer): number => x.active * y.spec.weight - y.active * x.spec.weight;
  const sorted = group.slice().sort((x, y) => load(x, y) || byCurrentWeight(x, y));
  if (!advance) return sorted;
  const first = sorted[0] as Peer;
  const tied = sorted.filter((p) => load(p, first) === 0);
  const chosen = tied.length > 1 ? smoothStep(tied) : first;
  return [chosen, ...group.filter((p) => p !== chosen).sort((x, y) => load(x, y) || byCurrentWeight(x, y))];
}
