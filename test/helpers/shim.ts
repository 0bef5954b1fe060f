// Counting, fault-injecting HTTP reverse proxy. Put it between the edge and
// the real registry (or between skopeo and the edge) to observe exactly which
// requests cross the wire and to break responses in controlled ways.
import * as http from 'node:http';
import type * as net from 'node:net';

/** Common fields of faults that apply to matching requests. */
export interface PathFault {
  /** Tested against the request target (path + query string). */
  pathPattern: RegExp;
  /** Only requests with this method (e.g. 'GET'); all methods when omitted. */
  method?: string;
  /** Apply to this many matching requests only, then stop matching. */
  times?: number;
}

export type Fault =
  /** XOR one byte of the response body at `offset`; headers (Content-Length, Docker-Content-Digest) untouched. */
  | ({ kind: 'flip-byte'; offset: number } & PathFault)
  /** Answer `status` with an empty body without contacting the target. */
  | ({ kind: 'status'; status: number; headers?: http.OutgoingHttpHeaders } & PathFault)
  /** Every connection (existing and new) is destroyed on arrival: looks like a reset. */
  | { kind: 'down' }
  /** Wait `ms` before forwarding. */
  | ({ kind: 'delay'; ms: number } & PathFault)
  /** Throttle the response body. */
  | ({ kind: 'slow-body'; bytesPerSecond: number } & PathFault)
  /** Send headers and the first `afterBytes` body bytes, then destroy the socket. */
  | ({ kind: 'truncate'; afterBytes: number } & PathFault)
  /** Destroy the socket as soon as the request arrives, without answering. */
  | ({ kind: 'reset' } & PathFault)
  /** Answer as the target does, with `Connection: close`, and close the connection after the response (an HTTP/1.0 hop, nginx at keepalive_requests). */
  | ({ kind: 'close-connection' } & PathFault)
  /** Send headers and the first `afterBytes` body bytes, then nothing more, without closing (until the client does). */
  | ({ kind: 'stall'; afterBytes: number } & PathFault)
  /**
   * Send `bytes` bytes of garbage after the body. `declared`: Content-Length grows by as
   * many (a body longer than the digest's blob); else it stays (bytes past Content-Length).
   */
  | ({ kind: 'extra-bytes'; bytes: number; declared: boolean } & PathFault);

export interface ShimRequest {
  method: string;
  /** Request target as received: path plus query string. */
  path: string;
  /** 0 until the response head is sent (or forever, when the socket was reset). */
  status: number;
  headers: http.IncomingHttpHeaders;
  authorization: string | undefined;
  /** Response body bytes sent so far (live: observable while a slow body streams). */
  bodyBytes: number;
  /** Whether the request was forwarded to the target. */
  forwarded: boolean;
  /** Location of a redirect the shim answered with (redirectBlobs mode). */
  redirectedTo?: string;
  /** Faults applied to this request. */
  faults: string[];
  /** Response completed normally. */
  done: boolean;
  error?: string;
  /** The client (the edge) closed the connection before the answer was complete. */
  abandoned?: boolean;
}

const BLOB_PATH = /^\/v2\/.+\/blobs\/[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function pathOnly(target: string): string {
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
}

export class ShimStats {
  readonly requests: ShimRequest[] = [];
  /** Total response body bytes sent back to clients. */
  responseBodyBytes = 0;
  /** Response body bytes of blob GETs only. */
  blobBodyBytes = 0;
  /** Requests forwarded to the target. */
  forwarded = 0;

  /** GET requests to /v2/<name>/blobs/<digest> (any status, incl. redirects and faults). */
  blobGets(digest?: string): number {
    const re = digest === undefined ? BLOB_PATH : new RegExp(`^/v2/.+/blobs/${escapeRegExp(digest)}$`);
    return this.requests.filter((r) => r.method === 'GET' && re.test(pathOnly(r.path))).length;
  }

  /** Requests whose method matches (or any, when undefined) and whose target matches `pattern`. */
  count(method: string | undefined, pattern: RegExp): number {
    return this.matching(method, pattern).length;
  }

  matching(method: string | undefined, pattern: RegExp): ShimRequest[] {
    return this.requests.filter((r) => (method === undefined || r.method === method) && pattern.test(r.path));
  }

  reset(): void {
    this.requests.length = 0;
    this.responseBodyBytes = 0;
    this.blobBodyBytes = 0;
    this.forwarded = 0;
  }
}

export interface Shim {
  readonly url: string;
  readonly port: number;
  /** host:port, the form used in image references. */
  readonly host: string;
  readonly targetUrl: string;
  readonly stats: ShimStats;
  reset(): void;
  /** Replaces all faults (null clears them). */
  setFault(f: Fault | null): void;
  addFault(f: Fault): void;
  /** Blob GETs answer `<status> Location: <toUrl><same path+query>`; null turns it off. */
  redirectBlobs(toUrl: string | null, opts?: { status?: number }): void;
  /** Closes the listening socket and all connections: clients get ECONNREFUSED. */
  stopListening(): Promise<void>;
  /** Listens again on the same port. */
  listenAgain(): Promise<void>;
  stop(): Promise<void>;
}

const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  // Node answers 100-continue itself; forwarding it would make the target wait too.
  'expect',
];

function stripHopByHop(h: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = { ...h };
  const listed = typeof h.connection === 'string' ? h.connection.split(',').map((s) => s.trim().toLowerCase()) : [];
  for (const k of [...HOP_BY_HOP, ...listed]) delete out[k];
  return out;
}

export interface StartShimOptions {
  port?: number;
}

export async function startShim(targetUrl: string, opts: StartShimOptions = {}): Promise<Shim> {
  const target = new URL(targetUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const stats = new ShimStats();
  const sockets = new Set<net.Socket>();
  let faults: Array<{ fault: Fault; remaining: number }> = [];
  let redirect: { toUrl: string; status: number } | null = null;
  let stopped = false;

  const isDown = (): boolean => faults.some((f) => f.fault.kind === 'down');

  const takeFaults = (req: http.IncomingMessage): Fault[] => {
    const hit: Fault[] = [];
    for (const entry of faults) {
      const f = entry.fault;
      if (f.kind === 'down' || entry.remaining <= 0) continue;
      if (f.method !== undefined && f.method.toUpperCase() !== req.method) continue;
      f.pathPattern.lastIndex = 0;
      if (!f.pathPattern.test(req.url ?? '')) continue;
      entry.remaining--;
      hit.push(f);
    }
    return hit;
  };

  const server = http.createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`shim error: ${String(err)}`);
      } else {
        res.destroy();
      }
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (s: net.Socket) => {
    if (isDown() || stopped) {
      s.destroy();
      return;
    }
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const reqPath = req.url ?? '/';
    const auth = req.headers.authorization;
    const rec: ShimRequest = {
      method,
      path: reqPath,
      status: 0,
      headers: req.headers,
      authorization: auth,
      bodyBytes: 0,
      forwarded: false,
      faults: [],
      done: false,
    };
    stats.requests.push(rec);
    res.once('finish', () => {
      rec.done = true;
    });
    res.once('close', () => {
      if (!res.writableFinished) rec.abandoned = true;
    });
    const isBlobGet = method === 'GET' && BLOB_PATH.test(pathOnly(reqPath));
    const countBytes = (n: number): void => {
      rec.bodyBytes += n;
      stats.responseBodyBytes += n;
      if (isBlobGet) stats.blobBodyBytes += n;
    };

    const hit = takeFaults(req);
    rec.faults = hit.map((f) => f.kind);
    const find = <K extends Fault['kind']>(k: K): Extract<Fault, { kind: K }> | undefined =>
      hit.find((f): f is Extract<Fault, { kind: K }> => f.kind === k);

    if (find('reset')) {
      req.socket.destroy();
      return;
    }
    const statusFault = find('status');
    if (statusFault) {
      req.resume();
      rec.status = statusFault.status;
      res.writeHead(statusFault.status, { 'content-length': '0', ...statusFault.headers });
      res.end();
      return;
    }
    if (redirect && isBlobGet) {
      req.resume();
      const location = redirect.toUrl.replace(/\/+$/, '') + reqPath;
      rec.status = redirect.status;
      rec.redirectedTo = location;
      res.writeHead(redirect.status, { location, 'content-length': '0' });
      res.end();
      return;
    }
    const delayFault = find('delay');
    if (delayFault && !(await sleepUnlessClosed(delayFault.ms, res))) return;
    if (res.destroyed) return;

    rec.forwarded = true;
    stats.forwarded++;
    const upstreamReq = http.request({
      host: target.hostname,
      port: target.port,
      method,
      path: reqPath,
      // Host is kept so the registry builds Location URLs that point back at the shim.
      headers: stripHopByHop(req.headers),
      agent,
    });
    res.once('close', () => {
      if (!res.writableFinished) upstreamReq.destroy();
    });
    const upstreamRes = await new Promise<http.IncomingMessage | undefined>((resolve) => {
      upstreamReq.once('response', resolve);
      upstreamReq.once('error', (err) => {
        rec.error = err.message;
        if (!res.headersSent && !res.destroyed) {
          rec.status = 502;
          res.writeHead(502, { 'content-type': 'text/plain' });
          res.end(`shim: upstream error: ${err.message}`);
        } else {
          res.destroy();
        }
        resolve(undefined);
      });
      req.pipe(upstreamReq);
    });
    if (!upstreamRes) return;
    rec.status = upstreamRes.statusCode ?? 0;
    if (res.destroyed) {
      upstreamRes.destroy();
      return;
    }
    // Node's server sends the header and ends the connection once this response is over.
    const headers = find('close-connection') ? { ...stripHopByHop(upstreamRes.headers), connection: 'close' } : stripHopByHop(upstreamRes.headers);
    const extra = find('extra-bytes');
    if (extra?.declared && headers['content-length'] !== undefined) headers['content-length'] = String(Number(headers['content-length']) + extra.bytes);
    res.writeHead(rec.status, upstreamRes.statusMessage, headers);
    await relayBody(upstreamRes, res, {
      flipOffset: find('flip-byte')?.offset,
      bytesPerSecond: find('slow-body')?.bytesPerSecond,
      truncateAfter: find('truncate')?.afterBytes,
      stallAfter: find('stall')?.afterBytes,
      extraBytes: extra?.bytes,
      onBytes: countBytes,
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('shim: unexpected listen address');
  const port = addr.port;

  const closeServer = async (): Promise<void> => {
    const closed = new Promise<void>((resolve) => {
      if (!server.listening) {
        resolve();
        return;
      }
      server.close(() => resolve());
    });
    for (const s of sockets) s.destroy();
    await closed;
  };

  const shim: Shim = {
    url: `http://127.0.0.1:${port}`,
    port,
    host: `127.0.0.1:${port}`,
    targetUrl,
    stats,
    reset: () => {
      stats.reset();
      faults = [];
      redirect = null;
    },
    setFault: (f) => {
      faults = [];
      if (f) shim.addFault(f);
    },
    addFault: (f) => {
      faults.push({ fault: f, remaining: f.kind === 'down' ? Infinity : (f.times ?? Infinity) });
      if (f.kind === 'down') for (const s of sockets) s.destroy();
    },
    redirectBlobs: (toUrl, o) => {
      redirect = toUrl === null ? null : { toUrl, status: o?.status ?? 307 };
    },
    stopListening: closeServer,
    listenAgain: () =>
      new Promise<void>((resolve, reject) => {
        if (server.listening) {
          resolve();
          return;
        }
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      }),
    stop: async () => {
      stopped = true;
      await closeServer();
      agent.destroy();
    },
  };
  return shim;
}

function sleepUnlessClosed(ms: number, res: http.ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const onClose = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      res.off('close', onClose);
      resolve(true);
    }, ms);
    res.once('close', onClose);
  });
}

function waitWritable(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

interface RelayOptions {
  flipOffset: number | undefined;
  bytesPerSecond: number | undefined;
  truncateAfter: number | undefined;
  stallAfter: number | undefined;
  extraBytes: number | undefined;
  onBytes: (n: number) => void;
}

/** Resolves when the client closes the connection. */
function untilClosed(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed) resolve();
    else res.once('close', () => resolve());
  });
}

/**
 * Streams the upstream body to the client chunk by chunk with backpressure
 * (never buffering a whole body), applying body faults on the way.
 */
async function relayBody(src: http.IncomingMessage, res: http.ServerResponse, o: RelayOptions): Promise<void> {
  let offset = 0;
  const write = async (c: Buffer): Promise<void> => {
    if (c.length === 0 || res.destroyed) return;
    o.onBytes(c.length);
    if (!res.write(c)) await waitWritable(res);
  };
  try {
    for await (const raw of src as AsyncIterable<Buffer>) {
      if (res.destroyed) break;
      let chunk = raw;
      const start = offset;
      offset += raw.length;
      if (o.flipOffset !== undefined && o.flipOffset >= start && o.flipOffset < offset) {
        chunk = Buffer.from(raw);
        const i = o.flipOffset - start;
        chunk.writeUInt8(chunk.readUInt8(i) ^ 0xff, i);
      }
      let truncateNow = false;
      if (o.truncateAfter !== undefined && offset >= o.truncateAfter) {
        chunk = chunk.subarray(0, Math.max(0, o.truncateAfter - start));
        truncateNow = true;
      }
      if (o.stallAfter !== undefined && offset >= o.stallAfter) {
        await write(chunk.subarray(0, Math.max(0, o.stallAfter - start)));
        res.flushHeaders();
        src.destroy();
        await untilClosed(res);
        return;
      }
      if (o.bytesPerSecond !== undefined && o.bytesPerSecond > 0) {
        // ~20 slices a second keeps progress observable without a timer per byte.
        const slice = Math.max(1, Math.floor(o.bytesPerSecond / 20));
        for (let p = 0; p < chunk.length && !res.destroyed; p += slice) {
          const part = chunk.subarray(p, p + slice);
          await write(part);
          if (!(await sleepUnlessClosed((part.length / o.bytesPerSecond) * 1000, res))) break;
        }
      } else {
        await write(chunk);
      }
      if (truncateNow) {
        // end() (not destroy()) on the socket sends what was written, then FIN:
        // the client gets the head and exactly truncateAfter body bytes.
        res.flushHeaders();
        res.socket?.end();
        src.destroy();
        return;
      }
    }
  } catch {
    // upstream aborted mid-body: cut the client off too so it sees a short body
    res.destroy();
    return;
  }
  if (res.destroyed) {
    src.destroy();
    return;
  }
  if (o.extraBytes !== undefined) await write(Buffer.alloc(o.extraBytes, 0x5a));
  res.end();
}
