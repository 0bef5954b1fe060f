/**
 * How a failure at start-up becomes what a config error is: one line naming the key
 * to look at and the cause, so an operator reads `http.addr: cannot listen on
 * 0.0.0.0:5000: address already in use (EADDRINUSE)` instead of a stack trace.
 */
import { getSystemErrorMap } from 'node:util';
import { ConfigError } from './load.js';

const SYSTEM_ERRORS = getSystemErrorMap();

/**
 * The cause in words: for a system error its errno text and code (Node's own message
 * repeats the syscall and path, which the caller's line already names); otherwise the
 * error's first line.
 */
export function describeCause(err: unknown): string {
  if (err instanceof Error) {
    const { errno, code } = err as NodeJS.ErrnoException;
    const known = errno === undefined ? undefined : SYSTEM_ERRORS.get(errno);
    if (known) return `${known[1]} (${known[0]})`;
    const first = err.message.split('\n')[0] ?? '';
    return code && !first.includes(code) ? `${first} (${code})` : first;
  }
  return String(err);
}

/** Resolves as `step` does, or rejects with a ConfigError `<key>: <what>: <cause>`. */
export async function underKey<T>(key: string, what: string, step: Promise<T>): Promise<T> {
  try {
    return await step;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError([`${key}: ${what}: ${describeCause(err)}`]);
  }
}
