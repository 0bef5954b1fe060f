/**
 * The primary's side of the coordinator of one host's workers: who fetches each blob
 * (and where the others follow it), and the facts the workers share, each with its TTL.
 * In memory only: it lives as long as the primary, and a worker that dies loses its
 * leases at once (forget), so a follower takes the fill over on its first retry.
 */
import { LRUCache } from 'lru-cache';
import type { TagMapping } from '../cache/manifest-store.js';
import type { HostAnswer, HostCall } from './messages.js';

/** Bounds of the shared facts: past them the least recently used go (a fact is a courtesy, never required). */
const MAX_TAGS = 100_000;
const MAX_MEMBERS = 1_000_000;
const MAX_DECISIONS = 100_000;
const MAX_CLAIMS = 100_000;
/** Blobs remembered as just committed by a worker: the window between another worker's look at the disk and its claim. */
const MAX_HELD = 10_000;

interface Lease {
  readonly worker: number;
  readonly peer: string;
}

/** lru-cache tracks per-entry TTLs only when it has a default; every set here passes its own. */
const withTtls = <V extends object>(max: number): LRUCache<string, V> => new LRUCache<string, V>({ max, ttl: 1, ttlAutopurge: false });

export class HostState {
  private readonly leases = new Map<string, Lease>();
  private readonly tags = withTtls<TagMapping>(MAX_TAGS);
  private readonly members = withTtls<object>(MAX_MEMBERS);
  private readonly decisions = withTtls<object>(MAX_DECISIONS);
  private readonly claims = withTtls<object>(MAX_CLAIMS);
  /**
   * Who committed a digest last. A worker that found no file and then claims the fill
   * may have looked just before another worker's rename: it follows that worker's listener
   * (which serves what it holds) instead of fetching the blob a second time.
   */
  private readonly held = withTtls<Lease>(MAX_HELD);

  /** Leases held now (for the status line and the tests). */
  get leaseCount(): number {
    return this.leases.size;
  }

  answer(worker: number, call: HostCall): HostAnswer {
    switch (call.op) {
      case 'claimFill':
        return this.claim(call.digest, worker, call.peer);
      case 'takeOver': {
        if (this.leases.get(call.digest)?.peer === call.dead) this.leases.delete(call.digest);
        if (this.held.get(call.digest)?.peer === call.dead) this.held.delete(call.digest);
        return this.claim(call.digest, worker, call.peer);
      }
      case 'holding':
        this.held.set(call.digest, { worker, peer: call.peer }, { ttl: ttl(call.ttlMs) });
        return null;
      case 'release':
        if (this.leases.get(call.digest)?.worker === worker) this.leases.delete(call.digest);
        return null;
      case 'getTag':
        return this.tags.get(call.key) ?? null;
      case 'putTag': {
        const known = this.tags.get(call.key);
        // The freshest confirmation wins, whoever reports last.
        if (!known || known.confirmedAt <= call.mapping.confirmedAt) this.tags.set(call.key, call.mapping, { ttl: ttl(call.ttlMs) });
        return null;
      }
      case 'hasMember':
        return this.members.has(`${call.repo}\n${call.digest}`);
      case 'addMembers':
        for (const digest of call.digests) this.members.set(`${call.repo}\n${digest}`, YES, { ttl: ttl(call.ttlMs) });
        return null;
      case 'hasDecision':
        return this.decisions.has(call.key);
      case 'putDecision':
        this.decisions.set(call.key, YES, { ttl: ttl(call.ttlMs) });
        return null;
      case 'claimOnce':
        if (this.claims.has(call.id)) return false;
        this.claims.set(call.id, YES, { ttl: ttl(call.ttlMs) });
        return true;
    }
  }

  /** A worker exited: the fills it held are anybody's again. */
  forget(worker: number): void {
    for (const [digest, lease] of this.leases) if (lease.worker === worker) this.leases.delete(digest);
    for (const [digest, lease] of this.held.entries()) if (lease.worker === worker) this.held.delete(digest);
  }

  private claim(digest: string, worker: number, peer: string): HostAnswer {
    const leased = this.leases.get(digest);
    if (leased && leased.worker !== worker) return { kind: 'peer', peer: leased.peer };
    const held = this.held.get(digest);
    if (held && held.worker !== worker) return { kind: 'peer', peer: held.peer };
    this.leases.set(digest, { worker, peer });
    return { kind: 'lease' };
  }
}

const YES = {};
const ttl = (ms: number): number => Math.max(1, Math.round(ms));
