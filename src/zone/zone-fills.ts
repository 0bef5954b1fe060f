/**
 * Where a fill's bytes come from when the edge is one replica of a zone: the coordinator
 * says who fetches a digest from the origin. This replica, under a lease released when the
 * fill settles; or the replica holding the lease, whose body this fill then streams,
 * verifies and keeps as if it were the origin's (its own local followers follow it as
 * usual). A holder that cannot be reached is taken over; past a few hops the fill goes to
 * the origin alone, so no request fails because the zone cannot agree.
 */
import type { Fill, FillFailure, FillSource } from '../cache/fill.js';
import type { Logger } from '../log/logger.js';
import type { Digest } from '../oci/grammar.js';
import type { Coordinator, FillClaim, FillLease } from './coordinator.js';
import { PeerUnreachable, type PeerRegistry } from './peer-registry.js';

/** What a fill from a peer came to: the fill's own result once it had a body, else why there was none. */
export type PeerFillResult = 'committed' | FillFailure | 'unreachable' | 'absent' | 'refused';

export interface ZoneFillEvents {
  onClaim(result: 'held' | 'peer' | 'takeover'): void;
  onPeerFill(result: PeerFillResult): void;
}

/** One fill's source and the call that ends what the source claimed. */
export interface Flight {
  readonly source: () => Promise<FillSource>;
  /** The fill settled (committed or failed): the lease, if this replica held one, is released. */
  readonly settled: (fill: Fill) => void;
}

export interface FlightSources {
  /** The origin's body, fetched under this request's repository and credentials. */
  readonly origin: () => Promise<FillSource>;
  /**
   * Before a peer's bytes are taken: the origin confirms the request's repository holds
   * the blob (a HEAD, unless membership knows it), as its GET would have; rejects with its refusal.
   */
  readonly confirm: () => Promise<void>;
}

/** Peers asked in turn for one fill (a holder taken over, then whoever holds it now) before the origin is asked alone. */
const MAX_PEER_HOPS = 3;

export class ZoneFills {
  private readonly coordinator: Coordinator;
  private readonly peer: (url: string) => PeerRegistry;
  private readonly events: ZoneFillEvents;
  private readonly log: Logger;
  /** zone.facts_ttl: how long a committed blob is announced as held here. */
  private readonly heldMs: number;

  constructor(coordinator: Coordinator, peer: (url: string) => PeerRegistry, events: ZoneFillEvents, log: Logger, heldMs: number) {
    this.coordinator = coordinator;
    this.peer = peer;
    this.events = events;
    this.log = log;
    this.heldMs = heldMs;
  }

  flight(digest: Digest, from: FlightSources): Flight {
    let lease: FillLease | undefined;
    let fromPeer = false;
    const source = async (): Promise<FillSource> => {
      let claim = await this.coordinator.claimFill(digest.value);
      this.events.onClaim(claim.kind === 'lease' ? 'held' : 'peer');
      let confirmed = false;
      for (let hop = 0; claim.kind === 'peer'; hop++) {
        if (hop === MAX_PEER_HOPS) {
          this.log.warn({ digest: digest.value, peer: claim.peer, hops: hop }, 'zone peers did not serve the blob; fetching it from the origin without a lease');
          return from.origin();
        }
        if (!confirmed) await from.confirm();
        confirmed = true;
        const peer = claim.peer;
        try {
          const body = await this.peer(peer).openBlob('', digest, undefined);
          fromPeer = true;
          return body;
        } catch (err) {
          const result = err instanceof PeerUnreachable ? 'unreachable' : (err as { status?: number }).status === 404 ? 'absent' : 'refused';
          this.events.onPeerFill(result);
          if (result !== 'absent') this.log.warn({ digest: digest.value, peer, result, err: (err as Error).message }, 'zone peer did not serve a blob it holds the lease of; taking the lease over');
        }
        claim = await this.takeOver(digest, peer);
      }
      lease = claim.lease;
      return from.origin();
    };
    const settled = (fill: Fill): void => {
      const reason = (fill.error as { reason?: FillFailure } | undefined)?.reason;
      if (fromPeer) this.events.onPeerFill(reason ?? 'committed');
      // Announced before the lease goes, so a sibling missing it next finds one or the other.
      const announced = fill.error ? Promise.resolve() : this.coordinator.holding(digest.value, this.heldMs);
      void announced.then(() => lease?.release());
    };
    return { source, settled };
  }

  private async takeOver(digest: Digest, peer: string): Promise<FillClaim> {
    const claim = await this.coordinator.takeOver(digest.value, peer);
    if (claim.kind === 'lease') this.events.onClaim('takeover');
    return claim;
  }
}
