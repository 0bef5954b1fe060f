/**
 * What the admin listener's POST routes (/notify, /prefetch) check of a request: the
 * bearer token, compared in constant time, and a body read whole up to a limit.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log/logger.js';

export type AdminRoute = (req: IncomingMessage, res: ServerResponse) => void;

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

/** Whether `header` is `Bearer <token>`; hashed first, so neither the comparison nor its length says how much matched. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  return timingSafeEqual(sha256(m?.[1] ?? ''), sha256(token)) && m !== null;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** The body, or 'too_large' once it passes `max` bytes (the rest is not read: the connection is closed after the answer). */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer | 'too_large'> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length'] ?? 0) > max) return resolve('too_large');
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > max) {
        req.off('data', onData);
        req.pause();
        resolve('too_large');
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

/**
 * The body of an admitted POST; undefined once what every POST route refuses alike has
 * been answered: another method (405), a wrong or missing token (401), a body over `max` (413).
 */
export async function admitPost(req: IncomingMessage, res: ServerResponse, token: string, max: number): Promise<Buffer | undefined> {
  if (req.method !== 'POST') {
    req.resume();
    sendJson(res, 405, { error: 'POST only' }, { allow: 'POST' });
    return undefined;
  }
  if (!bearerMatches(req.headers.authorization, token)) {
    req.resume();
    sendJson(res, 401, { error: 'a bearer token (prewarm.token) is required' }, { 'www-authenticate': 'Bearer realm="registry-edge admin"' });
    return undefined;
  }
  const body = await readBody(req, max);
  if (body === 'too_large') {
    sendJson(res, 413, { error: `the body is larger than prewarm.max_body (${max} bytes)` }, { connection: 'close' });
    return undefined;
  }
  return body;
}

/** A route whose work is async: an unexpected failure is logged and ends that request only. */
export function asyncRoute(log: Logger, what: string, handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>): AdminRoute {
  return (req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error({ err }, `${what} failed`);
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  };
}
