/**
 * The coordinator an edge runs with: the zone's Redis when zone.redis.url is set, else
 * the lone edge's. A Redis that does not answer at start does not hold the start up:
 * the edge begins alone and joins the zone when Redis answers.
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Coordinator } from './coordinator.js';
import { RedisCoordinator } from './redis.js';
import { SoloCoordinator } from './solo.js';

const ms = (seconds: number): number => Math.round(seconds * 1000);

/** `peerUrl`: how the zone's other replicas reach this one (zone.peer.url); '' takes no fill leases. */
export async function createCoordinator(config: Config, metrics: Metrics, log: Logger, peerUrl = ''): Promise<Coordinator> {
  const { redis, lease_ttl: leaseTtl, warn_interval: warnInterval } = config.zone;
  if (!redis.url) return new SoloCoordinator();
  const zone = new RedisCoordinator(
    {
      url: redis.url,
      prefix: redis.prefix,
      timeoutMs: ms(redis.timeout),
      leaseTtlMs: ms(leaseTtl),
      warnIntervalMs: ms(warnInterval),
      reconnectMaxMs: ms(redis.reconnect_max),
      peerUrl,
    },
    metrics,
    log,
  );
  if (await zone.ready(ms(redis.timeout))) log.info({ redis: new URL(redis.url).host, prefix: redis.prefix, fillLeases: peerUrl !== '' }, 'zone sharing through Redis');
  return zone;
}
