// Warming the zone from the centre: the real registry's notifications reach the edge's
// admin listener, and a push alone puts the image's blobs into the edge's cache.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { logLines, startEdge, type Edge } from '../helpers/edge.js';
import { makeOciLayout, pushImage, type ImageInfo } from '../helpers/image.js';
import { freePort, httpRequest, removeDir, run, tempDir, waitFor } from '../helpers/proc.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { startShim, type Shim } from '../helpers/shim.js';

const KiB = 1024;
const ENVELOPE = 'application/vnd.docker.distribution.events.v1+json';

function blobFile(edge: Edge, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return path.join(edge.cacheDir, 'blobs', 'sha256', hex.slice(0, 2), hex);
}

const blobsOf = (image: ImageInfo): string[] => [image.configDigest, ...image.layers.map((l) => l.digest)];

interface Zone {
  readonly work: string;
  readonly registry: Registry;
  readonly shim: Shim;
  readonly edge: Edge;
  stop(): Promise<void>;
}

/** A registry notifying an edge (through no shim) that reads from it through the shim. */
async function startZone(prefix: string, token: string, opts: { registryConfig?: Record<string, unknown>; edgeEnv?: Record<string, string> } = {}): Promise<Zone> {
  const work = tempDir(prefix);
  const stops: Array<() => Promise<void>> = [async () => removeDir(work)];
  const stop = async (): Promise<void> => {
    for (const s of stops.splice(0).reverse()) await s();
  };
  try {
    // The registry is told where to notify before the edge exists: the admin port is chosen first.
    const adminPort = await freePort();
    const registry = await startRegistry({ notify: { url: `http://127.0.0.1:${adminPort}/notify`, token }, ...(opts.registryConfig ? { config: opts.registryConfig } : {}) });
    stops.push(() => registry.dispose());
    const shim = await startShim(registry.url);
    stops.push(() => shim.stop());
    const edge = await startEdge({ workDir: work, upstreams: [shim.url], env: { REGISTRY_EDGE_ADMIN_ADDR: `127.0.0.1:${adminPort}`, REGISTRY_EDGE_PREWARM_TOKEN: token, ...opts.edgeEnv } });
    stops.push(() => edge.stop());
    return { work, registry, shim, edge, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function pushTo(zone: Zone, repo: string, tag: string, layers: number[], creds?: string): Promise<ImageInfo> {
  const image = await makeOciLayout(path.join(zone.work, `${repo.replace(/\//g, '-')}-${tag}`), { layers, tag });
  // Straight to the registry: the shim in front of it sees the edge's requests only.
  await pushImage(image.layoutDir, tag, `${zone.registry.host}/${repo}:${tag}`, creds ? { creds } : {});
  return image;
}

describe('prewarm: a push to the centre warms the edge', () => {
  const token = randomBytes(16).toString('hex');
  let zone: Zone;
  let registry: Registry;
  let shim: Shim;
  let edge: Edge;

  before(async () => {
    zone = await startZone('re-prewarm-', token, { edgeEnv: { REGISTRY_EDGE_PREWARM_EXCLUDE: 'private/**' } });
    ({ registry, shim, edge } = zone);
  });

  after(async () => {
    await zone?.stop();
  });

  const push = (repo: string, tag: string, layers: number[]): Promise<ImageInfo> => pushTo(zone, repo, tag, layers);

  const notify = (body: string, authorization: string | undefined) =>
    httpRequest(`${edge.adminUrl}/notify`, { method: 'POST', headers: { 'content-type': ENVELOPE, ...(authorization ? { authorization } : {}) }, body });

  test('a push makes the image\'s blobs present in the cache without any client pull', async (t) => {
    const image = await push('team/app', '1', [300 * KiB, 200 * KiB]);
    const pushed = Date.now();
    await waitFor(() => blobsOf(image).every((d) => existsSync(blobFile(edge, d))), { timeoutMs: 30_000, what: 'the pushed blobs in the edge\'s cache' });
    t.diagnostic(`push done to every blob cached at the edge: ${Date.now() - pushed} ms (registry notification, queue, 3 blob fills)`);
    for (const digest of blobsOf(image)) assert.equal(shim.stats.blobGets(digest), 1, `one upstream GET of ${digest}, by the prefetch`);
    assert.equal(shim.stats.count('GET', new RegExp(`/manifests/${image.manifestDigest}$`)), 1, 'the manifest fetched by the digest the event named');
    assert.equal(await edge.metric('registry_edge_prewarm_events_total', { result: 'scheduled' }), 1);
    await waitFor(async () => (await edge.metric('registry_edge_prewarm_blobs_total', { result: 'fetched' })) === 3, { what: 'three blobs counted as fetched' });
  });

  test('a replayed event id does nothing: no upstream request, counted duplicate', async () => {
    const queued = logLines<{ msg?: string; eventId?: string; repository?: string; tag?: string; digest?: string }>(edge.proc.logs()).find((l) => l.msg === 'push notified: prefetch queued' && l.repository === 'team/app');
    assert.ok(queued?.eventId, 'the edge logged the event it queued');
    const replay = JSON.stringify({
      events: [{ id: queued.eventId, action: 'push', target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: queued.digest, repository: queued.repository, tag: queued.tag }, request: { host: registry.host } }],
    });
    shim.reset();
    const before = await edge.metric('registry_edge_prewarm_events_total', { result: 'duplicate' });
    const res = await notify(replay, `Bearer ${token}`);
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body.toString('utf8')), { scheduled: 0, duplicate: 1, filtered: 0, ignored: 0, dropped: 0, invalid: 0 });
    assert.equal(await edge.metric('registry_edge_prewarm_events_total', { result: 'duplicate' }), before + 1);
    assert.equal(shim.stats.requests.length, 0, 'nothing was asked of the centre');
  });

  test('a wrong or missing token is 401 and changes nothing', async () => {
    const body = JSON.stringify({ events: [{ id: 'forged-1', action: 'push', target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'a'.repeat(64)}`, repository: 'team/app', tag: 'x' } }] });
    const counted = await edge.metric('registry_edge_prewarm_events_total');
    for (const authorization of [`Bearer ${token}x`, `Basic ${Buffer.from(`edge:${token}`).toString('base64')}`, undefined]) {
      const res = await notify(body, authorization);
      assert.equal(res.status, 401, `refused with ${authorization ?? 'no Authorization'}`);
    }
    assert.equal(await edge.metric('registry_edge_prewarm_events_total'), counted, 'no event was even judged');
    assert.equal(shim.stats.count(undefined, /forged|a{64}/), 0);
  });

  test('what is no envelope is refused (415, 400, 413); a malformed event in an envelope is skipped with 200', async () => {
    const post = (body: string | Buffer, contentType: string) => httpRequest(`${edge.adminUrl}/notify`, { method: 'POST', headers: { 'content-type': contentType, authorization: `Bearer ${token}` }, body });
    assert.equal((await post('{"events": []}', 'text/plain')).status, 415);
    assert.equal((await post('{"events": ', ENVELOPE)).status, 400);
    assert.equal((await post(Buffer.alloc(1024 * 1024 + 1, 0x20), ENVELOPE)).status, 413, 'over prewarm.max_body');
    const before = await edge.metric('registry_edge_prewarm_events_total', { result: 'invalid' });
    const mixed = await post(JSON.stringify({ events: [{ id: 'bad-1', action: 'push', target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', repository: 'team/app', tag: '1', digest: 'sha256:nope' } }, { id: 'pull-1', action: 'pull' }] }), 'application/vnd.docker.distribution.events.v2+json');
    assert.equal(mixed.status, 200);
    assert.deepEqual(JSON.parse(mixed.body.toString('utf8')), { scheduled: 0, duplicate: 0, filtered: 0, ignored: 1, dropped: 0, invalid: 1 });
    assert.equal(await edge.metric('registry_edge_prewarm_events_total', { result: 'invalid' }), before + 1);
  });

  test('without prewarm.token the routes are off: 404', async () => {
    const off = await startEdge({ workDir: zone.work, upstreams: [shim.url], cacheDir: path.join(zone.work, 'cache-off') });
    try {
      for (const route of ['/notify', '/prefetch']) {
        const res = await httpRequest(`${off.adminUrl}${route}`, { method: 'POST', headers: { 'content-type': ENVELOPE, authorization: 'Bearer ' }, body: '{"events": []}' });
        assert.equal(res.status, 404, route);
      }
    } finally {
      await off.stop();
    }
  });

  test('a push excluded by prewarm.exclude is not prefetched', async () => {
    shim.reset();
    const image = await push('private/secret', '1', [100 * KiB]);
    await waitFor(async () => (await edge.metric('registry_edge_prewarm_events_total', { result: 'filtered' })) >= 1, { timeoutMs: 30_000, what: 'the excluded push to be notified' });
    for (const digest of blobsOf(image)) {
      assert.equal(existsSync(blobFile(edge, digest)), false);
      assert.equal(shim.stats.blobGets(digest), 0);
    }
    assert.equal(shim.stats.count(undefined, /private\/secret/), 0, 'the centre was asked nothing of it');
  });
});

describe('prewarm: the prefetch reads as the edge, whatever auth.mode says of clients', () => {
  const token = randomBytes(16).toString('hex');
  let zone: Zone;
  let work: string;

  before(async () => {
    work = tempDir('re-prewarm-htpasswd-');
    const file = path.join(work, 'htpasswd');
    const lines: string[] = [];
    for (const [user, password] of [['edge', 'edge-secret'], ['pusher', 'p']] as const) lines.push((await run('htpasswd', ['-Bbn', user, password])).stdout.trim());
    writeFileSync(file, lines.join('\n') + '\n');
    zone = await startZone('re-prewarm-check-', token, {
      registryConfig: { auth: { htpasswd: { realm: 'central', path: file } } },
      edgeEnv: { REGISTRY_EDGE_AUTH_MODE: 'upstream-check', REGISTRY_EDGE_UPSTREAM_AUTH_USERNAME: 'edge', REGISTRY_EDGE_UPSTREAM_AUTH_PASSWORD: 'edge-secret' },
    });
  });

  after(async () => {
    await zone?.stop();
    if (work) removeDir(work);
  });

  test('upstream-check mode: a push is prefetched with the edge\'s own credentials', async () => {
    const image = await pushTo(zone, 'team/locked', '1', [150 * KiB], 'pusher:p');
    await waitFor(() => blobsOf(image).every((d) => existsSync(blobFile(zone.edge, d))), { timeoutMs: 30_000, what: 'the pushed blobs in the edge\'s cache' });
    const edgeBasic = `Basic ${Buffer.from('edge:edge-secret').toString('base64')}`;
    for (const digest of blobsOf(image)) {
      const gets = zone.shim.stats.matching('GET', new RegExp(`/blobs/${digest}$`));
      assert.ok(gets.some((g) => g.status === 200 && g.authorization === edgeBasic), `${digest} fetched with the edge's credentials`);
    }
  });
});

describe('prewarm with origins: the host the push was sent to chooses the origin', () => {
  const token = randomBytes(16).toString('hex');
  let work: string;
  let registry: Registry;
  let centre: Shim;
  let other: Shim;
  let edge: Edge;

  before(async () => {
    work = tempDir('re-prewarm-origins-');
    const adminPort = await freePort();
    registry = await startRegistry({ notify: { url: `http://127.0.0.1:${adminPort}/notify`, token } });
    centre = await startShim(registry.url);
    other = await startShim(registry.url);
    edge = await startEdge({
      workDir: work,
      configYaml: ['origins:', `  "${registry.host}":`, `    upstreams: [${centre.url}]`, '  mirror.example:', `    upstreams: [${other.url}]`, 'default_origin: mirror.example', ''].join('\n'),
      env: { REGISTRY_EDGE_ADMIN_ADDR: `127.0.0.1:${adminPort}`, REGISTRY_EDGE_PREWARM_TOKEN: token },
    });
  });

  after(async () => {
    await edge?.stop();
    await other?.stop();
    await centre?.stop();
    await registry?.dispose();
    if (work) removeDir(work);
  });

  test('a push to the registry host that is an origin is prefetched from that origin, not the default one', async () => {
    const image = await makeOciLayout(path.join(work, 'img'), { layers: [120 * KiB], tag: '1' });
    await pushImage(image.layoutDir, '1', `${registry.host}/team/app:1`);
    await waitFor(() => blobsOf(image).every((d) => existsSync(blobFile(edge, d))), { timeoutMs: 30_000, what: 'the pushed blobs in the edge\'s cache' });
    for (const digest of blobsOf(image)) assert.equal(centre.stats.blobGets(digest), 1);
    assert.equal(other.stats.requests.filter((r) => r.path.startsWith('/v2/team/')).length, 0, 'the default origin was asked nothing');
    const queued = logLines<{ msg?: string; origin?: string }>(edge.proc.logs()).find((l) => l.msg === 'push notified: prefetch queued');
    assert.equal(queued?.origin, registry.host);
  });
});

describe('prewarm: the queue is bounded', () => {
  const token = randomBytes(16).toString('hex');
  let zone: Zone;

  before(async () => {
    zone = await startZone('re-prewarm-queue-', token, { edgeEnv: { REGISTRY_EDGE_PREWARM_QUEUE: '1', REGISTRY_EDGE_PREWARM_CONCURRENCY: '1' } });
  });

  after(async () => {
    await zone?.stop();
  });

  test('one prefetch runs, one waits, the next push is dropped and counted', async () => {
    const { edge, shim } = zone;
    // The registry's own notification of this push is the first event; it runs slowly.
    shim.setFault({ kind: 'slow-body', pathPattern: /\/blobs\//, bytesPerSecond: 256 * KiB });
    const image = await pushTo(zone, 'team/slow', '1', [768 * KiB]);
    await waitFor(() => shim.stats.requests.some((r) => r.bodyBytes > 0 && /\/blobs\//.test(r.path)), { timeoutMs: 30_000, what: 'the first prefetch to be fetching' });
    const event = (id: string) => ({ id, action: 'push', target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: image.manifestDigest, repository: 'team/slow', tag: '1' } });
    const res = await httpRequest(`${edge.adminUrl}/notify`, { method: 'POST', headers: { 'content-type': ENVELOPE, authorization: `Bearer ${token}` }, body: JSON.stringify({ events: [event('q-1'), event('q-2')] }) });
    assert.equal(res.status, 200, 'a full queue is no reason for the registry to send again');
    assert.deepEqual(JSON.parse(res.body.toString('utf8')), { scheduled: 1, duplicate: 0, filtered: 0, ignored: 0, dropped: 1, invalid: 0 });
    assert.equal(await edge.metric('registry_edge_prewarm_queue_depth'), 1);
    assert.equal(await edge.metric('registry_edge_prewarm_events_total', { result: 'dropped' }), 1);
    assert.ok(logLines<{ msg?: string; key?: string }>(edge.proc.logs()).some((l) => l.key === 'prewarm.queue' && /queue full/.test(l.msg ?? '')), 'a warn line names prewarm.queue');
    shim.setFault(null);
    await waitFor(async () => (await edge.metric('registry_edge_prewarm_queue_depth')) === 0 && blobsOf(image).every((d) => existsSync(blobFile(edge, d))), { timeoutMs: 30_000, what: 'the queue to drain' });
  });
});
