/**
 * GET/HEAD /v2/<name>/manifests/<reference>: exact bytes, with the digest and type they
 * were stored with, or the upstream's own answer to the client's request where the
 * client does not accept the canonical manifest. PUT and DELETE go to the upstream and
 * the edge's state follows what it accepted.
 */
import { parseAccept } from '../oci/media-types.js';
import type { Reference } from '../oci/request.js';
import type { ManifestService } from '../proxy/manifest-service.js';
import type { UpstreamAuth } from '../upstream/client.js';
import { header, type Exchange } from './exchange.js';
import { asClient } from '../upstream/upstream-auth.js';
import { ifNoneMatchHits } from './conditional.js';
import { BoundedTee, forward, type ForwardSettings } from './forward.js';
import { REQUEST_ID } from './request-id.js';
import { API_VERSION_HEADER } from './respond.js';

/** How a manifest request the edge does not answer itself reaches the upstream. */
export interface PassThrough {
  readonly settings: ForwardSettings;
  readonly auth: UpstreamAuth;
}

export async function serveManifest(ex: Exchange, manifests: ManifestService, name: string, reference: Reference, pass: PassThrough): Promise<void> {
  const acceptHeader = ex.req.headers.accept;
  const result = await manifests.get({
    name,
    reference,
    accepted: parseAccept(acceptHeader),
    acceptHeader: Array.isArray(acceptHeader) ? acceptHeader.join(', ') : acceptHeader,
    authorization: header(ex.req, 'authorization'),
    trace: ex,
  });
  // The client's request as it came, so the upstream negotiates (and answers conditions) as it would without the edge.
  if (result.kind === 'pass') return void (await forward(ex, pass.settings, { auth: pass.auth }));
  const { manifest, source } = result;
  ex.cache = source;
  ex.source = source === 'miss' ? 'upstream' : 'cache';
  const etag = `"${manifest.digest}"`;
  const identity = { 'docker-content-digest': manifest.digest, etag, [API_VERSION_HEADER[0]]: API_VERSION_HEADER[1], [REQUEST_ID]: ex.requestId };
  if (ifNoneMatchHits(header(ex.req, 'if-none-match'), etag)) {
    ex.res.writeHead(304, identity);
    ex.res.end();
    return;
  }
  ex.bodyBytes = ex.req.method === 'HEAD' ? 0 : manifest.bytes.length;
  ex.res.writeHead(200, { 'content-type': manifest.mediaType, 'content-length': manifest.bytes.length, ...identity });
  ex.res.end(ex.req.method === 'HEAD' ? undefined : manifest.bytes);
}

/**
 * PUT of a manifest goes to the upstream; when it is accepted under a tag, the edge's
 * own tag mapping follows, so a pull through this edge right after the push sees it.
 */
export async function pushManifest(
  ex: Exchange,
  settings: ForwardSettings,
  manifests: ManifestService,
  name: string,
  reference: Reference,
  maxBytes: number,
): Promise<void> {
  const tee = new BoundedTee(maxBytes);
  ex.req.pipe(tee);
  const authorization = header(ex.req, 'authorization');
  await forward(ex, settings, {
    auth: asClient(authorization),
    body: tee,
    // The upstream answers only after it has read the whole manifest, so the copy is complete here.
    beforeReply: async (res) => {
      if (reference.kind !== 'tag') return;
      const digest = res.headers['docker-content-digest'];
      await manifests.recordPush({
        name,
        tag: reference.tag,
        accepted: res.status === 201,
        digest: typeof digest === 'string' ? digest : undefined,
        mediaType: header(ex.req, 'content-type')?.split(';')[0]?.trim(),
        bytes: tee.bytes(),
      });
    },
  });
}

/**
 * DELETE goes to the upstream; once it has accepted the DELETE of a digest, the edge no
 * longer serves that manifest, or a tag mapped to it, under this repository without
 * asking again. (registry:2 refuses DELETE by tag: nothing to follow.)
 */
export async function deleteManifest(ex: Exchange, settings: ForwardSettings, manifests: ManifestService, name: string, reference: Reference): Promise<void> {
  await forward(ex, settings, {
    auth: asClient(header(ex.req, 'authorization')),
    beforeReply: async (res) => {
      if (res.status === 202 && reference.kind === 'digest') await manifests.forgetDeleted(name, reference.digest);
    },
  });
}
