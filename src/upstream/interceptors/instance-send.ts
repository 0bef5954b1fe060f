/**
 * The innermost send of an instance's pipeline: the instance's own keep-alive Pool for
 * its origin, the shared Agent for any other (object storage), each round trip timed
 * in registry_edge_upstream_request_duration_seconds under the instance's label.
 */
import type { Dispatcher } from 'undici';
import type { Metrics } from '../../metrics/metrics.js';
import type { Send } from './exchange.js';

export interface SendTarget {
  readonly origin: string;
  readonly label: string;
  readonly pool: Dispatcher;
}

export function instanceSend(instance: SendTarget, elsewhere: Dispatcher, metrics: Metrics): Send {
  return async ({ origin, path, method, headers, body, signal }) => {
    const started = performance.now();
    const dispatcher = origin === instance.origin ? instance.pool : elsewhere;
    const res = await dispatcher.request({ origin, path, method: method as Dispatcher.HttpMethod, headers, body: body ?? null, signal });
    metrics.upstreamDuration.observe(
      { upstream: instance.label, method, status: `${Math.floor(res.statusCode / 100)}xx` },
      (performance.now() - started) / 1000,
    );
    return res;
  };
}
