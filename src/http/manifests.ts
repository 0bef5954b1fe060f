/** GET/HEAD /v2/<name>/manifests/<reference>: exact bytes, with the digest and type they were stored with. */
import { parseAccept } from '../oci/media-types.js';
import type { Reference } from '../oci/request.js';
import type { ManifestService } from '../proxy/manifest-service.js';
import { header, type Exchange } from './exchange.js';
import { asClient } from '../proxy/upstream-auth.js';
import { BoundedTee, forward, type ForwardSettings } from './forward.js';
import { API_VERSION_HEADER } from './respond.js';

export async function serveManifest(ex: Exchange, manifests: ManifestService, name: string, reference: Reference): Promise<void> {
  const acceptHeader = ex.req.headers.accept;
  const { manifest, source } = await manifests.get({
    name,
    reference,
    accepted: parseAccept(acceptHeader),
    acceptHeader: Array.isArray(acceptHeader) ? acceptHeader.join(', ') : acceptHeader,
    authorization: header(ex.req, 'authorization'),
  });
  ex.cache = source;
  ex.source = source === 'miss' ? 'upstream' : 'cache';
  ex.bodyBytes = ex.req.method === 'HEAD' ? 0 : manifest.bytes.length;
  ex.res.writeHead(200, {
    'content-type': manifest.mediaType,
    'content-length': manifest.bytes.length,
    'docker-content-digest': manifest.digest,
    etag: `"${manifest.digest}"`,
    [API_VERSION_HEADER[0]]: API_VERSION_HEADER[1],
  });
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
