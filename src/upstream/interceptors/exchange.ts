/**
 * The per-instance request pipeline in undici's interceptor shape, `(next) => send`,
 * but over promises of a whole answer rather than undici's handler callbacks: the
 * bearer challenge awaits a token fetch between two round trips, and a handler-level
 * interceptor would have to hold the 401's body unread across that await, which can
 * end the process when the connection closes (nodejs/undici#5360). Each step drains
 * or returns every body it receives, so none sits unread.
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';

/** One round trip: the first try, the answer to a challenge, a redirect hop. */
export interface Exchange {
  readonly origin: string;
  readonly path: string;
  readonly method: string;
  readonly headers: Record<string, string>;
  /** A request body streamed upstream: such an exchange is sent once. */
  readonly body?: Readable | undefined;
  readonly signal?: AbortSignal | undefined;
  /** The token scope when the edge's own credentials answer a challenge. */
  readonly edgeScope?: string | undefined;
  readonly followRedirects?: boolean | undefined;
}

export type Send = (exchange: Exchange) => Promise<Dispatcher.ResponseData>;
export type Step = (next: Send) => Send;

/** The first step is outermost: `compose(base, a, b)` sends through a, then b, then base. */
export function compose(base: Send, ...steps: readonly Step[]): Send {
  return steps.reduceRight<Send>((next, step) => step(next), base);
}

export const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD']);
