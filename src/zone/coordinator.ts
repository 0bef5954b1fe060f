/**
 * What the edges of one zone agree on: the replicas behind the zone's load balancer
 * (through Redis) and the workers of one host (through their primary process). One
 * interface, so a fill, a tag or a decision is shared the same way whoever the siblings are.
 *
 * Every method resolves; none rejects. When the shared store is unreachable or slow the
 * answer is what a lone edge would decide (a lease of its own, no shared fact), so no
 * request fails because the zone cannot be asked. Implementations count and log that
 * themselves (a metric, and one warn line per interval).
 */
import type { TagMapping } from '../cache/manifest-store.js';

/** This process fetches the blob from the origin; its siblings follow it through its peer listener. */
export interface FillLease {
  /** Ends the lease once the fill committed or failed (renewal stops); idempotent. */
  release(): Promise<void>;
}

export type FillClaim =
  /** Fetch from the origin (a lease of the zone's, or a lone one when the zone cannot be asked). */
  | { readonly kind: 'lease'; readonly lease: FillLease }
  /** `peer` (its zone.peer.url) is filling the blob now, or has committed it: stream it from there. */
  | { readonly kind: 'peer'; readonly peer: string };

/** Facts one edge learnt from the origin that the others may use until `ttlMs` passes. */
export interface ZoneFacts {
  /** The freshest tag mapping a sibling confirmed (`key` as the manifest store keys tags: origin, name, tag). */
  getTag(key: string): Promise<TagMapping | undefined>;
  putTag(key: string, mapping: TagMapping, ttlMs: number): Promise<void>;
  /** Whether a sibling saw the origin confirm that `repo` (membership's origin key) holds `digest`. */
  hasMember(repo: string, digest: string): Promise<boolean>;
  addMembers(repo: string, digests: readonly string[], ttlMs: number): Promise<void>;
  /** upstream-check mode: yes decisions only (never the noes). */
  hasDecision(key: string): Promise<boolean>;
  putDecision(key: string, ttlMs: number): Promise<void>;
}

export interface Coordinator extends ZoneFacts {
  /** Who fetches `digest` (a `sha256:…` value) from the origin. */
  claimFill(digest: string): Promise<FillClaim>;
  /**
   * `peer` held the lease but cannot be reached (it died mid-fill): the lease is taken
   * over if it is still that peer's, so this process fetches; else whoever holds it now.
   */
  takeOver(digest: string, peer: string): Promise<FillClaim>;
  /**
   * This process committed `digest` (from the origin or a peer): a sibling that misses it
   * later streams it from here instead of asking the origin, for `ttlMs`.
   */
  holding(digest: string, ttlMs: number): Promise<void>;
  /** True for exactly one caller zone-wide within `ttlMs` (a notification's event id, one prefetch). */
  claimOnce(id: string, ttlMs: number): Promise<boolean>;
  close(): Promise<void>;
}
