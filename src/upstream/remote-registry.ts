/**
 * A remote origin as a RegistryReader: the registry API's URLs, the credentials each
 * request carries (scopes), and the mapping of its statuses onto what the edge passes
 * on (an UpstreamAnswer as it came, a RegistryError, OriginUnavailable). Nothing is
 * cached here: what a caller keeps is its own policy.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { RegistryError } from '../oci/errors.js';
import { parseDigest, type Digest } from '../oci/grammar.js';
import { ALL_MANIFEST_TYPES, sniffMediaType } from '../oci/media-types.js';
import type { ByteRange, ManifestBytes, RegistryReader, ResolvedTag } from '../reads/registry-reader.js';
import type { UpstreamAuth, UpstreamClient, UpstreamResponse, UpstreamTrace } from './client.js';
import { UpstreamAnswer, refusalOfHead } from './upstream-answer.js';
import { pullScope } from './upstream-auth.js';

/** An origin's blob body, unread: the caller reads it at once (nodejs/undici#5360). */
export interface RemoteBlob {
  readonly body: Readable;
  readonly size: number | undefined;
}

/** The origin failed (5xx, 429): a caller with a copy to fall back on may serve it. */
export class OriginUnavailable extends Error {
  constructor(status: number) {
    super(`upstream answered ${status}`);
    this.name = 'OriginUnavailable';
  }
}

/** Whose credentials a request carries for a token `scope`, given the client's Authorization. */
export type Credentialer = (scope: string, authorization: string | undefined) => UpstreamAuth;

export interface RemoteOptions {
  readonly credentials: Credentialer;
  /** cache.manifest_max_bytes: a larger manifest is refused, not read. */
  readonly maxManifestBytes: number;
  readonly onDigestMismatch: () => void;
}

/** Signed schema1 manifests: their Docker-Content-Digest covers the payload only, so their bytes cannot be verified. */
const SCHEMA1 = new Set(['application/vnd.docker.distribution.manifest.v1+prettyjws', 'application/vnd.docker.distribution.manifest.v1+json']);

export class RemoteRegistry implements RegistryReader<RemoteBlob> {
  private readonly upstream: UpstreamClient;
  private readonly opts: RemoteOptions;

  constructor(upstream: UpstreamClient, opts: RemoteOptions) {
    this.upstream = upstream;
    this.opts = opts;
  }

  /** The same origin, asked with the client's own credentials whatever the mode (access checks). */
  withCredentials(credentials: Credentialer): RemoteRegistry {
    return new RemoteRegistry(this.upstream, { ...this.opts, credentials });
  }

  async statBlob(name: string, digest: Digest, authorization: string | undefined, trace?: UpstreamTrace): Promise<number | undefined> {
    const res = await this.upstream.request({ method: 'HEAD', path: blobPath(name, digest), auth: this.auth(name, authorization), followRedirects: true, trace });
    if (res.status !== 200) throw await refusalOfHead(res, 'BLOB_UNKNOWN');
    await res.body.dump();
    return lengthOf(res);
  }

  /** Resolves with the body unread; no await may come between this and reading it. */
  async openBlob(name: string, digest: Digest, authorization: string | undefined, range?: ByteRange, trace?: UpstreamTrace): Promise<RemoteBlob> {
    const res = await this.upstream.request({
      method: 'GET',
      path: blobPath(name, digest),
      headers: range ? { range: `bytes=${range.start}-${range.end - 1}` } : undefined,
      auth: this.auth(name, authorization),
      followRedirects: true,
      trace,
    });
    if (res.status !== (range ? 206 : 200)) throw await UpstreamAnswer.from(res);
    return { body: res.body, size: lengthOf(res) };
  }

  /** A HEAD: 404 rejects MANIFEST_UNKNOWN, 5xx and 429 OriginUnavailable; `deadlineMs` bounds it when a stale copy waits. */
  async resolveTag(name: string, tag: string, authorization: string | undefined, deadlineMs?: number, trace?: UpstreamTrace): Promise<ResolvedTag> {
    const res = await this.request(name, 'HEAD', tag, ALL_MANIFEST_TYPES, authorization, deadlineMs, trace);
    if (res.status >= 500 || res.status === 429) {
      await res.body.dump();
      throw new OriginUnavailable(res.status);
    }
    if (res.status === 404) {
      await res.body.dump();
      throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown', { tag });
    }
    if (res.status !== 200) throw await refusalOfHead(res, 'MANIFEST_UNKNOWN');
    await res.body.dump();
    return { digest: headerValue(res.headers['docker-content-digest']) };
  }

  /** `accept`: the client's own Accept, so the origin negotiates as it would for the client; the bytes are checked against `digest`. */
  async getManifest(name: string, digest: Digest, authorization: string | undefined, accept: string = ALL_MANIFEST_TYPES, trace?: UpstreamTrace): Promise<ManifestBytes> {
    return this.verified(await this.request(name, 'GET', digest.value, accept, authorization, undefined, trace), digest);
  }

  /** The tag's manifest in one round trip, as pushed; 'schema1' when it cannot be verified (the client's own request gets it then). */
  async getTagged(name: string, tag: string, authorization: string | undefined, trace?: UpstreamTrace): Promise<ManifestBytes | 'schema1'> {
    const res = await this.request(name, 'GET', tag, ALL_MANIFEST_TYPES, authorization, undefined, trace);
    if (res.status === 200 && SCHEMA1.has(mediaTypeOf(res) ?? '')) {
      await res.body.dump();
      return 'schema1';
    }
    return this.verified(res, undefined);
  }

  /** Whether the origin holds the manifest `reference` names under `name`; rejects with its refusal. */
  async statManifest(name: string, reference: string, authorization: string | undefined): Promise<void> {
    const res = await this.request(name, 'HEAD', reference, ALL_MANIFEST_TYPES, authorization);
    if (res.status !== 200) throw await refusalOfHead(res, 'MANIFEST_UNKNOWN');
    await res.body.dump();
  }

  private auth(name: string, authorization: string | undefined): UpstreamAuth {
    return this.opts.credentials(pullScope(name), authorization);
  }

  private request(name: string, method: 'GET' | 'HEAD', reference: string, accept: string, authorization: string | undefined, deadlineMs?: number, trace?: UpstreamTrace): Promise<UpstreamResponse> {
    return this.upstream.request({ method, path: `/v2/${name}/manifests/${reference}`, headers: { accept }, auth: this.auth(name, authorization), deadlineMs, trace });
  }

  /** Reads a manifest answer and checks its bytes against the digest asked for and the one it claims. */
  private async verified(res: UpstreamResponse, expected: Digest | undefined): Promise<ManifestBytes> {
    const { maxManifestBytes } = this.opts;
    if (res.status !== 200) throw await UpstreamAnswer.from(res);
    const declared = Number(res.headers['content-length']);
    if (declared > maxManifestBytes) {
      res.body.destroy();
      throw new RegistryError('MANIFEST_INVALID', `upstream manifest of ${declared} bytes exceeds cache.manifest_max_bytes`, undefined, 502);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxManifestBytes) {
        res.body.destroy();
        throw new RegistryError('MANIFEST_INVALID', 'upstream manifest exceeds cache.manifest_max_bytes', undefined, 502);
      }
      chunks.push(chunk);
    }
    const bytes = Buffer.concat(chunks);
    const claimed = parseDigest(headerValue(res.headers['docker-content-digest']) ?? '');
    const algorithm = expected?.algorithm ?? claimed?.algorithm ?? 'sha256';
    const actual = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
    const mismatch = [expected, claimed].find((d) => d !== undefined && d.value !== actual);
    if (!parseDigest(actual) || mismatch) {
      this.opts.onDigestMismatch();
      throw new RegistryError('UNAVAILABLE', 'upstream manifest does not match its digest; not cached', { expected: mismatch?.value, actual }, 502);
    }
    return { digest: actual, mediaType: mediaTypeOf(res) || sniffMediaType(bytes) || 'application/octet-stream', bytes };
  }
}

const blobPath = (name: string, digest: Digest): string => `/v2/${name}/blobs/${digest.value}`;

function lengthOf(res: UpstreamResponse): number | undefined {
  const length = Number(res.headers['content-length']);
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function mediaTypeOf(res: UpstreamResponse): string | undefined {
  return headerValue(res.headers['content-type'])?.split(';')[0]?.trim();
}
