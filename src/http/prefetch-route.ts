/**
 * POST /prefetch on the admin listener (`registry-edge prefetch`): `{"images": [...],
 * "platforms": [...]}` (platforms left out: prewarm.platforms), prefetched now, one image
 * after the other, with the progress streamed back as NDJSON (src/prewarm/progress.ts)
 * and a summary line last. A client that goes away stops the prefetch before its next blob.
 */
import type { ServerResponse } from 'node:http';
import { parseImageRef } from '../prewarm/image-ref.js';
import { parsePlatform, type Platform } from '../prewarm/platforms.js';
import type { PrefetchOrigin, Prefetcher, PrefetchTarget } from '../prewarm/prefetcher.js';
import { addTallies, EMPTY_TALLY, type ProgressEvent } from '../prewarm/progress.js';
import type { Logger } from '../log/logger.js';
import { admitPost, asyncRoute, sendJson, type AdminRoute } from './admin-request.js';

export interface PrefetchDeps {
  readonly token: string;
  readonly maxBody: number;
  /** The default origin first. */
  readonly origins: readonly PrefetchOrigin[];
  readonly platforms: readonly Platform[];
  readonly prefetcher: Prefetcher;
  readonly log: Logger;
}

type Request = { readonly targets: PrefetchTarget[]; readonly platforms: readonly Platform[] };

/** The request's images and platforms, or what is wrong with it. */
function parseRequest(body: Buffer, deps: PrefetchDeps): Request | string {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return 'the body is not JSON';
  }
  const { images, platforms } = (typeof doc === 'object' && doc !== null ? doc : {}) as { images?: unknown; platforms?: unknown };
  if (!Array.isArray(images) || images.length === 0 || !images.every((i) => typeof i === 'string')) return 'images must be a non-empty list of image references';
  if (platforms !== undefined && (!Array.isArray(platforms) || !platforms.every((p) => typeof p === 'string'))) return 'platforms must be a list of os/arch';
  const wanted: Platform[] = [];
  for (const text of (platforms as string[] | undefined) ?? []) {
    const platform = parsePlatform(text);
    if (!platform) return `${text} is not a platform (os/arch or os/arch/variant)`;
    wanted.push(platform);
  }
  const byHost = new Map(deps.origins.filter((o) => o.host).map((o) => [o.host, o]));
  const targets: PrefetchTarget[] = [];
  for (const image of images as string[]) {
    const ref = parseImageRef(image, new Set(byHost.keys()));
    if (typeof ref === 'string') return ref;
    targets.push({ origin: byHost.get(ref.host) ?? (deps.origins[0] as PrefetchOrigin), name: ref.name, reference: ref.reference, image });
  }
  return { targets, platforms: platforms === undefined ? deps.platforms : wanted };
}

/** One NDJSON line; a progress line is skipped while the client is behind (the next one says more), the others are few and always sent while it is there. */
function write(res: ServerResponse, event: ProgressEvent): void {
  if (res.destroyed || (event.event === 'blob' && event.state === 'bytes' && res.writableNeedDrain)) return;
  res.write(JSON.stringify(event) + '\n');
}

export function prefetchRoute(deps: PrefetchDeps): AdminRoute {
  return asyncRoute(deps.log, 'prefetch request', async (req, res) => {
    const body = await admitPost(req, res, deps.token, deps.maxBody);
    if (!body) return;
    const parsed = parseRequest(body, deps);
    if (typeof parsed === 'string') return sendJson(res, 400, { error: parsed });
    const gone = new AbortController();
    res.once('close', () => gone.abort());
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    let tally = EMPTY_TALLY;
    for (const target of parsed.targets) {
      if (gone.signal.aborted) break;
      tally = addTallies(tally, await deps.prefetcher.run(target, parsed.platforms, (e) => write(res, e), gone.signal));
    }
    deps.log.info({ images: parsed.targets.map((t) => t.image), ...tally }, 'prefetch requested on the admin listener done');
    res.end(JSON.stringify({ event: 'summary', ...tally } satisfies ProgressEvent) + '\n');
  });
}
