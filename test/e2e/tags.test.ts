// Tag revalidation (HEAD after the TTL), stale serving when the upstream is down or failing, and its bound.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startEdge, type Edge } from '../helpers/edge.js';
import { makeOciLayout, pullImage, pushImage, verifyDirPull, type ImageInfo } from '../helpers/image.js';
import { httpRequest, removeDir, tempDir, waitFor } from '../helpers/proc.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { startShim, type Shim } from '../helpers/shim.js';

const MiB = 1024 * 1024;
const OCI = 'application/vnd.oci.image.manifest.v1+json';
const repo = 'team/tags';

describe('tags: TTL, HEAD revalidation, stale when the upstream is down', () => {
  let work: string;
  let registry: Registry;
  let shim: Shim;
  let v1: ImageInfo;
  let v2: ImageInfo;
  const edges: Edge[] = [];

  const edgeWith = async (ttl: string, maxStale: string): Promise<Edge> => {
    const edge = await startEdge({
      workDir: work,
      upstreams: [shim.url],
      cacheDir: path.join(work, `cache-${edges.length}`),
      env: { REGISTRY_EDGE_CACHE_TAG_TTL: ttl, REGISTRY_EDGE_CACHE_MAX_STALE: maxStale },
    });
    edges.push(edge);
    return edge;
  };
  /** The shim's sample of registry_edge_upstream_up, undefined while there is none. */
  const upstreamUp = async (edge: Edge): Promise<number | undefined> => {
    const sample = `registry_edge_upstream_up{origin="",upstream="${new URL(shim.url).host}"} `;
    const line = (await httpRequest(`${edge.adminUrl}/metrics`)).body.toString().split('\n').find((l) => l.startsWith(sample));
    return line === undefined ? undefined : Number(line.slice(sample.length));
  };
  const manifestDigest = async (edge: Edge, tag: string): Promise<{ status: number; digest: unknown }> => {
    const res = await httpRequest(`${edge.url}/v2/${repo}/manifests/${tag}`, { headers: { accept: OCI } });
    return { status: res.status, digest: res.headers['docker-content-digest'] };
  };
  const manifestRequests = (method: string): number => shim.stats.count(method, /\/manifests\/latest$/);

  before(async () => {
    work = tempDir('re-tags-');
    registry = await startRegistry();
    shim = await startShim(registry.url);
    v1 = await makeOciLayout(path.join(work, 'v1'), { layers: [MiB], tag: 'latest' });
    v2 = await makeOciLayout(path.join(work, 'v2'), { layers: [MiB], tag: 'latest' });
    await pushImage(v1.layoutDir, 'latest', `${registry.host}/${repo}:latest`);
  });

  after(async () => {
    for (const e of edges) await e.stop();
    await shim?.stop();
    await registry?.dispose();
    if (work) removeDir(work);
  });

  test('within the TTL a tag is served from the cache; after it, a HEAD revalidates and a moved tag is followed', async () => {
    const edge = await edgeWith('3s', '1h');
    shim.reset();
    assert.deepEqual(await manifestDigest(edge, 'latest'), { status: 200, digest: v1.manifestDigest });
    assert.deepEqual(await manifestDigest(edge, 'latest'), { status: 200, digest: v1.manifestDigest });
    assert.equal(manifestRequests('GET'), 1, 'the second request was a hit within the TTL');
    assert.equal(manifestRequests('HEAD'), 0);

    await pushImage(v2.layoutDir, 'latest', `${registry.host}/${repo}:latest`);
    const moved = await waitFor(
      async () => {
        const r = await manifestDigest(edge, 'latest');
        return r.digest === v2.manifestDigest ? r : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 200, what: 'the edge to follow the moved tag' },
    );
    assert.equal(moved.status, 200);
    assert.ok(manifestRequests('HEAD') >= 1, 'revalidation used HEAD');
    assert.equal(manifestRequests('GET'), 2, 'one GET for the new manifest only');
    const dest = path.join(work, 'pull-v2');
    const pulled = await pullImage(`${edge.host}/${repo}:latest`, dest);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.deepEqual(await verifyDirPull(dest, v2), { ok: true });
    assert.ok(await edge.metric('registry_edge_cache_requests_total', { kind: 'manifest', result: 'hit' }) >= 1);
  });

  test('an unchanged tag past its TTL is revalidated by HEAD alone', async () => {
    const edge = await edgeWith('0s', '1h');
    await pushImage(v2.layoutDir, 'latest', `${registry.host}/${repo}:latest`);
    assert.equal((await manifestDigest(edge, 'latest')).digest, v2.manifestDigest);
    shim.reset();
    for (let i = 0; i < 3; i++) assert.equal((await manifestDigest(edge, 'latest')).digest, v2.manifestDigest);
    assert.equal(manifestRequests('HEAD'), 3);
    assert.equal(manifestRequests('GET'), 0);
    assert.equal(await edge.metric('registry_edge_cache_requests_total', { kind: 'manifest', result: 'revalidated' }), 3);
  });

  test('upstream down: the cached image still pulls (stale tag, cached blobs), with a metric and a warning', async () => {
    const edge = await edgeWith('0s', '1h');
    const warm = await pullImage(`${edge.host}/${repo}:latest`, path.join(work, 'warm'));
    assert.equal(warm.code, 0, warm.stderr);
    await shim.stopListening();
    try {
      const dest = path.join(work, 'offline');
      const offline = await pullImage(`${edge.host}/${repo}:latest`, dest);
      assert.equal(offline.code, 0, offline.stderr);
      assert.deepEqual(await verifyDirPull(dest, v2), { ok: true });
      assert.ok(await edge.metric('registry_edge_stale_served_total') >= 1);
      await waitFor(() => /serving stale tag/.test(edge.proc.logs()), { what: 'the stale warning in the edge log' });
      const ready = await httpRequest(`${edge.adminUrl}/readyz`);
      assert.equal(ready.status, 200, 'still ready: the cache serves while the centre is down');
      assert.deepEqual(JSON.parse(ready.body.toString()), { ready: true, cache: true, upstream: false });
      await waitFor(async () => (await upstreamUp(edge)) === 0, { what: 'registry_edge_upstream_up to say the instance is down' });
      const unknown = await httpRequest(`${edge.url}/v2/${repo}/manifests/never-seen`, { headers: { accept: OCI } });
      assert.equal(unknown.status, 503);
      assert.match(unknown.body.toString(), /UNAVAILABLE/);
    } finally {
      await shim.listenAgain();
    }
    await waitFor(async () => (await upstreamUp(edge)) === 1, { what: 'registry_edge_upstream_up to say the instance is back' });
  });

  test('a membership log lost with the centre down: the tag is asked again, and served stale when the centre does not answer', async () => {
    const edge = await edgeWith('1h', '1h');
    assert.equal((await manifestDigest(edge, 'latest')).status, 200);
    await edge.stop();
    // What a disk that failed the membership appends (or an older cache) leaves behind.
    writeFileSync(path.join(edge.cacheDir, 'membership.log'), '');
    const again = await startEdge({ workDir: work, upstreams: [shim.url], cacheDir: edge.cacheDir });
    edges.push(again);
    await shim.stopListening();
    try {
      const stale = await manifestDigest(again, 'latest');
      assert.equal(stale.status, 200, 'only a DELETE through the edge keeps a cached tag from being served stale');
      assert.ok((await again.metric('registry_edge_stale_served_total')) >= 1);
    } finally {
      await shim.listenAgain();
    }
  });

  test('upstream answering 5xx: the stale tag is served', async () => {
    const edge = await edgeWith('0s', '1h');
    assert.equal((await manifestDigest(edge, 'latest')).status, 200);
    shim.setFault({ kind: 'status', pathPattern: /\/manifests\//, status: 503 });
    try {
      assert.deepEqual(await manifestDigest(edge, 'latest'), { status: 200, digest: v2.manifestDigest });
      assert.equal(await edge.metric('registry_edge_stale_served_total'), 1);
    } finally {
      shim.setFault(null);
    }
  });

  test('past cache.max_stale the edge answers 503 instead of an old mapping', async () => {
    const edge = await edgeWith('0s', '0s');
    assert.equal((await manifestDigest(edge, 'latest')).status, 200);
    await shim.stopListening();
    try {
      const res = await httpRequest(`${edge.url}/v2/${repo}/manifests/latest`, { headers: { accept: OCI } });
      assert.equal(res.status, 503);
      assert.match(res.body.toString(), /max_stale/);
    } finally {
      await shim.listenAgain();
    }
  });

  test('a tag deleted upstream is forgotten on revalidation', async () => {
    const edge = await edgeWith('0s', '1h');
    await pushImage(v1.layoutDir, 'latest', `${registry.host}/${repo}:gone`);
    const res = await httpRequest(`${edge.url}/v2/${repo}/manifests/gone`, { headers: { accept: OCI } });
    assert.equal(res.status, 200);
    const del = await httpRequest(`${registry.url}/v2/${repo}/manifests/${v1.manifestDigest}`, { method: 'DELETE' });
    assert.equal(del.status, 202);
    const after404 = await httpRequest(`${edge.url}/v2/${repo}/manifests/gone`, { headers: { accept: OCI } });
    assert.equal(after404.status, 404);
    assert.match(after404.body.toString(), /MANIFEST_UNKNOWN/);
  });
});
