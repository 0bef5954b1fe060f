/**
 * The centre's pushes, turned into prefetches: each event of a notification envelope is
 * judged (a tagged manifest push of a repository prewarm.include admits and
 * prewarm.exclude does not), claimed once zone-wide by its id (the registry retries and
 * may deliver twice; with Redis one replica takes it), and queued; the queue prefetches
 * prewarm.concurrency images at once. A push is prefetched by the digest the event names,
 * never by its tag: the edge's mapping of the tag may still be the previous push's.
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Coordinator } from '../zone/coordinator.js';
import type { JudgedEvent, TaggedPush } from './envelope.js';
import type { PrefetchOrigin, Prefetcher, PrefetchTarget } from './prefetcher.js';
import { parsePlatform, type Platform } from './platforms.js';
import { Selection } from './selection.js';
import { WorkQueue } from './work-queue.js';

export type EventResult = 'scheduled' | 'duplicate' | 'filtered' | 'ignored' | 'dropped' | 'invalid';

export interface NotificationDeps {
  /** The default origin first. */
  readonly origins: readonly PrefetchOrigin[];
  readonly coordinator: Pick<Coordinator, 'claimOnce'>;
  readonly prefetcher: Prefetcher;
  readonly settings: Config['prewarm'];
  readonly metrics: Metrics;
  readonly log: Logger;
}

/** Config durations are seconds. */
const ms = (seconds: number): number => Math.round(seconds * 1000);

/** `prewarm.platforms`, which the loader has checked. */
export function configuredPlatforms(settings: Config['prewarm']): Platform[] {
  return settings.platforms.map(parsePlatform).filter((p): p is Platform => p !== undefined);
}

export class Notifications {
  private readonly deps: NotificationDeps;
  private readonly selection: Selection;
  private readonly platforms: readonly Platform[];
  private readonly queue: WorkQueue<{ push: TaggedPush; target: PrefetchTarget }>;

  constructor(deps: NotificationDeps) {
    this.deps = deps;
    const { settings, metrics } = deps;
    this.selection = new Selection(settings.include, settings.exclude);
    this.platforms = configuredPlatforms(settings);
    this.queue = new WorkQueue({ capacity: settings.queue, concurrency: settings.concurrency }, (job, signal) => this.prefetch(job.push, job.target, signal), (n) => metrics.prewarmQueueDepth.set(n));
  }

  /** Judges and queues every event; answers at once (the registry waits for it), the prefetches run behind. */
  async accept(events: readonly JudgedEvent[]): Promise<Record<EventResult, number>> {
    const counts: Record<EventResult, number> = { scheduled: 0, duplicate: 0, filtered: 0, ignored: 0, dropped: 0, invalid: 0 };
    for (const event of events) {
      const result = await this.one(event);
      counts[result]++;
      this.deps.metrics.prewarmEvents.inc({ result });
    }
    return counts;
  }

  private async one(event: JudgedEvent): Promise<EventResult> {
    const { log, settings } = this.deps;
    if (event.kind === 'invalid') {
      log.warn({ reason: event.reason }, 'notification event refused: not a registry event');
      return 'invalid';
    }
    if (event.kind === 'ignored') return 'ignored';
    const context = { eventId: event.id, repository: event.repository, tag: event.tag, digest: event.digest.value };
    if (!this.selection.admits(event.repository, event.tag)) {
      log.debug(context, 'push not prefetched: outside prewarm.include / prewarm.exclude');
      return 'filtered';
    }
    // Checked before the claim, so a push dropped while the queue is full is not remembered as done.
    if (this.queue.full) return this.dropped(context);
    if (!(await this.deps.coordinator.claimOnce(`prewarm:${event.id}`, ms(settings.dedupe_ttl)))) {
      log.debug(context, 'notification event already taken (a redelivery, or another replica has it)');
      return 'duplicate';
    }
    const origin = this.originFor(event.hosts);
    const image = `${origin.host ? `${origin.host}/` : ''}${event.repository}:${event.tag}@${event.digest.value}`;
    const target: PrefetchTarget = { origin, name: event.repository, reference: { kind: 'digest', digest: event.digest }, image };
    if (!this.queue.offer({ push: event, target })) return this.dropped(context);
    log.info({ ...context, origin: origin.host }, 'push notified: prefetch queued');
    return 'scheduled';
  }

  private dropped(context: Record<string, string>): EventResult {
    this.deps.log.warn({ ...context, key: 'prewarm.queue', queue: this.deps.settings.queue }, 'prefetch queue full: push dropped, its image is fetched at its first pull');
    return 'dropped';
  }

  /** The origin whose host the event names (the push's Host, or its target URL's), else the default one. */
  private originFor(hosts: readonly string[]): PrefetchOrigin {
    const { origins } = this.deps;
    for (const host of hosts) {
      const found = origins.find((o) => o.host !== '' && o.host === host);
      if (found) return found;
    }
    return origins[0] as PrefetchOrigin;
  }

  private async prefetch(push: TaggedPush, target: PrefetchTarget, signal: AbortSignal): Promise<void> {
    const { log } = this.deps;
    const context = { eventId: push.id, repository: push.repository, tag: push.tag, digest: push.digest.value, origin: target.origin.host };
    const tally = await this.deps.prefetcher.run(
      target,
      this.platforms,
      (e) => {
        if (e.event === 'image_failed') log.warn({ ...context, err: e.error }, 'prefetch failed: the manifest could not be read');
        else if (e.event === 'blob' && e.state === 'failed') log.warn({ ...context, blob: e.digest, err: e.error }, 'prefetch of a blob failed');
      },
      signal,
    );
    if (signal.aborted) log.info({ ...context, ...tally }, 'prefetch cut short: the edge is stopping');
    else log.info({ ...context, ...tally }, 'prefetch done');
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}
