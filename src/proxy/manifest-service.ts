/**
 * Manifests. By digest: local first, kept forever. By tag: the tag -> digest mapping
 * is served for `tagTtl`, then revalidated with a HEAD (which Docker Hub does not count
 * as a pull); when the upstream is unreachable or failing, the last known mapping is
 * served for up to `maxStale`. The tag mapping is always the canonical manifest (asked
 * for with every manifest type, as it was pushed), whatever the client accepts: a client
 * whose Accept does not admit the canonical type gets the upstream's own answer to its
 * own Accept, passed through and cached nowhere (registry:2's schema1 rewrite, or its
 * one-platform manifest for a list, must never become the tag's mapping for everyone).
 * A mapping whose digest the repository no longer holds (a DELETE through the edge) is
 * asked about again before it is served, and never served stale. In a zone of replicas
 * a mapping one of them confirmed within `tagTtl` is used by the others without a HEAD,
 * and each confirmation here is shared (never a stale-served one).
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { LocalRegistry } from '../cache/local-registry.js';
import type { Logger } from '../log/logger.js';
import type { ManifestStoreView, StoredManifest, TagMapping } from '../cache/manifest-store.js';
import type { Metrics } from '../metrics/metrics.js';
import { RegistryError } from '../oci/errors.js';
import { parseDigest, type Digest } from '../oci/grammar.js';
import { accepts } from '../oci/media-types.js';
import type { Reference } from '../oci/request.js';
import { unlessAbsent, type ManifestBytes, type ResolvedTag } from '../reads/registry-reader.js';
import type { UpstreamTrace } from '../upstream/client.js';
import type { RemoteRegistry } from '../upstream/remote-registry.js';
import { UpstreamAnswer } from '../upstream/upstream-answer.js';
import { referencedDigests, type RepositoryMembership } from '../cache/membership.js';
import type { SharedTags } from '../zone/shared-facts.js';

/** The key of a tag in `failing`: the upstream's state is the repository's, not one client's. */
const failingKey = (name: string, tag: string): string => `${name}:${tag}`;

/** 'shared': a mapping another replica of the zone confirmed within tag_ttl. */
export type ManifestSource = 'hit' | 'miss' | 'revalidated' | 'stale' | 'shared';

/** 'pass': the client's own request goes to the upstream, whose answer it gets as it comes. */
export type ManifestResult = { readonly kind: 'stored'; readonly manifest: StoredManifest; readonly source: ManifestSource } | { readonly kind: 'pass' };

const PASS: ManifestResult = { kind: 'pass' };

export interface ManifestRequest {
  readonly name: string;
  readonly reference: Reference;
  /** Media types the client accepts; undefined means any. */
  readonly accepted: Set<string> | undefined;
  /** The client's Accept header as sent, for a by-digest miss, so the upstream negotiates as it would for the client. */
  readonly acceptHeader: string | undefined;
  readonly authorization: string | undefined;
  /** The client request this read is for, carried to the upstream requests it makes (a coalesced read carries the first one's). */
  readonly trace?: UpstreamTrace | undefined;
}

export interface ManifestPolicy {
  readonly tagTtlMs: number;
  readonly maxStaleMs: number;
  /** Deadline of a revalidation that has a copy within maxStale to fall back on. */
  readonly revalidateTimeoutMs: number;
  readonly membership: RepositoryMembership;
  /** Tag mappings the zone's replicas confirmed with the origin. */
  readonly zone: SharedTags;
  /** The origin's host, for the metrics' origin label. */
  readonly origin: string;
}

export class ManifestService {
  /** Written here (what the policy keeps); read through `local`. */
  private readonly store: ManifestStoreView;
  private readonly local: LocalRegistry;
  private readonly remote: RemoteRegistry;
  private readonly policy: ManifestPolicy;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly now: () => number;
  /** Remote resolutions in flight, so a burst for one tag makes one upstream round trip. */
  private readonly inflight = new Map<string, Promise<ManifestResult>>();
  /** `<name>:<tag>` whose last revalidation the upstream failed (unreachable, 5xx, 429, no answer in time). */
  private readonly failing = new LRUCache<string, true>({ max: 10_000 });

  /** `local` reads the same `store`. */
  constructor(store: ManifestStoreView, local: LocalRegistry, remote: RemoteRegistry, policy: ManifestPolicy, metrics: Metrics, log: Logger, now: () => number = Date.now) {
    this.store = store;
    this.local = local;
    this.remote = remote;
    this.policy = policy;
    this.metrics = metrics;
    this.log = log;
    this.now = now;
  }

  async get(req: ManifestRequest): Promise<ManifestResult> {
    const result = req.reference.kind === 'digest' ? await this.byDigest(req, req.reference.digest) : await this.byTag(req, req.reference.tag);
    this.metrics.cacheRequests.inc({ kind: 'manifest', result: result.kind === 'stored' ? result.source : 'pass', origin: this.policy.origin });
    return result;
  }

  /**
   * A manifest pushed through the edge under a tag: stored and mapped when its bytes
   * match the digest the upstream gave; otherwise the old mapping is dropped, so the
   * next pull asks the upstream.
   */
  async recordPush(push: { name: string; tag: string; accepted: boolean; digest: string | undefined; mediaType: string | undefined; bytes: Buffer | undefined }): Promise<void> {
    if (!push.accepted) return;
    const digest = parseDigest(push.digest ?? '');
    const { bytes, mediaType } = push;
    if (!digest || !bytes || !mediaType || createHash(digest.algorithm).update(bytes).digest('hex') !== digest.hex) {
      await this.store.deleteTag(push.name, push.tag);
      return;
    }
    await this.store.put(digest, mediaType, bytes);
    await this.policy.membership.add(push.name, [digest.value, ...referencedDigests(bytes)]);
    await this.putTag(push.name, push.tag, { digest: digest.value, mediaType, confirmedAt: this.now() });
  }

  private async byDigest(req: ManifestRequest, digest: Digest): Promise<ManifestResult> {
    const stored = await unlessAbsent(this.local.getManifest(req.name, digest));
    if (stored && !accepts(req.accepted, stored.mediaType)) return PASS;
    // The gate has confirmed the repository holds a stored manifest before it gets here.
    if (stored) return { kind: 'stored', manifest: stored, source: 'hit' };
    // Bytes that hash to the digest asked for are the canonical manifest whatever Accept fetched them.
    return this.coalesce(`${req.name}\n${digest.value}\n${req.acceptHeader ?? ''}\n${req.authorization ?? ''}`, async () => {
      const fetched = await this.remote.getManifest(req.name, digest, req.authorization, req.acceptHeader, req.trace);
      return { kind: 'stored', manifest: await this.keep(req.name, fetched), source: 'miss' };
    });
  }

  private async byTag(req: ManifestRequest, tag: string): Promise<ManifestResult> {
    const canonical = await this.resolveTag(req, tag);
    if (canonical.kind === 'stored' && !accepts(req.accepted, canonical.manifest.mediaType)) return PASS;
    return canonical;
  }

  /** The tag's canonical manifest: the mapping while fresh, else the upstream's answer to every manifest type. */
  private async resolveTag(req: ManifestRequest, tag: string): Promise<ManifestResult> {
    // Not keyed by Accept: every client shares the one canonical resolution.
    const key = `${req.name}\n${tag}\n${req.authorization ?? ''}`;
    const mapping = await unlessAbsent(this.local.resolveTag(req.name, tag));
    const digest = mapping ? parseDigest(mapping.digest) : undefined;
    const stored = digest ? await unlessAbsent(this.local.getManifest(req.name, digest)) : undefined;
    const fresh = mapping !== undefined && this.now() - mapping.confirmedAt < this.policy.tagTtlMs;
    const shared = fresh ? undefined : await this.fromZone(req.name, tag, mapping);
    if (shared) return shared;
    if (!mapping || !stored) return this.coalesce(key, () => this.fetchTag(req, tag));
    // Not a member (deleted through the edge, or a membership line lost): asked again before it is served.
    const { membership } = this.policy;
    if (fresh && membership.has(mapping.digest, req.name)) return { kind: 'stored', manifest: stored, source: 'hit' };
    const deleted = membership.wasRemoved(mapping.digest, req.name);
    const revalidation = (): Promise<ManifestResult> => this.coalesce(key, () => this.revalidate(req, tag, mapping, stored, deleted));
    if (!deleted && this.failing.has(failingKey(req.name, tag))) {
      // The centre failed this tag's last revalidation: the stale copy goes out at once and one
      // revalidation runs behind it, instead of every pull waiting cache.revalidate_timeout again.
      revalidation().catch(() => undefined);
      return this.stale(req, tag, mapping, stored, deleted, new Error('the last revalidation failed; revalidating in the background'));
    }
    return revalidation();
  }

  /** `deleted`: the upstream accepted a DELETE of the mapped digest in this repository (through the edge): never served stale then. */
  private async revalidate(req: ManifestRequest, tag: string, mapping: TagMapping, stored: StoredManifest, deleted: boolean): Promise<ManifestResult> {
    // A copy that may still be served is not held back for the whole upstream.headers_timeout.
    const servable = !deleted && this.now() - mapping.confirmedAt <= this.policy.maxStaleMs;
    let current: ResolvedTag;
    try {
      current = await this.remote.resolveTag(req.name, tag, req.authorization, servable ? this.policy.revalidateTimeoutMs : undefined, req.trace);
    } catch (err) {
      // Only an unreachable or failing upstream leaves the stale copy servable: a refusal or an unknown tag is its answer.
      const unknown = err instanceof RegistryError && err.status === 404;
      if (!unknown && !(err instanceof UpstreamAnswer)) return this.stale(req, tag, mapping, stored, deleted, err);
      this.failing.delete(failingKey(req.name, tag));
      if (unknown) await this.store.deleteTag(req.name, tag);
      throw err;
    }
    this.failing.delete(failingKey(req.name, tag));
    if (current.digest === mapping.digest) {
      await this.policy.membership.add(req.name, [mapping.digest]);
      await this.putTag(req.name, tag, { ...mapping, confirmedAt: this.now() });
      return { kind: 'stored', manifest: stored, source: 'revalidated' };
    }
    return this.fetchTag(req, tag);
  }

  private stale(req: ManifestRequest, tag: string, mapping: TagMapping, stored: StoredManifest, deleted: boolean, cause: unknown): ManifestResult {
    const age = this.now() - mapping.confirmedAt;
    const reason = (cause as Error).message;
    if (deleted) {
      throw new RegistryError('UNAVAILABLE', 'upstream unavailable and the cached tag names a manifest deleted from the repository', { tag });
    }
    if (age > this.policy.maxStaleMs) {
      throw new RegistryError('UNAVAILABLE', 'upstream unavailable and the cached tag is older than cache.max_stale', { tag });
    }
    this.failing.set(failingKey(req.name, tag), true);
    this.metrics.staleServed.inc();
    this.log.warn({ repository: req.name, tag, digest: mapping.digest, ageSeconds: Math.round(age / 1000), reason }, 'serving stale tag: upstream unavailable');
    return { kind: 'stored', manifest: stored, source: 'stale' };
  }

  private async fetchTag(req: ManifestRequest, tag: string): Promise<ManifestResult> {
    const fetched = await this.remote.getTagged(req.name, tag, req.authorization, req.trace);
    // A tag pushed as schema1: the client's own request gets it byte for byte.
    if (fetched === 'schema1') return PASS;
    const manifest = await this.keep(req.name, fetched);
    await this.putTag(req.name, tag, { digest: manifest.digest, mediaType: manifest.mediaType, confirmedAt: this.now() });
    return { kind: 'stored', manifest, source: 'miss' };
  }

  /** A mapping the origin has just confirmed: kept, and told to the zone's other replicas. */
  private putTag(name: string, tag: string, mapping: TagMapping): Promise<void> {
    this.policy.zone.shareTag(name, tag, mapping);
    return this.store.putTag(name, tag, mapping);
  }

  /**
   * A sibling's mapping confirmed within tag_ttl and newer than `mine`, served without a
   * HEAD when its manifest is stored here. Kept with the sibling's confirmedAt, so it
   * goes stale when theirs does. A digest deleted here is never taken from the zone.
   */
  private async fromZone(name: string, tag: string, mine: TagMapping | undefined): Promise<ManifestResult | undefined> {
    const theirs = await this.policy.zone.tag(name, tag);
    if (!theirs || this.now() - theirs.confirmedAt >= this.policy.tagTtlMs || (mine && mine.confirmedAt >= theirs.confirmedAt)) return undefined;
    const digest = parseDigest(theirs.digest);
    if (!digest || this.policy.membership.wasRemoved(theirs.digest, name)) return undefined;
    const stored = await unlessAbsent(this.local.getManifest(name, digest));
    if (!stored) return undefined;
    await this.policy.membership.add(name, [theirs.digest]);
    await this.store.putTag(name, tag, theirs);
    this.failing.delete(failingKey(name, tag));
    return { kind: 'stored', manifest: stored, source: 'shared' };
  }

  /** The repository no longer holds `digest` (the upstream accepted its DELETE): nothing of it is served under `name` before the upstream confirms it again. */
  forgetDeleted(name: string, digest: Digest): Promise<void> {
    return this.policy.membership.remove(name, [digest.value]);
  }

  /** Stores verified bytes from the origin; the repository holds them and what they reference. */
  private async keep(name: string, fetched: ManifestBytes): Promise<StoredManifest> {
    const digest = parseDigest(fetched.digest);
    if (!digest) throw new RegistryError('UNAVAILABLE', 'upstream manifest digest unusable', { digest: fetched.digest }, 502);
    await this.policy.membership.add(name, [fetched.digest, ...referencedDigests(fetched.bytes)]);
    return this.store.put(digest, fetched.mediaType, fetched.bytes);
  }

  /** `key` holds the client's credentials: one client's answer never serves another's request. */
  private coalesce(key: string, work: () => Promise<ManifestResult>): Promise<ManifestResult> {
    const running = this.inflight.get(key);
    if (running) return running;
    const promise = work().finally(() => this.inflight.delete(key));
    this.inflight.set(key, promise);
    return promise;
  }
}
