/**
 * The token route: `token.path` on the edge forwarded to the token service, so that
 * clients in the zone only need to reach the edge. Both forms the spec allows pass
 * through as they are: `GET ?service=&scope=` (optional Basic auth) and the OAuth2
 * `POST` form containerd uses.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { request, type Dispatcher } from 'undici';
import { RegistryError } from '../oci/errors.js';
import type { Exchange } from './exchange.js';
import { REQUEST_ID } from './request-id.js';
import { streamBody } from './respond.js';

const FORWARDED_REQUEST = ['authorization', 'content-type', 'content-length', 'accept', 'user-agent'] as const;
const FORWARDED_RESPONSE = ['content-type', 'content-length', 'www-authenticate', 'cache-control', 'pragma'] as const;

export async function forwardToken(ex: Exchange, tokenUrl: string, dispatcher: Dispatcher, timeoutMs: number): Promise<void> {
  const target = new URL(tokenUrl);
  // Parameters already in token.url stay; the client's are added.
  new URLSearchParams(ex.query).forEach((value, key) => target.searchParams.append(key, value));
  const headers: Record<string, string> = { 'x-forwarded-for': ex.client, 'x-real-ip': ex.client, [REQUEST_ID]: ex.requestId };
  for (const name of FORWARDED_REQUEST) {
    const value = ex.req.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  const method = ex.req.method === 'POST' ? 'POST' : 'GET';
  let res: Dispatcher.ResponseData;
  try {
    res = await request(target, {
      method,
      headers,
      body: method === 'POST' ? ex.req : null,
      dispatcher,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
  } catch (err) {
    const timedOut = (err as { code?: string }).code === 'UND_ERR_HEADERS_TIMEOUT';
    const message = timedOut ? 'token service did not answer in time' : 'token service unreachable';
    throw new RegistryError('UNAVAILABLE', message, { cause: (err as Error).message }, timedOut ? 504 : 502);
  }
  const out: Record<string, string | string[]> = { [REQUEST_ID]: ex.requestId };
  for (const name of FORWARDED_RESPONSE) {
    const value = (res.headers as IncomingHttpHeaders)[name];
    if (value !== undefined) out[name] = value;
  }
  ex.cache = 'pass';
  ex.source = 'upstream';
  ex.res.writeHead(res.statusCode, out);
  await new Promise<void>((resolve) => {
    streamBody(ex.res, res.body, (err) => {
      if (err) ex.error = err;
      resolve();
    });
  });
}
