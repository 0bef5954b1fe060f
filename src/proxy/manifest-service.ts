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
 * asked about again before it is served, and never served stale.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Logger } from '../log/logger.js';
import type { ManifestStoreView, StoredManifest, TagMapping } from '../cache/manifest-store.js';
import type { Metrics } from '../metrics/metrics.js';
import { RegistryError } from '../oci/errors.js';
import { parseDigest, type Digest } from '../oci/grammar.js';
import { ALL_MANIFEST_TYPES, accepts, sniffMediaType } from '../oci/media-types.js';
import type { Reference } from '../oci/request.js';
import type { UpstreamClient, UpstreamResponse } from '../upstream/client.js';
import { UpstreamAnswer, refusalOfHead } from './upstream-answer.js';
import type { AuthMode } from '../auth/authorizer.js';
import { referencedDigests, type RepositoryMembership } from '../cache/membership.js';
import { asClient, pullScope, upstreamAuth } from './upstream-auth.js';

export type ManifestSource = 'hit' | 'miss' | 'revalidated' | 'stale';

/** 'pass': the client's own request goes to the upstream, whose answer it gets as it comes. */
export type ManifestResult = { readonly kind: 'stored'; readonly manifest: StoredManifest; readonly source: ManifestSource } | { readonly kind: 'pass' };

const PASS: ManifestResult = { kind: 'pass' };

/** Signed schema1 manifests: their Docker-Content-Digest covers the payload only, so their bytes cannot be verified and are never cached. */
const SCHEMA1 = new Set(['application/vnd.docker.distribution.manifest.v1+prettyjws', 'application/vnd.docker.distribution.manifest.v1+json']);

export interface ManifestRequest {
  readonly name: string;
  readonly reference: Reference;
  /** Media types the client accepts; undefined means any. */
  readonly accepted: Set<string> | undefined;
  /** The client's Accept header as sent, for a by-digest miss, so the upstream negotiates as it would for the client. */
  readonly acceptHeader: string | undefined;
  readonly authorization: string | undefined;
}

export interface ManifestPolicy {
  readonly tagTtlMs: number;
  readonly maxStaleMs: number;
  /** Deadline of a revalidation that has a copy within maxStale to fall back on. */
  readonly revalidateTimeoutMs: number;
  readonly maxBytes: number;
  readonly mode: AuthMode;
  readonly membership: RepositoryMembership;
  /** The origin's host, for the metrics' origin label. */
  readonly origin: string;
}

export class ManifestService {
  private readonly store: ManifestStoreView;
  private readonly upstream: UpstreamClient;
  private readonly policy: ManifestPolicy;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly now: () => number;
  /** Remote resolutions in flight, so a burst for one tag makes one upstream round trip. */
  private readonly inflight = new Map<string, Promise<ManifestResult>>();
  /** `<name>:<tag>` whose last revalidation the upstream failed (unreachable, 5xx, 429, no answer in time). */
  private readonly failing = new LRUCache<string, true>({ max: 10_000 });

  constructor(store: ManifestStoreView, upstream: UpstreamClient, policy: ManifestPolicy, metrics: Metrics, log: Logger, now: () => number = Date.now) {
    this.store = store;
    this.upstream = upstream;
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
    await this.store.putTag(push.name, push.tag, { digest: digest.value, mediaType, confirmedAt: this.now() });
  }

  /** Asks the upstream, with the client's credentials, whether it may read this manifest; throws the refusal. */
  async checkAccess(name: string, reference: Reference, authorization: string | undefined): Promise<void> {
    const ref = reference.kind === 'tag' ? reference.tag : reference.digest.value;
    const res = await this.upstream.request({
      method: 'HEAD',
      path: `/v2/${name}/manifests/${ref}`,
      headers: { accept: ALL_MANIFEST_TYPES },
      auth: asClient(authorization),
    });
    if (res.status !== 200) throw await refusalOfHead(res, 'MANIFEST_UNKNOWN');
    await res.body.dump();
  }

  private async byDigest(req: ManifestRequest, digest: Digest): Promise<ManifestResult> {
    const stored = await this.store.get(digest);
    if (stored && !accepts(req.accepted, stored.mediaType)) return PASS;
    if (stored) {
      if (!this.policy.membership.has(digest.value, req.name)) await this.confirmMember(req, digest);
      return { kind: 'stored', manifest: stored, source: 'hit' };
    }
    // Bytes that hash to the digest asked for are the canonical manifest whatever Accept fetched them.
    return this.coalesce(`${req.name}\n${digest.value}\n${req.acceptHeader ?? ''}\n${req.authorization ?? ''}`, async () => {
      const res = await this.fetch(req, 'GET', digest.value, req.acceptHeader ?? ALL_MANIFEST_TYPES);
      return { kind: 'stored', manifest: await this.storeResponse(res, req.name, digest), source: 'miss' };
    });
  }

  /** A manifest cached for one repository is served under another only if the upstream has it there. */
  private async confirmMember(req: ManifestRequest, digest: Digest): Promise<void> {
    const res = await this.fetch(req, 'HEAD', digest.value, ALL_MANIFEST_TYPES);
    if (res.status !== 200) throw await refusalOfHead(res, 'MANIFEST_UNKNOWN');
    await res.body.dump();
    await this.policy.membership.add(req.name, [digest.value]);
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
    const mapping = await this.store.getTag(req.name, tag);
    const digest = mapping ? parseDigest(mapping.digest) : undefined;
    const stored = digest ? await this.store.get(digest) : undefined;
    if (!mapping || !stored) return this.coalesce(key, () => this.fetchTag(req, tag));
    // Not a member (deleted through the edge, or a membership line lost): asked again before it is served.
    const { membership } = this.policy;
    if (membership.has(mapping.digest, req.name) && this.now() - mapping.confirmedAt < this.policy.tagTtlMs) return { kind: 'stored', manifest: stored, source: 'hit' };
    const deleted = membership.wasRemoved(mapping.digest, req.name);
    const revalidation = (): Promise<ManifestResult> => this.coalesce(key, () => this.revalidate(req, tag, mapping, stored, deleted));
    if (!deleted && this.failing.has(`${req.name}:${tag}`)) {
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
    let res: UpstreamResponse;
    try {
      res = await this.fetch(req, 'HEAD', tag, ALL_MANIFEST_TYPES, servable ? this.policy.revalidateTimeoutMs : undefined);
    } catch (err) {
      return this.stale(req, tag, mapping, stored, deleted, err);
    }
    if (res.status >= 500 || res.status === 429) {
      await res.body.dump();
      return this.stale(req, tag, mapping, stored, deleted, new Error(`upstream answered ${res.status}`));
    }
    this.failing.delete(`${req.name}:${tag}`);
    if (res.status === 404) {
      await res.body.dump();
      await this.store.deleteTag(req.name, tag);
      throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown', { tag });
    }
    if (res.status !== 200) throw await refusalOfHead(res, 'MANIFEST_UNKNOWN');
    await res.body.dump();
    const current = headerValue(res.headers['docker-content-digest']);
    if (current === mapping.digest) {
      await this.policy.membership.add(req.name, [mapping.digest]);
      await this.store.putTag(req.name, tag, { ...mapping, confirmedAt: this.now() });
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
    this.failing.set(`${req.name}:${tag}`, true);
    this.metrics.staleServed.inc();
    this.log.warn({ repository: req.name, tag, digest: mapping.digest, ageSeconds: Math.round(age / 1000), reason }, 'serving stale tag: upstream unavailable');
    return { kind: 'stored', manifest: stored, source: 'stale' };
  }

  private async fetchTag(req: ManifestRequest, tag: string): Promise<ManifestResult> {
    const res = await this.fetch(req, 'GET', tag, ALL_MANIFEST_TYPES);
    if (res.status === 200 && SCHEMA1.has(mediaTypeOf(res) ?? '')) {
      // A tag pushed as schema1: the client's own request gets it byte for byte.
      await res.body.dump();
      return PASS;
    }
    const manifest = await this.storeResponse(res, req.name, undefined);
    await this.store.putTag(req.name, tag, { digest: manifest.digest, mediaType: manifest.mediaType, confirmedAt: this.now() });
    return { kind: 'stored', manifest, source: 'miss' };
  }

  /** The repository no longer holds `digest` (the upstream accepted its DELETE): nothing of it is served under `name` before the upstream confirms it again. */
  forgetDeleted(name: string, digest: Digest): Promise<void> {
    return this.policy.membership.remove(name, [digest.value]);
  }

  private async fetch(req: ManifestRequest, method: 'GET' | 'HEAD', reference: string, accept: string, deadlineMs?: number): Promise<UpstreamResponse> {
    return this.upstream.request({
      method,
      path: `/v2/${req.name}/manifests/${reference}`,
      headers: { accept },
      auth: upstreamAuth(this.policy.mode, pullScope(req.name), req.authorization),
      deadlineMs,
    });
  }

  /** Reads a manifest answer, checks its bytes against the digest it claims, and stores it. */
  private async storeResponse(res: UpstreamResponse, name: string, expected: Digest | undefined): Promise<StoredManifest> {
    if (res.status !== 200) throw await UpstreamAnswer.from(res);
    const declared = Number(res.headers['content-length']);
    if (declared > this.policy.maxBytes) {
      res.body.destroy();
      throw new RegistryError('MANIFEST_INVALID', `upstream manifest of ${declared} bytes exceeds cache.manifest_max_bytes`, undefined, 502);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > this.policy.maxBytes) {
        res.body.destroy();
        throw new RegistryError('MANIFEST_INVALID', 'upstream manifest exceeds cache.manifest_max_bytes', undefined, 502);
      }
      chunks.push(chunk);
    }
    const bytes = Buffer.concat(chunks);
    const claimed = parseDigest(headerValue(res.headers['docker-content-digest']) ?? '');
    const algorithm = expected?.algorithm ?? claimed?.algorithm ?? 'sha256';
    const actual = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
    const verified = parseDigest(actual);
    const mismatch = [expected, claimed].find((d) => d !== undefined && d.value !== actual);
    if (!verified || mismatch) {
      this.metrics.digestMismatches.inc({ kind: 'manifest' });
      throw new RegistryError('UNAVAILABLE', 'upstream manifest does not match its digest; not cached', { expected: mismatch?.value, actual }, 502);
    }
    const mediaType = mediaTypeOf(res) || sniffMediaType(bytes) || 'application/octet-stream';
    await this.policy.membership.add(name, [actual, ...referencedDigests(bytes)]);
    return this.store.put(verified, mediaType, bytes);
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

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function mediaTypeOf(res: UpstreamResponse): string | undefined {
  return headerValue(res.headers['content-type'])?.split(';')[0]?.trim();
}

