/**
 * The one door of an origin's reads, passed before any service runs: the mode's client
 * check (the Authorizer), then repository membership. Content addressing shares the
 * bytes across repositories, so content the edge holds (or is filling) under one
 * repository is served under another only once the upstream confirms that repository
 * holds it; what the gate confirms is remembered in the origin's membership, and told to
 * the zone's other replicas, whose confirmations it takes before asking the upstream.
 */
import type { BlobCache } from '../cache/blob-cache.js';
import type { LocalRegistry } from '../cache/local-registry.js';
import type { Digest } from '../oci/grammar.js';
import { accepts, parseAccept } from '../oci/media-types.js';
import type { Reference } from '../oci/request.js';
import { unlessAbsent } from '../reads/registry-reader.js';
import type { RemoteRegistry } from '../upstream/remote-registry.js';
import type { ZoneMembership } from '../zone/shared-facts.js';
import { asClient } from '../upstream/upstream-auth.js';
import type { Authorizer, AuthMode } from './authorizer.js';

/** A read as the router parsed it; `accept` is the client's Accept header as sent. */
export type GatedRead =
  | { readonly route: 'blob'; readonly name: string; readonly digest: Digest }
  | { readonly route: 'manifest'; readonly name: string; readonly reference: Reference; readonly accept: string | string[] | undefined };

export interface GateParts {
  readonly authorizer: Authorizer;
  /** The blobs the edge holds or is filling. */
  readonly blobs: BlobCache;
  readonly local: LocalRegistry;
  /** The origin, asked with the mode's credentials. */
  readonly remote: RemoteRegistry;
  readonly membership: ZoneMembership;
  /** The repository the fill of `digest` asks the upstream under, until the upstream has answered. */
  readonly fillingUnder: (digest: string) => string | undefined;
}

export class Gate {
  readonly mode: AuthMode;
  private readonly parts: GateParts;
  /** The origin asked with the client's own credentials, whatever the mode (upstream-check). */
  private readonly remoteAsClient: RemoteRegistry;

  constructor(parts: GateParts) {
    this.parts = parts;
    this.mode = parts.authorizer.mode;
    this.remoteAsClient = parts.remote.withCredentials((_scope, authorization) => asClient(authorization));
  }

  /** GET /v2/: throws the error the client must see unless it may talk to the edge at all; else resolves with who the client is, when known. */
  base(authorization: string | undefined, base: string): Promise<string | undefined> {
    return this.parts.authorizer.base(authorization, base);
  }

  /**
   * Throws the error the client must see unless it may read this under `read.name`;
   * else resolves with who the client is, when the mode knows (Authorizer.pull). A cached hit in public mode awaits no more than the client check: membership is a
   * synchronous lookup until something must be confirmed upstream.
   */
  admit(read: GatedRead, authorization: string | undefined, base: string): Promise<string | undefined> {
    return read.route === 'blob' ? this.admitBlob(read.name, read.digest, authorization, base) : this.admitManifest(read.name, read.reference, read.accept, authorization, base);
  }

  private async admitBlob(name: string, digest: Digest, authorization: string | undefined, base: string): Promise<string | undefined> {
    const who = await this.parts.authorizer.pull(name, authorization, base, () => this.confirmBlob(this.remoteAsClient, name, digest, authorization));
    if (this.heldElsewhere(name, digest) && !(await this.parts.membership.learntInZone(digest.value, name))) await this.confirmBlob(this.parts.remote, name, digest, authorization);
    return who;
  }

  /** The edge holds (or is filling) the blob, not yet known under `name`. */
  private heldElsewhere(name: string, digest: Digest): boolean {
    const { membership, blobs, fillingUnder } = this.parts;
    if (membership.has(digest.value, name)) return false;
    // A follower under the leader's own name: the leader's answer is the confirmation (a
    // refusal fails the fill, and the follower then asks on its own).
    if (fillingUnder(digest.value) === name) return false;
    return blobs.store.has(digest) || blobs.inflightFill(digest) !== undefined;
  }

  private admitManifest(name: string, reference: Reference, accept: string | string[] | undefined, authorization: string | undefined, base: string): Promise<string | undefined> {
    const pull = this.parts.authorizer.pull(name, authorization, base, () => this.remoteAsClient.statManifest(name, reference.kind === 'tag' ? reference.tag : reference.digest.value, authorization));
    // By tag, membership is part of the mapping's freshness: the manifest service revalidates it.
    if (reference.kind === 'tag') return pull;
    const { digest } = reference;
    return pull.then(async (who) => {
      if (!this.parts.membership.has(digest.value, name)) await this.manifestMember(name, digest, accept, authorization);
      return who;
    });
  }

  /** A HEAD upstream: on 200 the repository holds the blob (remembered); otherwise the refusal is thrown. */
  private async confirmBlob(remote: RemoteRegistry, name: string, digest: Digest, authorization: string | undefined): Promise<void> {
    await remote.statBlob(name, digest, authorization);
    await this.parts.membership.add(name, [digest.value]);
  }

  /** A stored manifest the client accepts, not yet known in this repository: the upstream's HEAD confirms it. */
  private async manifestMember(name: string, digest: Digest, accept: string | string[] | undefined, authorization: string | undefined): Promise<void> {
    const stored = await unlessAbsent(this.parts.local.getManifest(name, digest));
    // Not stored: the fill asks the upstream under this name. Not accepted: the client's own request goes to the upstream.
    if (!stored || !accepts(parseAccept(accept), stored.mediaType) || (await this.parts.membership.learntInZone(digest.value, name))) return;
    await this.parts.remote.statManifest(name, digest.value, authorization);
    await this.parts.membership.add(name, [digest.value]);
  }
}
