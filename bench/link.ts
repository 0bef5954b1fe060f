// A WAN-like TCP link in front of the central registry: every byte is delayed by
// the one-way latency in each direction, each direction is a wire of limited
// bandwidth shared by every connection (a FIFO serialiser, the token bucket of a
// real link with no burst), a new connection pays the TCP handshake RTT before
// its first byte leaves, and the bytes that come from the centre are counted.
//
// One queue and at most one timer per connection direction: a chunk's delivery
// time is computed when it arrives (when the wire is free + its serialisation
// time + latency), so the timer only re-arms for the head of the queue.
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';

export interface LinkOptions {
  /** Where the link forwards (the centre). */
  readonly targetHost: string;
  readonly targetPort: number;
  /** One-way latency added to each direction, in ms. */
  readonly latencyMs: number;
  /** Bandwidth of each direction, shared by all connections; 0 = unlimited. */
  readonly bytesPerSecond: number;
  /**
   * Bytes a connection direction may have in flight (received, not yet delivered)
   * before the sender is paused: the TCP window. Must exceed the bandwidth-delay
   * product or a single stream cannot fill the link.
   */
  readonly windowBytes: number;
  /** Port to listen on (127.0.0.1); 0 picks one. */
  readonly port?: number;
}

export interface LinkStats {
  /** Body and header bytes delivered from the centre to the link's clients. */
  bytesFromCentre: number;
  /** Bytes delivered from the link's clients to the centre. */
  bytesToCentre: number;
  /** Connections accepted since start. */
  connections: number;
  /** Connections open now. */
  open: number;
}

/** One direction of the link: a serialiser of limited rate shared by every connection. */
class Wire {
  private freeAt = 0;
  private readonly msPerByte: number;

  constructor(
    bytesPerSecond: number,
    private readonly latencyMs: number,
  ) {
    this.msPerByte = bytesPerSecond > 0 ? 1000 / bytesPerSecond : 0;
  }

  /** When a chunk of `bytes` entering the wire at `now` reaches the far end. */
  schedule(bytes: number, now: number): number {
    const start = this.freeAt > now ? this.freeAt : now;
    this.freeAt = start + bytes * this.msPerByte;
    return this.freeAt + this.latencyMs;
  }
}

/** Timers fire with ms granularity; deliver what is due within this slack. */
const SLACK_MS = 0.5;

/** One direction of one connection: chunks waiting for their delivery time. */
class Pipe {
  private readonly chunks: Buffer[] = [];
  private readonly due: number[] = [];
  private head = 0;
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = 0;
  private srcEnded = false;
  private dstBlocked = false;
  private paused = false;
  private closed = false;
  /** No byte leaves before this time (the handshake of a new connection). */
  private notBefore: number;

  constructor(
    private readonly src: net.Socket,
    private readonly dst: net.Socket,
    private readonly wire: Wire,
    private readonly windowBytes: number,
    private readonly onDelivered: (bytes: number) => void,
    notBefore: number,
  ) {
    this.notBefore = notBefore;
    src.on('data', (chunk: Buffer) => this.receive(chunk));
    src.once('end', () => {
      this.srcEnded = true;
      this.flush();
    });
    dst.on('drain', () => {
      this.dstBlocked = false;
      this.flush();
    });
  }

  private receive(chunk: Buffer): void {
    if (this.closed) return;
    const now = performance.now();
    const enter = now > this.notBefore ? now : this.notBefore;
    this.chunks.push(chunk);
    this.due.push(this.wire.schedule(chunk.length, enter));
    this.queuedBytes += chunk.length;
    if (this.queuedBytes >= this.windowBytes && !this.paused) {
      this.paused = true;
      this.src.pause();
    }
    this.arm();
  }

  private arm(): void {
    if (this.closed || this.dstBlocked) return;
    if (this.head >= this.chunks.length) return;
    const at = this.due[this.head] ?? 0;
    if (this.timer !== undefined) {
      if (this.timerAt <= at) return;
      clearTimeout(this.timer);
    }
    this.timerAt = at;
    this.timer = setTimeout(this.onTimer, Math.max(0, at - performance.now()));
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.flush();
  };

  private flush(): void {
    if (this.closed) return;
    const now = performance.now() + SLACK_MS;
    let delivered = 0;
    while (!this.dstBlocked && this.head < this.chunks.length && (this.due[this.head] ?? 0) <= now) {
      const chunk = this.chunks[this.head] as Buffer;
      this.head++;
      delivered += chunk.length;
      if (!this.dst.write(chunk)) this.dstBlocked = true;
    }
    if (delivered > 0) {
      this.queuedBytes -= delivered;
      this.onDelivered(delivered);
      if (this.head > 1024 && this.head * 2 > this.chunks.length) {
        this.chunks.splice(0, this.head);
        this.due.splice(0, this.head);
        this.head = 0;
      }
    }
    if (this.head >= this.chunks.length) {
      this.chunks.length = 0;
      this.due.length = 0;
      this.head = 0;
      if (this.srcEnded && !this.dst.writableEnded) this.dst.end();
    }
    if (this.paused && !this.dstBlocked && this.queuedBytes < this.windowBytes / 2) {
      this.paused = false;
      this.src.resume();
    }
    this.arm();
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.chunks.length = 0;
    this.due.length = 0;
  }
}

export class Link {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly down: Wire;
  private readonly up: Wire;
  private readonly counters: LinkStats = { bytesFromCentre: 0, bytesToCentre: 0, connections: 0, open: 0 };
  private boundPort = 0;

  constructor(readonly options: LinkOptions) {
    this.down = new Wire(options.bytesPerSecond, options.latencyMs);
    this.up = new Wire(options.bytesPerSecond, options.latencyMs);
  }

  get port(): number {
    return this.boundPort;
  }

  /** host:port as image references write it. */
  get host(): string {
    return `127.0.0.1:${this.boundPort}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  stats(): LinkStats {
    return { ...this.counters };
  }

  async start(): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => this.accept(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('link: unexpected listen address');
    this.boundPort = addr.port;
  }

  private accept(client: net.Socket): void {
    const { latencyMs, windowBytes } = this.options;
    this.counters.connections++;
    this.counters.open++;
    const centre = net.connect({
      host: this.options.targetHost,
      port: this.options.targetPort,
      allowHalfOpen: true,
      noDelay: true,
    });
    this.sockets.add(client);
    this.sockets.add(centre);
    // The client's first byte may leave once the SYN/SYN-ACK round trip is over.
    const handshakeDone = performance.now() + 2 * latencyMs;
    const toCentre = new Pipe(client, centre, this.up, windowBytes, (n) => {
      this.counters.bytesToCentre += n;
    }, handshakeDone);
    const fromCentre = new Pipe(centre, client, this.down, windowBytes, (n) => {
      this.counters.bytesFromCentre += n;
    }, 0);
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      this.counters.open--;
      toCentre.close();
      fromCentre.close();
      client.destroy();
      centre.destroy();
      this.sockets.delete(client);
      this.sockets.delete(centre);
    };
    client.once('error', close);
    centre.once('error', close);
    let ends = 0;
    // Both directions finished (each side has sent FIN and had its FIN delivered).
    const onClose = (): void => {
      if (++ends === 2) close();
    };
    client.once('close', onClose);
    centre.once('close', onClose);
    // A socket closed outright (reset) tears the pair down.
    client.once('close', (hadError: boolean) => {
      if (hadError) close();
    });
    centre.once('close', (hadError: boolean) => {
      if (hadError) close();
    });
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server === undefined) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

export async function startLink(options: LinkOptions): Promise<Link> {
  const link = new Link(options);
  await link.start();
  return link;
}
