/** GET/HEAD /v2/<name>/blobs/<digest>: headers and bodies of blobs, from the blob service. */
import type { OutgoingHttpHeaders } from 'node:http';
import type { Digest } from '../oci/grammar.js';
import { parseRange } from '../oci/range.js';
import type { BlobService } from '../proxy/blob-service.js';
import { header, type Exchange } from './exchange.js';
import { API_VERSION_HEADER } from './respond.js';

function blobHeaders(digest: Digest): OutgoingHttpHeaders {
  return {
    'content-type': 'application/octet-stream',
    'docker-content-digest': digest.value,
    etag: `"${digest.value}"`,
    'accept-ranges': 'bytes',
    // Content addressed: the bytes behind a digest never change.
    'cache-control': 'max-age=31536000',
    [API_VERSION_HEADER[0]]: API_VERSION_HEADER[1],
  };
}

export async function headBlob(ex: Exchange, blobs: BlobService, name: string, digest: Digest): Promise<void> {
  const { size, source } = await blobs.head({ name, digest, range: undefined, authorization: header(ex.req, 'authorization') });
  ex.cache = source === 'upstream' ? 'miss' : source === 'fill' ? 'follow' : 'hit';
  const headers = blobHeaders(digest);
  if (size !== undefined) headers['content-length'] = size;
  ex.res.writeHead(200, headers);
  ex.res.end();
}

export async function getBlob(ex: Exchange, blobs: BlobService, name: string, digest: Digest): Promise<void> {
  const body = await blobs.get({
    name,
    digest,
    range: parseRange(header(ex.req, 'range')),
    authorization: header(ex.req, 'authorization'),
  });
  ex.cache = body.source === 'cache' ? 'hit' : 'fill';
  ex.source = body.source;
  const headers = blobHeaders(digest);
  let status = 200;
  if (body.range) {
    status = 206;
    headers['content-range'] = `bytes ${body.range.start}-${body.range.end - 1}/${body.size}`;
    headers['content-length'] = ex.bodyBytes = body.range.end - body.range.start;
  } else if (body.size !== undefined) {
    headers['content-length'] = ex.bodyBytes = body.size;
  }
  ex.res.writeHead(status, headers);
  await new Promise<void>((resolve) => {
    body.send(ex.res, (err) => {
      if (err) ex.error = err;
      resolve();
    });
  });
}
