// Warming the zone from the centre: the real registry's notifications reach the edge's
// admin listener, and a push alone puts the image's blobs into the edge's cache.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { logLines, startEdge, type Edge } from '../helpers/edge.js';
import { makeOciLayout, pushImage, type ImageInfo } from '../helpers/image.js';
import { freePort, httpRequest, removeDir, tempDir, waitFor } from '../helpers/proc.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { startShim, type Shim } from '../helpers/shim.js';

const KiB = 1024;
const ENVELOPE = 'application/vnd.docker.distribution.events.v1+json';

function blobFile(edge: Edge, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return path.join(edge.cacheDir, 'blobs', 'sha256', hex.slice(0, 2), hex);
}

const blobsOf = (image: ImageInfo): string[] => [image.configDigest, ...image.layers.map((l) => l.digest)];

describe('prewarm: a push to the centre warms the edge', () => {
  const token = randomBytes(16).toString('hex');
  let work: string;
  let registry: Registry;
  let shim: Shim;
  let edge: Edge;

  before(async () => {
    work = tempDir('re-prewarm-');
    // The registry is told where to notify before the edge exists: the admin port is chosen first.
    const adminPort = await freePort();
    registry = await startRegistry({ notify: { url: `http://127.0.0.1:${adminPort}/notify`, token } });
    shim = await startShim(registry.url);
    edge = await startEdge({
      workDir: work,
      upstreams: [shim.url],
      env: { REGISTRY_EDGE_ADMIN_ADDR: `127.0.0.1:${adminPort}`, REGISTRY_EDGE_PREWARM_TOKEN: token, REGISTRY_EDGE_PREWARM_EXCLUDE: 'private/**' },
    });
  });

  after(async () => {
    await edge?.stop();
    await shim?.stop();
    await registry?.dispose();
    if (work) removeDir(work);
  });

  async function push(repo: string, tag: string, layers: number[]): Promise<ImageInfo> {
    const image = await makeOciLayout(path.join(work, `${repo.replace(/\//g, '-')}-${tag}`), { layers, tag });
    // Straight to the registry: the shim in front of it sees the edge's requests only.
    await pushImage(image.layoutDir, tag, `${registry.host}/${repo}:${tag}`);
    return image;
  }

  const notify = (body: string, authorization: string | undefined) =>
    httpRequest(`${edge.adminUrl}/notify`, { method: 'POST', headers: { 'content-type': ENVELOPE, ...(authorization ? { authorization } : {}) }, body });

  test('a push makes the image\'s blobs present in the cache without any client pull', async () => {
    const image = await push('team/app', '1', [300 * KiB, 200 * KiB]);
    await waitFor(() => blobsOf(image).every((d) => existsSync(blobFile(edge, d))), { timeoutMs: 30_000, what: 'the pushed blobs in the edge\'s cache' });
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
    for (const authorization of [`Bearer ${token}x`, `Basic ${Buffer.from(`edge:${token}`).toString('base64')}`, undefined]) {
      const res = await notify(body, authorization);
      assert.equal(res.status, 401, `refused with ${authorization ?? 'no Authorization'}`);
    }
    const events = await httpRequest(`${edge.adminUrl}/metrics`);
    assert.doesNotMatch(events.body.toString('utf8'), /registry_edge_prewarm_events_total\{result="invalid"\} [1-9]/);
    assert.equal(shim.stats.count(undefined, /forged|a{64}/), 0);
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
