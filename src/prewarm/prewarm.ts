/**
 * Warming the zone from the centre, wired: the notification queue behind POST /notify
 * and the prefetch behind POST /prefetch, over every origin as the edge itself reads it.
 * prewarm.token empty: no routes (both answer 404) and no queue.
 */
import type { Config } from '../config/schema.js';
import { notifyRoute } from '../http/notify-route.js';
import { prefetchRoute } from '../http/prefetch-route.js';
import type { AdminRoute } from '../http/admin-request.js';
import type { Origin, SharedParts } from '../origins.js';
import type { Coordinator } from '../zone/coordinator.js';
import { readsAsEdge } from './edge-reads.js';
import { configuredPlatforms, Notifications } from './notifications.js';
import { Prefetcher } from './prefetcher.js';

export interface Prewarm {
  readonly routes: ReadonlyMap<string, AdminRoute>;
  /** Drops the queued pushes; a running prefetch ends after its current blob. */
  close(): Promise<void>;
}

/** `origins` in the order of config.origins (the default one first). */
export function createPrewarm(config: Config, origins: readonly Origin[], shared: SharedParts, coordinator: Pick<Coordinator, 'claimOnce'>): Prewarm {
  const settings = config.prewarm;
  if (!settings.token) return { routes: new Map(), close: async () => undefined };
  const { metrics, log } = shared;
  const reads = origins.map((origin, i) => readsAsEdge(origin, config.origins[i] as Config['origins'][number], shared));
  const prefetcher = new Prefetcher({ cached: (digest) => shared.blobCache.store.has(digest), onBlob: (result) => metrics.prewarmBlobs.inc({ result }) });
  const notifications = new Notifications({ origins: reads, coordinator, prefetcher, settings, metrics, log });
  const { token, max_body: maxBody } = settings;
  return {
    routes: new Map([
      ['/notify', notifyRoute({ token, maxBody, notifications, log })],
      ['/prefetch', prefetchRoute({ token, maxBody, origins: reads, platforms: configuredPlatforms(settings), prefetcher, log })],
    ]),
    close: () => notifications.close(),
  };
}
