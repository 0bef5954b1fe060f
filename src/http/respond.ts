/** Writing responses: the OCI error envelope, upstream answers passed back, and bodies streamed with abort on failure. */
import type { ServerResponse } from 'node:http';
import { pipeline, type Readable } from 'node:stream';
import { RegistryError, isRegistryError } from '../oci/errors.js';
import { UpstreamAnswer } from '../upstream/upstream-answer.js';
import { REQUEST_ID } from './request-id.js';

export const API_VERSION_HEADER = ['docker-distribution-api-version', 'registry/2.0'] as const;

/**
 * The OCI error a failure is on the wire: a RegistryError as it is; an upstream body that
 * stalled past upstream.body_timeout before the edge could answer, a gateway timeout;
 * anything else a bare 500 (the log has the cause).
 */
export function toWire(err: unknown): RegistryError {
  if (isRegistryError(err)) return err;
  if ((err as { code?: unknown } | undefined)?.code === 'UND_ERR_BODY_TIMEOUT') {
    return new RegistryError('UNAVAILABLE', 'upstream did not answer in time', { timeout: 'upstream.body_timeout' }, 504);
  }
  return new RegistryError('UNAVAILABLE', 'internal error', undefined, 500);
}

/** Writes any error as the client should see it, with the request's id; internal errors become a bare 500 (the log has the cause). */
export function sendError(res: ServerResponse, err: unknown, requestId: string): void {
  if (res.headersSent) {
    // Mid-body: the only honest signal left is to cut the connection.
    res.destroy(err instanceof Error ? err : undefined);
    return;
  }
  if (err instanceof UpstreamAnswer) {
    res.writeHead(err.status, { ...err.headers, 'content-length': err.body.length, [API_VERSION_HEADER[0]]: API_VERSION_HEADER[1], [REQUEST_ID]: requestId });
    res.end(err.body);
    return;
  }
  const wire = toWire(err);
  const body = JSON.stringify(wire.toJSON());
  const headers: Record<string, string | number> = {
    ...wire.headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    [API_VERSION_HEADER[0]]: API_VERSION_HEADER[1],
    [REQUEST_ID]: requestId,
  };
  if (wire.code === 'RANGE_INVALID' && typeof (wire.detail as { size?: unknown } | undefined)?.size === 'number') {
    headers['content-range'] = `bytes */${(wire.detail as { size: number }).size}`;
  }
  res.writeHead(wire.status, headers);
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/**
 * Streams a body to the client. If the source fails, the response is destroyed, not
 * ended: the client sees a broken transfer, never a complete one with wrong bytes.
 */
export function streamBody(res: ServerResponse, body: Readable, done: (err: Error | undefined) => void): void {
  pipeline(body, res, (err) => {
    if (err && !res.destroyed) res.destroy(err);
    done(err ?? undefined);
  });
}
