/**
 * The client connections of every client listener together: held under
 * http.max_connections (nginx worker_connections), so the process never runs out of
 * descriptors. Near the cap the longest-idle connections (no request in flight: kept
 * alive after a response, or silent since they connected) are closed so a new client
 * is served; at the cap with none idle, a new connection is closed on arrival. Also
 * the one place that knows a connection's phase: a new connection gets
 * http.headers_timeout to send its first request (Node only times headers once they
 * begin), and on shutdown connections are closed as soon as they are idle.
 */
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Server as TlsServer, type TLSSocket } from 'node:tls';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../log/logger.js';
import { ThrottledWarning, WARN_EVERY_MS } from './descriptors.js';

export interface ConnectionLimits {
  /** http.max_connections as it can be honoured (see connectionCap). */
  readonly max: number;
  /** http.headers_timeout: how long a new connection may take to send its first request. */
  readonly headersTimeoutMs: number;
  /** http.body_timeout: the socket timeout once requests flow (as the listeners set it). */
  readonly bodyTimeoutMs: number;
}

/** Below the cap by this much, idle connections start to be closed, so an arriving client always finds room. */
function headroom(max: number): number {
  return Math.max(1, Math.min(32, Math.floor(max / 16)));
}

export class ClientConnections {
  private readonly limits: ConnectionLimits;
  private readonly near: number;
  /** Every accepted TCP connection (for TLS: the socket under the TLS layer). */
  private readonly sockets = new Set<Socket>();
  /** Connections with no request in flight, longest idle first (a Set iterates in insertion order). */
  private readonly idle = new Set<Socket>();
  private readonly inFlight = new Map<Socket, number>();
  /** Connections that have not sent a request yet. */
  private readonly fresh = new WeakSet<Socket>();
  /** Closed by us and not yet gone: no longer counted against the cap. */
  private closing = 0;
  private draining = false;
  private readonly shed: Counter;
  private readonly refused: Counter;
  private readonly shedWarning: ThrottledWarning;
  private readonly refusedWarning: ThrottledWarning;

  constructor(limits: ConnectionLimits, registry: Registry, log: Logger, warnEveryMs = WARN_EVERY_MS) {
    this.limits = limits;
    this.near = limits.max - headroom(limits.max);
    const sockets = this.sockets;
    new Gauge({
      name: 'registry_edge_client_connections',
      help: 'Open client connections on the client listeners (capped by http.max_connections).',
      registers: [registry],
      collect() {
        this.set(sockets.size);
      },
    });
    this.shed = new Counter({
      name: 'registry_edge_client_connections_shed_total',
      help: 'Idle client connections closed to make room under http.max_connections.',
      registers: [registry],
    });
    this.refused = new Counter({
      name: 'registry_edge_client_connections_refused_total',
      help: 'Client connections closed on arrival: http.max_connections reached with none idle.',
      registers: [registry],
    });
    this.shedWarning = new ThrottledWarning(log, 'http.max_connections nearly reached: closing idle keep-alive connections', warnEveryMs);
    this.refusedWarning = new ThrottledWarning(log, 'http.max_connections reached: new connections are closed on arrival', warnEveryMs);
  }

  get open(): number {
    return this.sockets.size - this.closing;
  }

  attach(server: HttpServer | TlsServer): void {
    const tls = server instanceof TlsServer;
    server.on('connection', (socket: Socket) => this.admit(socket, !tls));
    if (tls) server.on('secureConnection', (socket: TLSSocket) => this.track(socket));
    // Before the router, which may answer (and send the headers) synchronously.
    server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req.socket, res));
  }

  private admit(socket: Socket, plain: boolean): void {
    if (this.open >= this.near) this.shedIdle();
    if (this.open >= this.limits.max) {
      socket.destroy();
      this.refused.inc();
      this.refusedWarning.warn({ key: 'http.max_connections', max: this.limits.max, open: this.open });
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    if (plain) this.track(socket);
  }

  /** Starts following the socket HTTP runs on (for TLS: once the handshake is done). */
  private track(socket: Socket): void {
    this.fresh.add(socket);
    this.idle.add(socket);
    // Node times request headers only once their first byte arrived: a silent connection would stay for body_timeout.
    socket.setTimeout(this.limits.headersTimeoutMs);
    socket.once('close', () => {
      this.idle.delete(socket);
      this.inFlight.delete(socket);
    });
  }

  private onRequest(socket: Socket, res: ServerResponse): void {
    if (this.fresh.delete(socket)) socket.setTimeout(this.limits.bodyTimeoutMs);
    this.idle.delete(socket);
    this.inFlight.set(socket, (this.inFlight.get(socket) ?? 0) + 1);
    if (this.draining) res.setHeader('connection', 'close');
    res.once('close', () => {
      const left = (this.inFlight.get(socket) ?? 1) - 1;
      if (left > 0) {
        this.inFlight.set(socket, left);
        return;
      }
      this.inFlight.delete(socket);
      if (socket.destroyed) return;
      if (this.draining) this.close(socket);
      else this.idle.add(socket);
    });
  }

  private shedIdle(): void {
    let shed = 0;
    for (const socket of this.idle) {
      if (this.open < this.near) break;
      this.idle.delete(socket);
      this.close(socket);
      shed += 1;
    }
    if (shed === 0) return;
    this.shed.inc(shed);
    this.shedWarning.warn({ key: 'http.max_connections', max: this.limits.max, open: this.open, shed });
  }

  /** Closes a connection with nothing in flight; counted as gone from now on. */
  private close(socket: Socket): void {
    this.closing += 1;
    socket.once('close', () => {
      this.closing -= 1;
    });
    // Bytes of the last response may still sit in the socket's buffer: those go out first.
    if (socket.writableLength > 0) socket.end();
    else socket.destroy();
  }

  /** Shutdown begins: idle connections are closed now, busy ones after their response. */
  drain(): void {
    this.draining = true;
    for (const socket of this.idle) this.close(socket);
    this.idle.clear();
  }

  /** Shutdown deadline: every connection is cut, whatever it is doing. */
  destroyAll(): void {
    for (const socket of [...this.inFlight.keys(), ...this.idle, ...this.sockets]) socket.destroy();
  }
}
