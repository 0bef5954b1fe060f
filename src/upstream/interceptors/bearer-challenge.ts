/**
 * The edge's own credentials on an exchange with an `edgeScope`: a cached token goes
 * out with the first try; a 401 challenge is answered (a bearer token fetched from the
 * realm, or basic credentials) and the request sent once more. Streamed bodies cannot
 * be sent twice, so their 401 is returned as it came.
 */
import type { Logger } from '../../log/logger.js';
import { isConnectError } from '../connect-errors.js';
import { parseChallenge } from '../challenge.js';
import { TokenError, type Credentials, type TokenCache } from '../tokens.js';
import type { Step } from './exchange.js';

/** Bytes of an answer undici holds for certain whether or not it is read. */
const SMALL_BODY = 16 * 1024;

export interface EdgeCredentials {
  /** The current token cache (replaced when the instance list changes). */
  readonly tokens: () => TokenCache;
  readonly credentials: Credentials | undefined;
  readonly log: Logger;
}

export function bearerChallenge(edge: EdgeCredentials): Step {
  return (next) => async (exchange) => {
    const scope = exchange.edgeScope;
    if (scope === undefined) return next(exchange);
    const token = edge.tokens().peek(scope);
    const headers = token ? { ...exchange.headers, authorization: `Bearer ${token}` } : exchange.headers;
    const res = await next({ ...exchange, headers });
    if (res.statusCode !== 401 || exchange.body) return res;
    // A body past undici's buffer left unread across the token fetch can end the process when
    // the connection closes (nodejs/undici#5360): a large one is dropped first (registries send a few bytes).
    const length = Number(res.headers['content-length']);
    if (!(length <= SMALL_BODY)) await res.body.dump();
    const authorization = await answerChallenge(edge, res.headers['www-authenticate'], scope);
    if (!authorization) return res;
    await res.body.dump();
    return next({ ...exchange, headers: { ...headers, authorization } });
  };
}

/** The Authorization answering a challenge with the edge's own credentials, or undefined. */
async function answerChallenge(edge: EdgeCredentials, header: string | string[] | undefined, scope: string): Promise<string | undefined> {
  const challenge = parseChallenge(Array.isArray(header) ? header[0] : header);
  if (!challenge) return undefined;
  if (challenge.scheme === 'basic') {
    const creds = edge.credentials;
    return creds ? 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64') : undefined;
  }
  if (challenge.scheme !== 'bearer') return undefined;
  try {
    return `Bearer ${await edge.tokens().fetch(scope, challenge, scope)}`;
  } catch (err) {
    if (!(err instanceof TokenError) && !isConnectError(err)) throw err;
    edge.log.warn({ err: (err as Error).message, scope }, 'upstream token request failed');
    return undefined;
  }
}
