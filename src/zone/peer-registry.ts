/**
 * Another replica of the zone as a RegistryReader, through its peer listener
 * (peer-server.ts): blobs it holds or is filling, manifests by digest. It holds no tags
 * (they are an origin's, and a peer knows no repository): resolving one rejects as absent.
 * A peer that cannot be reached before its answer's headers rejects PeerUnreachable, so a
 * caller tells a dead lease holder (take its lease over) from a peer without the blob (404).
 */
import { createHash } from 'node:crypto';
import { request, type Dispatcher } from 'undici';
import { RegistryError } from '../oci/errors.js';
import type { Digest } from '../oci/grammar.js';
import type { ByteRange, ManifestBytes, RegistryReader, ResolvedTag } from '../reads/registry-reader.js';
import type { RemoteBlob } from '../upstream/remote-registry.js';

/** The peer did not answer: refused, reset or silent past zone.peer.timeout before its headers. */
export class PeerUnreachable extends Error {
  readonly peer: string;
  constructor(peer: string, cause: unknown) {
    super(`zone peer ${peer} unreachable: ${(cause as Error | undefined)?.message ?? String(cause)}`, { cause });
    this.name = 'PeerUnreachable';
    this.peer = peer;
  }
}

export interface PeerOptions {
  /** zone.secret, sent as a bearer token. */
  readonly secret: string;
  /** zone.peer.timeout: connect and response headers together. */
  readonly timeoutMs: number;
  /** cache.manifest_max_bytes: a larger manifest is refused, not read. */
  readonly maxManifestBytes: number;
  /** Shared by every peer (undici keeps a pool per origin). */
  readonly dispatcher: Dispatcher;
}

export class PeerRegistry implements RegistryReader<RemoteBlob> {
  /** The peer's zone.peer.url. */
  readonly url: string;
  private readonly opts: PeerOptions;

  constructor(url: string, opts: PeerOptions) {
    this.url = url.replace(/\/+$/, '');
    this.opts = opts;
  }

  async statBlob(_name: string, digest: Digest): Promise<number | undefined> {
    const res = await this.ask('HEAD', `blobs/${digest.value}`, undefined);
    await res.body.dump();
    if (res.statusCode !== 200) throw this.refusal(res.statusCode, 'BLOB_UNKNOWN', digest);
    return lengthOf(res);
  }

  /** Resolves with the body unread; no await may come between this and reading it (nodejs/undici#5360). */
  async openBlob(_name: string, digest: Digest, _authorization: string | undefined, range?: ByteRange): Promise<RemoteBlob> {
    const res = await this.ask('GET', `blobs/${digest.value}`, range ? `bytes=${range.start}-${range.end - 1}` : undefined);
    if (res.statusCode !== (range ? 206 : 200)) {
      await res.body.dump();
      throw this.refusal(res.statusCode, 'BLOB_UNKNOWN', digest);
    }
    return { body: res.body, size: lengthOf(res) };
  }

  async resolveTag(_name: string, tag: string): Promise<ResolvedTag> {
    throw new RegistryError('MANIFEST_UNKNOWN', 'zone peers hold no tags', { tag });
  }

  async getManifest(_name: string, digest: Digest): Promise<ManifestBytes> {
    const res = await this.ask('GET', `manifests/${digest.value}`, undefined);
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw this.refusal(res.statusCode, 'MANIFEST_UNKNOWN', digest);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > this.opts.maxManifestBytes) {
        res.body.destroy();
        throw new RegistryError('MANIFEST_INVALID', `zone peer ${this.url} sent a manifest over cache.manifest_max_bytes`, { digest: digest.value }, 502);
      }
      chunks.push(chunk);
    }
    const bytes = Buffer.concat(chunks);
    const actual = createHash(digest.algorithm).update(bytes).digest('hex');
    if (actual !== digest.hex) {
      throw new RegistryError('UNAVAILABLE', `zone peer ${this.url} sent a manifest that does not match its digest`, { digest: digest.value }, 502);
    }
    const mediaType = headerValue(res.headers['content-type'])?.split(';')[0]?.trim() || 'application/octet-stream';
    return { digest: digest.value, mediaType, bytes };
  }

  /** One request; a failure before the headers (or past zone.peer.timeout) is PeerUnreachable. */
  private async ask(method: 'GET' | 'HEAD', path: string, range: string | undefined): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.opts.secret}` };
    if (range) headers.range = range;
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new Error(`no answer within zone.peer.timeout (${this.opts.timeoutMs} ms)`)), this.opts.timeoutMs);
    try {
      return await request(`${this.url}/zone/v1/${path}`, { method, headers, dispatcher: this.opts.dispatcher, signal: deadline.signal });
    } catch (err) {
      throw new PeerUnreachable(this.url, deadline.signal.aborted ? deadline.signal.reason : err);
    } finally {
      clearTimeout(timer);
    }
  }

  /** 404 is absence (the peer neither holds nor fills it); anything else a refusal that is not. */
  private refusal(status: number, absent: 'BLOB_UNKNOWN' | 'MANIFEST_UNKNOWN', digest: Digest): RegistryError {
    if (status === 404) return new RegistryError(absent, `zone peer ${this.url} does not hold it`, { digest: digest.value });
    const why = status === 401 ? 'refused this replica\'s zone.secret' : `answered ${status}`;
    return new RegistryError('UNAVAILABLE', `zone peer ${this.url} ${why}`, { digest: digest.value, status }, 502);
  }
}

function lengthOf(res: Dispatcher.ResponseData): number | undefined {
  const length = Number(headerValue(res.headers['content-length']) ?? NaN);
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
