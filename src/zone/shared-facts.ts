/**
 * The zone's facts as one origin's services use them: keys carry the origin (as the
 * membership log and tag files do, so a fact of ghcr.io is never one of docker.io), the
 * TTLs are the policy's, and what this edge learnt from the origin is shared without
 * being awaited (a courtesy to the siblings: no request waits for it). Only what the
 * origin confirmed is shared: never a stale-served mapping, never a refusal.
 */
import type { TagMapping } from '../cache/manifest-store.js';
import { originKey, type RepositoryMembership } from '../cache/membership.js';
import type { ZoneFacts } from './coordinator.js';

/** upstream-check yes decisions (`key`: the authorizer's hash of credential and repository). */
export interface SharedDecisions {
  hasDecision(key: string): Promise<boolean>;
  shareDecision(key: string): void;
}

export interface SharedTags {
  /** A sibling's last confirmed mapping of `name:tag`, if any. */
  tag(name: string, tag: string): Promise<TagMapping | undefined>;
  /** The origin has just confirmed `mapping`. */
  shareTag(name: string, tag: string, mapping: TagMapping): void;
}

export interface SharedMembers {
  hasMember(name: string, digest: string): Promise<boolean>;
  shareMembers(name: string, digests: readonly string[]): void;
}

export type SharedFacts = SharedDecisions & SharedTags & SharedMembers;

export interface FactTtls {
  /** cache.tag_ttl */
  readonly tagMs: number;
  /** zone.facts_ttl */
  readonly membersMs: number;
  /** auth.check.ttl */
  readonly decisionsMs: number;
}

/** The facts of origin `host` ('' for the default one, keyed by plain names as on disk). */
export function sharedFacts(zone: ZoneFacts, host: string, ttl: FactTtls): SharedFacts {
  const tagKey = (name: string, tag: string): string => `${originKey(host, name)}:${tag}`;
  return {
    hasDecision: (key) => zone.hasDecision(originKey(host, key)),
    shareDecision: (key) => {
      if (ttl.decisionsMs > 0) void zone.putDecision(originKey(host, key), ttl.decisionsMs);
    },
    // tag_ttl 0: every pull asks the origin, and no sibling's mapping is ever fresh.
    tag: async (name, tag) => (ttl.tagMs > 0 ? zone.getTag(tagKey(name, tag)) : undefined),
    shareTag: (name, tag, mapping) => {
      if (ttl.tagMs > 0) void zone.putTag(tagKey(name, tag), mapping, ttl.tagMs);
    },
    hasMember: (name, digest) => zone.hasMember(originKey(host, name), digest),
    shareMembers: (name, digests) => {
      if (digests.length > 0) void zone.addMembers(originKey(host, name), digests, ttl.membersMs);
    },
  };
}

/** Membership that also tells the zone what the origin confirmed here. */
export interface ZoneMembership extends RepositoryMembership {
  /**
   * Whether a sibling saw the origin confirm that `repo` holds `digest`; if so it is
   * remembered here as if this edge had asked (and not shared again, so the sibling's
   * fact keeps its TTL in the zone).
   */
  learntInZone(digest: string, repo: string): Promise<boolean>;
}

export function zoneMembership(local: RepositoryMembership, facts: SharedMembers): ZoneMembership {
  return {
    has: (digest, repo) => local.has(digest, repo),
    wasRemoved: (digest, repo) => local.wasRemoved(digest, repo),
    remove: (repo, digests) => local.remove(repo, digests),
    add: (repo, digests) => {
      const list = [...digests];
      facts.shareMembers(repo, list);
      return local.add(repo, list);
    },
    learntInZone: async (digest, repo) => {
      // A DELETE accepted here is newer than what a sibling may have seen.
      if (local.wasRemoved(digest, repo) || !(await facts.hasMember(repo, digest))) return false;
      await local.add(repo, [digest]);
      return true;
    },
  };
}
