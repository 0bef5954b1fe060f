// One replica of a zone: the real edge with its peer listener on a free port and the
// zone's Redis (or none: a lone edge with the same settings, for comparisons).
import { mkdirSync } from 'node:fs';
import { startEdge, type Edge } from './edge.js';
import { onFreePort } from './proc.js';

export interface ZoneReplica {
  readonly edge: Edge;
  /** Its zone.peer.url. */
  readonly peerUrl: string;
}

export interface ZoneReplicaOptions {
  readonly workDir: string;
  readonly upstream: string;
  /** undefined: no zone.redis.url (the replica works alone). */
  readonly redisUrl: string | undefined;
  readonly secret: string;
  /** More REGISTRY_EDGE_* variables. */
  readonly env?: Record<string, string>;
}

export async function startZoneReplica(opts: ZoneReplicaOptions): Promise<ZoneReplica> {
  mkdirSync(opts.workDir, { recursive: true });
  const { server } = await onFreePort(async (port) => {
    const peerUrl = `http://127.0.0.1:${port}`;
    const edge = await startEdge({
      workDir: opts.workDir,
      upstreams: [opts.upstream],
      env: {
        REGISTRY_EDGE_CACHE_FSYNC: 'false',
        ...(opts.redisUrl ? { REGISTRY_EDGE_ZONE_REDIS_URL: opts.redisUrl } : {}),
        REGISTRY_EDGE_ZONE_PEER_ADDR: `127.0.0.1:${port}`,
        REGISTRY_EDGE_ZONE_PEER_URL: peerUrl,
        REGISTRY_EDGE_ZONE_SECRET: opts.secret,
        ...opts.env,
      },
    });
    return { edge, peerUrl };
  });
  return server;
}
