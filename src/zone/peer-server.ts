/**
 * The peer listener (zone.peer.addr): how the other replicas of the zone read what this
 * one holds or is filling right now, so one fetch from the origin serves the zone.
 * Not an open blob server: every request carries the zone's secret, and only blobs
 * committed here or being filled here are served (a fill is joined as a follower, whose
 * last byte waits for the fill's verification); nothing is ever fetched from the origin
 * for a peer, and no repository is named (who may read is each replica's own gate).
 *
 *   GET|HEAD /zone/v1/blobs/<digest>       Range: bytes=a-b allowed
 *   GET|HEAD /zone/v1/manifests/<digest>
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BlobCache } from '../cache/blob-cache.js';
import type { ManifestStore } from '../cache/manifest-store.js';
import type { Logger } from '../log/logger.js';
import { RegistryError } from '../oci/errors.js';
import { parseDigest, type Digest } from '../oci/grammar.js';
import { parseRange } from '../oci/range.js';
import { fillBody, hitBody, type BlobBody } from '../proxy/blob-service.js';
import { sendError } from '../http/respond.js';

export interface PeerServerParts {
  readonly blobCache: BlobCache;
  readonly manifests: ManifestStore;
  /** zone.secret */
  readonly secret: string;
  readonly onServedBytes: (n: number) => void;
  readonly log: Logger;
}

const ROUTE = /^\/zone\/v1\/(blobs|manifests)\/([^/?]+)$/;

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

/** Whether `authorization` is `Bearer <secret>`, in time that does not depend on where they differ (both sides hashed to equal length). */
export function carriesSecret(authorization: string | undefined, secret: string): boolean {
  const given = /^Bearer (.+)$/.exec(authorization ?? '')?.[1] ?? '';
  return timingSafeEqual(sha256(given), sha256(secret)) && given.length > 0;
}

const notHeld = (digest: Digest, what: 'BLOB_UNKNOWN' | 'MANIFEST_UNKNOWN'): RegistryError => new RegistryError(what, 'this replica neither holds nor is filling it', { digest: digest.value });

export function createPeerHandler(parts: PeerServerParts): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    serve(parts, req, res).catch((err: unknown) => {
      if (!(err instanceof RegistryError)) parts.log.warn({ err, url: req.url, peer: req.socket.remoteAddress }, 'zone peer request failed');
      sendError(res, err, '');
    });
  };
}

async function serve(parts: PeerServerParts, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (!carriesSecret(req.headers.authorization, parts.secret)) {
    parts.log.warn({ peer: req.socket.remoteAddress, url: req.url }, 'zone peer request refused: no or wrong zone.secret');
    throw new RegistryError('UNAUTHORIZED', 'zone peers authenticate with the zone secret');
  }
  const route = ROUTE.exec(req.url ?? '');
  if (!route) throw new RegistryError('NAME_UNKNOWN', 'not a zone peer route', { url: req.url });
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new RegistryError('UNSUPPORTED', 'zone peers only read', { method: req.method });
  const digest = parseDigest(route[2] ?? '');
  if (!digest) throw new RegistryError('DIGEST_INVALID', 'not a digest', { digest: route[2] });
  if (route[1] === 'manifests') return serveManifest(parts, req, res, digest);
  return serveBlob(parts, req, res, digest);
}

async function serveManifest(parts: PeerServerParts, req: IncomingMessage, res: ServerResponse, digest: Digest): Promise<void> {
  const stored = await parts.manifests.get(digest);
  if (!stored) throw notHeld(digest, 'MANIFEST_UNKNOWN');
  res.writeHead(200, { 'content-type': stored.mediaType, 'content-length': stored.bytes.length, 'docker-content-digest': digest.value });
  res.end(req.method === 'HEAD' ? undefined : stored.bytes);
}

async function serveBlob(parts: PeerServerParts, req: IncomingMessage, res: ServerResponse, digest: Digest): Promise<void> {
  const { blobCache } = parts;
  if (req.method === 'HEAD') {
    const held = await heldSize(blobCache, digest);
    if (!held) throw notHeld(digest, 'BLOB_UNKNOWN');
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'docker-content-digest': digest.value, ...(held.size !== undefined ? { 'content-length': held.size } : {}) });
    res.end();
    return;
  }
  const body = await heldBody(blobCache, digest, req.headers.range);
  const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream', 'docker-content-digest': digest.value };
  let status = 200;
  if (body.range) {
    status = 206;
    headers['content-range'] = `bytes ${body.range.start}-${body.range.end - 1}/${body.size}`;
    headers['content-length'] = body.range.end - body.range.start;
  } else if (body.size !== undefined) {
    headers['content-length'] = body.size;
  }
  res.writeHead(status, headers);
  await new Promise<void>((resolve) =>
    body.send(res, (err) => {
      if (err) parts.log.info({ digest: digest.value, peer: req.socket.remoteAddress, err: err.message }, 'zone peer read cut short');
      else parts.onServedBytes(body.range ? body.range.end - body.range.start : (blobCache.store.sizeOf(digest) ?? body.size ?? 0));
      resolve();
    }),
  );
}

/** The size of a blob held here (undefined inside: a fill whose source sent no length), or undefined when it is not held. */
async function heldSize(blobCache: BlobCache, digest: Digest): Promise<{ size: number | undefined } | undefined> {
  const stored = blobCache.store.sizeOf(digest);
  if (stored !== undefined) return { size: stored };
  const fill = blobCache.inflightFill(digest);
  return fill?.ready.then((size) => ({ size }), () => undefined);
}

/** The blob as committed here or as the fill in flight lands; a fill whose source refused is not held. */
async function heldBody(blobCache: BlobCache, digest: Digest, rangeHeader: string | undefined): Promise<BlobBody> {
  const range = parseRange(rangeHeader);
  // Twice: a fill that committed and closed between the look and the read is in the store the second time.
  for (let round = 0; round < 2; round++) {
    const found = await blobCache.join(digest);
    if (!found) break;
    if (found.kind === 'hit') return hitBody(found.blob, range);
    const body = await fillBody(found.fill, range).catch((err: unknown) => {
      if (err instanceof RegistryError) throw err;
      // The fill failed before or as it was joined: this replica does not hold the blob.
      return null;
    });
    if (body === null) break;
    if (body) return body;
  }
  throw notHeld(digest, 'BLOB_UNKNOWN');
}
