/**
 * This replica's side of the zone's peers: the fill sources that read other replicas
 * (one undici Agent for all of them) and, with zone.peer.addr, the peer listener that
 * serves them, with the client listeners' limits (http.*) and optionally their TLS pair.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Agent } from 'undici';
import type { BlobCache } from '../cache/blob-cache.js';
import type { ManifestStore } from '../cache/manifest-store.js';
import { underKey } from '../config/problem.js';
import type { Config } from '../config/schema.js';
import { clientServerOptions, closeServer, listen } from '../http/listen.js';
import { TlsListener } from '../http/tls.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Coordinator } from './coordinator.js';
import { createPeerHandler } from './peer-server.js';
import { PeerRegistry } from './peer-registry.js';
import { ZoneFills } from './zone-fills.js';

export interface ZonePeersParts {
  readonly config: Config;
  readonly coordinator: Coordinator;
  readonly blobCache: BlobCache;
  readonly manifestStore: ManifestStore;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** A cluster worker's own listener, not one shared with the other workers. */
  readonly exclusive?: boolean;
}

export interface ZonePeers {
  readonly fills: ZoneFills;
  /** Starts the peer listener (none without zone.peer.addr); resolves with its bound address. */
  listen(): Promise<string | undefined>;
  /** Loads the TLS pair again when the listener serves it. */
  reload(): Promise<void>;
  /** Stops accepting; peers still reading get until `graceMs`, then their connections are cut. */
  stopListening(graceMs: number): Promise<void>;
  /** Once the fills have settled: lets go of the connections to other peers. */
  close(): Promise<void>;
  /** Past the shutdown deadline: cuts every peer connection both ways (fills reading from a peer fail and remove their temp files). */
  destroy(): Promise<void>;
}

const ms = (seconds: number): number => Math.round(seconds * 1000);

export async function createZonePeers(parts: ZonePeersParts): Promise<ZonePeers> {
  const { config, metrics, log } = parts;
  const { peer, secret } = config.zone;
  const timeoutMs = ms(peer.timeout);
  const agent = new Agent({ connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: ms(config.http.body_timeout) });
  const peerOptions = { secret, timeoutMs, maxManifestBytes: config.cache.manifest_max_bytes, dispatcher: agent };
  const fills = new ZoneFills(
    parts.coordinator,
    (url) => new PeerRegistry(url, peerOptions),
    { onClaim: (result) => metrics.zoneLeases.inc({ result }), onPeerFill: (result) => metrics.zonePeerFills.inc({ result }) },
    log,
    ms(config.zone.facts_ttl),
  );
  let server: Server | undefined;
  let tls: TlsListener | undefined;
  let draining = false;
  if (peer.addr) {
    const serve = createPeerHandler({
      blobCache: parts.blobCache,
      manifests: parts.manifestStore,
      secret,
      onServedBytes: (n) => metrics.zonePeerServedBytes.inc(n),
      log: log.child({ listener: 'zone.peer' }),
    });
    // Peers keep their connections alive: once stopping, each answer is the connection's last.
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      if (draining) res.setHeader('connection', 'close');
      // An answer already under way when stopping began leaves an idle connection behind it.
      res.once('close', () => void (draining && setImmediate(() => server?.closeIdleConnections())));
      serve(req, res);
    };
    const options = clientServerOptions(ms(config.http.headers_timeout), ms(config.http.idle_timeout));
    const { certificate, key } = config.http.tls;
    tls = peer.tls ? await underKey('zone.peer.tls', `cannot load ${certificate} with ${key}`, TlsListener.create({ certificate, key }, options, handler, log)) : undefined;
    server = tls?.server ?? createServer(options, handler);
    server.setTimeout(ms(config.http.body_timeout));
  }
  return {
    fills,
    async listen() {
      if (!server) return undefined;
      const address = await underKey('zone.peer.addr', `cannot listen on ${peer.addr}`, listen(server, peer.addr, parts.exclusive));
      server.on('error', (err) => log.error({ err, key: 'zone.peer.addr' }, 'peer listener error'));
      return address;
    },
    reload: async () => void (await tls?.reload('reload')),
    async stopListening(graceMs) {
      draining = true;
      tls?.stopWatching();
      if (server?.listening) await closeServer(server, graceMs);
    },
    close: () => agent.close(),
    async destroy() {
      server?.closeAllConnections();
      await agent.destroy();
    },
  };
}
