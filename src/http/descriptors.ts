/**
 * The process's descriptor limit and what happens near it. Once accept() fails with
 * EMFILE, libuv accepts and closes the waiting connections without a word, so the edge
 * must stay below the limit (http.max_connections is sized here) and must say so
 * whenever EMFILE or ENFILE shows up anywhere (a cache file, an upstream connect).
 */
import { readFileSync } from 'node:fs';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../log/logger.js';

/** The soft RLIMIT_NOFILE, read from /proc/self/limits; undefined where it cannot be read (not Linux) or is unlimited. */
export function descriptorLimit(limits?: string): number | undefined {
  let text = limits;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return undefined;
    }
  }
  const soft = /^Max open files\s+(\d+|unlimited)\s/m.exec(text)?.[1];
  return soft === undefined || soft === 'unlimited' ? undefined : Number(soft);
}

/** Descriptors the edge holds besides its client connections. */
export interface OtherDescriptors {
  /** cache.open_files: blob files kept open between requests. */
  readonly keptFiles: number;
  /** Upstream sockets: upstream.connections per instance, plus as many for redirects to object storage. */
  readonly upstreamSockets: number;
}

/** Listeners, stdio, epoll, the admin listener, token requests, DNS, the cache's own files. */
const PROCESS_DESCRIPTORS = 64;

/**
 * The most client connections that fit under `limit`: what the rest of the edge may hold
 * is set aside, and the remainder halved, because a connection being served may hold a
 * second descriptor (the blob file it is sent, or the temp file of the fill it follows).
 */
export function connectionsThatFit(limit: number, other: OtherDescriptors): number {
  return Math.max(1, Math.floor((limit - PROCESS_DESCRIPTORS - other.keptFiles - other.upstreamSockets) / 2));
}

/**
 * http.max_connections as it can be honoured: the configured value, or less when that is
 * not comfortably below the descriptor limit (one warn line at start says so).
 */
export function connectionCap(configured: number, other: OtherDescriptors, log: Logger, limit = descriptorLimit()): number {
  if (limit === undefined) return configured;
  const fits = connectionsThatFit(limit, other);
  if (configured <= fits) return configured;
  log.warn(
    { key: 'http.max_connections', configured, descriptorLimit: limit, using: fits, ...other },
    `http.max_connections ${configured} is not comfortably below the descriptor limit ${limit} (RLIMIT_NOFILE); using ${fits}. `
      + 'Raise the limit (systemd LimitNOFILE=65536, docker run --ulimit nofile=65536:65536) or lower http.max_connections',
  );
  return fits;
}

/** A warn line at most once per interval, counting the occurrences it stood for. */
export class ThrottledWarning {
  private readonly log: Logger;
  private readonly message: string;
  private readonly everyMs: number;
  private lastAt = -Infinity;
  private since = 0;

  constructor(log: Logger, message: string, everyMs: number) {
    this.log = log;
    this.message = message;
    this.everyMs = everyMs;
  }

  warn(fields: Record<string, unknown>): void {
    this.since += 1;
    const now = performance.now();
    if (now - this.lastAt < this.everyMs) return;
    this.log.warn({ ...fields, occurrences: this.since, intervalSeconds: this.everyMs / 1000 }, this.message);
    this.lastAt = now;
    this.since = 0;
  }
}

export const WARN_EVERY_MS = 10_000;

export type ExhaustionSite = 'accept' | 'request' | 'fill';

/** EMFILE or ENFILE, on the error or the causes it wraps (a fill's error wraps the open that failed). */
export function exhaustionCode(err: unknown): 'EMFILE' | 'ENFILE' | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && typeof e === 'object' && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (code === 'EMFILE' || code === 'ENFILE') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Counts descriptor exhaustion wherever it is seen and logs it at most once per interval. */
export class DescriptorAlarm {
  private readonly counter: Counter<'where' | 'code'>;
  private readonly warning: ThrottledWarning;
  /** Read at start: once descriptors are out, /proc/self/limits cannot be opened either. */
  private readonly limit = descriptorLimit();

  constructor(registry: Registry, log: Logger, everyMs = WARN_EVERY_MS) {
    this.counter = new Counter({
      name: 'registry_edge_descriptors_exhausted_total',
      help: 'Operations that failed with EMFILE (the process\'s descriptor limit) or ENFILE (the system\'s), by where (accept, request, fill).',
      labelNames: ['where', 'code'] as const,
      registers: [registry],
    });
    this.warning = new ThrottledWarning(
      log,
      'out of file descriptors: requests fail until some are released; raise RLIMIT_NOFILE or lower http.max_connections / cache.open_files',
      everyMs,
    );
  }

  /** True (counted, maybe logged) when `err` is descriptor exhaustion. */
  note(err: unknown, where: ExhaustionSite): boolean {
    const code = exhaustionCode(err);
    if (!code) return false;
    this.counter.inc({ where, code });
    this.warning.warn({ where, code, err: (err as Error).message, descriptorLimit: this.limit });
    return true;
  }
}
