/**
 * The id of one client request, in its access line, its X-Request-Id answer and the
 * requests the edge makes upstream for it: the client's own when it is a plain token (a
 * proxy in front chose it), else a new UUID. Anything else the client sent is replaced:
 * it goes into logs and upstream headers.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

const SANE = /^[A-Za-z0-9._-]{1,128}$/;

export function requestId(headers: IncomingHttpHeaders): string {
  const given = headers['x-request-id'];
  return typeof given === 'string' && SANE.test(given) ? given : randomUUID();
}
