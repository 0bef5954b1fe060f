/**
 * POST /notify on the admin listener: registry:2 notification envelopes from the centre
 * (its notifications.endpoints[] pointing here, with `Authorization: Bearer
 * <prewarm.token>` in their headers). Answered as soon as the events are queued: the
 * registry waits for the answer, and retries an envelope it gets no 2xx for, blocking the
 * endpoint's later events meanwhile, so only a request that is no envelope at all is refused.
 */
import type { Logger } from '../log/logger.js';
import { isEnvelopeType, parseEnvelope } from '../prewarm/envelope.js';
import type { Notifications } from '../prewarm/notifications.js';
import { admitPost, asyncRoute, sendJson, type AdminRoute } from './admin-request.js';

export interface NotifyDeps {
  readonly token: string;
  readonly maxBody: number;
  readonly notifications: Pick<Notifications, 'accept'>;
  readonly log: Logger;
}

export function notifyRoute(deps: NotifyDeps): AdminRoute {
  return asyncRoute(deps.log, 'notification', async (req, res) => {
    const body = await admitPost(req, res, deps.token, deps.maxBody);
    if (!body) return;
    if (!isEnvelopeType(req.headers['content-type'])) {
      return sendJson(res, 415, { error: 'expected application/vnd.docker.distribution.events.v1+json (or v2)' });
    }
    const events = parseEnvelope(body);
    if (typeof events === 'string') {
      deps.log.warn({ reason: events, bytes: body.length }, 'notification refused: not an envelope');
      return sendJson(res, 400, { error: events });
    }
    sendJson(res, 200, await deps.notifications.accept(events));
  });
}
