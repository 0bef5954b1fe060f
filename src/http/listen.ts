import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Options of the client listeners' servers (plain and TLS). */
export interface ClientServerOptions {
  readonly headersTimeout: number;
  readonly keepAliveTimeout: number;
  /** Node checks header timeouts this often (30 s by default, which let a 5 s headers_timeout close a slowloris after ~30 s). */
  readonly connectionsCheckingInterval: number;
  /** Off: a request's whole duration is bounded by http.body_timeout between bytes, not in total (pushes of large layers). */
  readonly requestTimeout: 0;
}

export function clientServerOptions(headersTimeoutMs: number, idleTimeoutMs: number): ClientServerOptions {
  return {
    headersTimeout: headersTimeoutMs,
    keepAliveTimeout: idleTimeoutMs,
    // Within a second (and within half the timeout) of when it is due.
    connectionsCheckingInterval: Math.min(1000, Math.ceil(headersTimeoutMs / 2)),
    requestTimeout: 0,
  };
}

/** Splits `host:port` / `[v6]:port` (validated by the config loader). */
export function splitAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host: host || '0.0.0.0', port: Number(addr.slice(i + 1)) };
}

/**
 * Listens and resolves with the bound address (the real port when 0 was asked for).
 * `exclusive`: in a cluster worker, a socket of this worker's own instead of the one the
 * workers share (each worker's admin and peer listeners).
 */
export function listen(server: Server, addr: string, exclusive = false): Promise<string> {
  const { host, port } = splitAddr(addr);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, exclusive }, () => {
      server.off('error', reject);
      const a = server.address() as AddressInfo;
      resolve(a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);
    });
  });
}

/** Stops accepting, lets in-flight responses finish for up to `graceMs`, then cuts what is left. */
export function closeServer(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}
