/**
 * A reused keep-alive connection that the instance (or a balancer in front of it) closed
 * just as the request went out fails with a reset before any answer: a GET or HEAD is
 * sent once more, on a new connection, before the instance counts a failure. Without
 * this a zone with one upstream answered 503 for a connection the upstream had retired.
 */
import { isResetConnection } from '../connect-errors.js';
import { IDEMPOTENT, type Step } from './exchange.js';

export const resetRetry: Step = (next) => async (exchange) => {
  try {
    return await next(exchange);
  } catch (err) {
    if (!isResetConnection(err) || exchange.body || !IDEMPOTENT.has(exchange.method) || exchange.signal?.aborted) throw err;
    return next(exchange);
  }
};
