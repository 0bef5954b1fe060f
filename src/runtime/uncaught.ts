/**
 * What the serving process does with an error nothing caught: it logs it (error level,
 * with the stack), counts it, and keeps serving.
 *
 * Node's default is to exit, because after an uncaught error the program's state may be
 * half-updated. Here that state is per request: each request owns its sockets, streams
 * and timers, and the one shared thing a request changes, the cache, only ever gains a
 * file by renaming it in after its bytes were hashed and synced (invariant 1). So the
 * worst an error escaping one request leaves behind is that request failed and perhaps
 * a descriptor it held; exiting instead would fail every pull in the zone at once. The
 * counter is what to alert on: a non-zero rate is a bug to fix, not a state to run in.
 *
 * No attempt is made to tell request errors from others: Node gives an uncaught error
 * no reliable context, and a guess that exits on the wrong one is worse than none.
 * Errors during start-up are not handled here: `serve` exits 2 on them.
 */
import type { Logger } from '../log/logger.js';

export type UncaughtKind = 'exception' | 'rejection';

/** Installs the handlers; the returned function removes them. */
export function keepServing(log: Logger, count: (kind: UncaughtKind) => void): () => void {
  const report = (kind: UncaughtKind, err: unknown): void => {
    count(kind);
    log.error({ kind, err }, 'uncaught error; the request it came from failed and the process keeps serving');
  };
  const onException = (err: Error): void => report('exception', err);
  const onRejection = (reason: unknown): void => report('rejection', reason);
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  return () => {
    process.off('uncaughtException', onException);
    process.off('unhandledRejection', onRejection);
  };
}
