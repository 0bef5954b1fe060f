// The status page of the admin listener, in a real headless Chromium: after a miss, a
// hit and an upstream 500, the page's figures are those of /status.json and /metrics,
// its script keeps it current, and its screenshot is a real picture of it. Also the
// access line's fields and the X-Request-Id round trip through the edge to the upstream.
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from '../helpers/chromium.js';
import { logLines, parseMetric, startEdge } from '../helpers/edge.js';
import { pushBlob } from '../helpers/image.js';
import { decodePng } from '../helpers/png.js';
import { httpRequest, tempDir, waitFor } from '../helpers/proc.js';
import { pushRandomBlob } from '../helpers/random-blob.js';
import { startStack, type Stack } from '../helpers/stack.js';

const repo = 'team/status-page';

interface AccessLine {
  msg?: string;
  path?: string;
  status?: number;
  requestId?: string;
  userAgent?: string;
  upstream?: string;
  origin?: string;
  cache?: string;
  subject?: string;
}

interface Snapshot {
  cache: { sizeBytes: number; maxBytes: number; blobs: number };
  hits: { sinceStart: { hits: number; misses: number; ratio: number | null } };
  bytes: { fromCache: number };
  origins: Array<{ host: string; instances: Array<{ url: string; healthy: boolean; lastFailure?: { reason: string } }> }>;
  errors: Array<{ route: string; status: number; code: string; repository?: string; requestId?: string }>;
  repositories: Array<{ name: string; requests: number }>;
}

describe('status page', () => {
  let stack: Stack;
  let good: { digest: string; size: number };
  let failing: { digest: string };
  const ids = { miss: 'req-miss.1', hit: 'req-hit_2', error: 'req-error-3' };

  before(async () => {
    stack = await startStack('re-status-');
    good = await pushRandomBlob(stack, repo, 300 * 1024);
    failing = await pushRandomBlob(stack, repo, 1024);
    // max_fails 0: the 500 below does not mark the instance down, so its health stays the same while the page is read.
    await stack.edge.stop();
    stack.edge = await startEdge({
      workDir: stack.work,
      configYaml: `upstreams:\n  - url: ${stack.shim.url}\n    max_fails: 0\nlog:\n  level: info\n`,
    });
    const { edge, shim } = stack;
    shim.addFault({ kind: 'status', status: 500, pathPattern: new RegExp(`/blobs/${failing.digest}$`), method: 'GET' });
    const get = (digest: string, id: string) => httpRequest(`${edge.url}/v2/${repo}/blobs/${digest}`, { headers: { 'x-request-id': id, 'user-agent': 'status-test/1.0' } });
    const miss = await get(good.digest, ids.miss);
    // The client has its last byte before the fill is committed: the second GET is a hit only after.
    await waitFor(async () => (await edge.metric('registry_edge_fills_total', { result: 'committed' })) === 1 || undefined, { what: 'the fill to commit' });
    const hit = await get(good.digest, ids.hit);
    const error = await get(failing.digest, ids.error);
    assert.deepEqual([miss.status, hit.status, error.status], [200, 200, 500]);
    assert.deepEqual([miss, hit, error].map((r) => r.headers['x-request-id']), [ids.miss, ids.hit, ids.error], 'each answer, the error too, carries its id');
  });

  after(async () => {
    await stack?.stop();
  });

  test('X-Request-Id: the client\'s sane id is answered back and sent upstream on the fill; an unsafe one is replaced', async () => {
    const { edge, shim } = stack;
    const fill = shim.stats.requests.find((r) => r.method === 'GET' && r.path.endsWith(good.digest));
    assert.equal(fill?.headers['x-request-id'], ids.miss, 'the fill request carries the id of the request that started it');
    const answered = await httpRequest(`${edge.url}/v2/${repo}/blobs/${good.digest}`, { headers: { 'x-request-id': 'no spaces <allowed>' } });
    const made = answered.headers['x-request-id'];
    assert.match(String(made), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'a new UUID replaces it');
    const tags = await httpRequest(`${edge.url}/v2/${repo}/tags/list`, { headers: { 'x-request-id': 'req-forwarded' } });
    assert.equal(tags.headers['x-request-id'], 'req-forwarded');
    const forwarded = shim.stats.requests.find((r) => r.path.startsWith(`/v2/${repo}/tags/list`));
    assert.equal(forwarded?.headers['x-request-id'], 'req-forwarded', 'a forwarded request carries it too');

    // A manifest by tag: the edge's own GET of it upstream carries the id.
    const configFile = path.join(stack.work, 'config.json');
    writeFileSync(configFile, '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
    const config = await pushBlob(stack.registry.url, repo, configFile);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: good.digest, size: good.size }],
    });
    const put = await httpRequest(`${stack.registry.url}/v2/${repo}/manifests/v1`, { method: 'PUT', body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(put.status, 201);
    const got = await httpRequest(`${edge.url}/v2/${repo}/manifests/v1`, { headers: { 'x-request-id': 'req-manifest', accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(got.status, 200);
    const upstreamGet = shim.stats.requests.find((r) => r.path === `/v2/${repo}/manifests/v1`);
    assert.equal(upstreamGet?.headers['x-request-id'], 'req-manifest');
  });

  test('the access line names the request id, user agent, the instance that answered and the origin', async () => {
    const { edge, shim } = stack;
    const lines = await waitFor(() => {
      const all = logLines<AccessLine>(edge.proc.logs()).filter((l) => l.msg === 'request');
      return all.some((l) => l.requestId === ids.error) ? all : undefined;
    }, { what: 'the access lines' });
    const byId = (id: string): AccessLine | undefined => lines.find((l) => l.requestId === id);
    const upstream = new URL(shim.url).host;
    assert.deepEqual(
      [ids.miss, ids.hit, ids.error].map((id) => { const l = byId(id); return [l?.status, l?.cache, l?.userAgent, l?.upstream, l?.origin]; }),
      [
        [200, 'fill', 'status-test/1.0', upstream, ''],
        [200, 'hit', 'status-test/1.0', undefined, ''],
        [500, undefined, 'status-test/1.0', upstream, ''],
      ],
    );
    assert.equal(byId(ids.hit)?.subject, undefined, 'public mode without htpasswd: no subject');
  });

  test('in Chromium, the page shows the figures of /status.json and /metrics, and keeps them current', async () => {
    const { edge, shim } = stack;
    const snapshot = JSON.parse((await httpRequest(`${edge.adminUrl}/status.json`)).body.toString('utf8')) as Snapshot;
    const metrics = (await httpRequest(`${edge.adminUrl}/metrics`)).body.toString('utf8');
    const size = parseMetric(metrics, 'registry_edge_cache_size_bytes');
    const hits = parseMetric(metrics, 'registry_edge_cache_requests_total', { kind: 'blob', result: 'hit' });
    const misses = parseMetric(metrics, 'registry_edge_cache_requests_total', { kind: 'blob', result: 'miss' });
    const saved = parseMetric(metrics, 'registry_edge_served_bytes_total', { source: 'cache' });
    // The JSON agrees with /metrics and with what was done.
    assert.equal(snapshot.cache.sizeBytes, size);
    assert.ok(size >= good.size);
    assert.deepEqual([snapshot.hits.sinceStart.hits, snapshot.hits.sinceStart.misses], [hits, misses]);
    assert.ok(hits >= 1 && misses >= 1);
    assert.equal(snapshot.bytes.fromCache, saved);
    const instance = snapshot.origins[0]?.instances[0];
    assert.equal(instance?.url, shim.url);
    assert.equal(instance?.healthy, true);
    assert.equal(instance?.lastFailure?.reason, 'answered 500');
    const error = snapshot.errors.find((e) => e.requestId === ids.error);
    assert.deepEqual([error?.route, error?.status, error?.code, error?.repository], ['blob', 500, 'upstream 500', repo]);
    assert.equal(snapshot.repositories[0]?.name, repo);

    const { code, stdout: dom } = await chromium(['--virtual-time-budget=5000', '--dump-dom', `${edge.adminUrl}/`]);
    assert.equal(code, 0);
    assert.match(dom, /<body class="live">/, 'the script fetched /status.json and rendered it');
    assert.ok(dom.includes(`id="cache-size" data-bytes="${size}"`), 'cache size as /metrics has it');
    assert.ok(dom.includes(`id="cache-max" data-bytes="${snapshot.cache.maxBytes}"`), 'against the budget');
    assert.ok(dom.includes(`id="hit-ratio" data-ratio="${hits / (hits + misses)}">${((hits / (hits + misses)) * 100).toFixed(1)}%`), 'hit ratio as /metrics gives it');
    assert.ok(dom.includes(`id="bytes-saved" data-bytes="${saved}"`), 'bytes saved');
    assert.match(dom, new RegExp(`<span class="url">${shim.url.replace(/[.:/]/g, '\\$&')}</span></td><td><b class="up" data-health="up">up</b>`), 'the instance and its health');
    assert.ok(dom.includes(`<span class="repo">${repo}</span>`), 'the repository');
    assert.ok(dom.includes('<code>upstream 500</code>') && dom.includes(ids.error), 'the error, with its request id');
  });

  test('a fill in flight is on the page with its progress, and in its screenshot', async (t) => {
    const { edge, shim } = stack;
    const slow = await pushRandomBlob(stack, repo, 2 * 1024 * 1024);
    shim.addFault({ kind: 'slow-body', bytesPerSecond: 512 * 1024, pathPattern: new RegExp(`/blobs/${slow.digest}$`) });
    const pulled = httpRequest(`${edge.url}/v2/${repo}/blobs/${slow.digest}`);
    const fill = await waitFor(async () => {
      const s = JSON.parse((await httpRequest(`${edge.adminUrl}/status.json`)).body.toString('utf8')) as { fills: Array<{ digest: string; receivedBytes: number; size: number }> };
      const f = s.fills.find((x) => x.digest === slow.digest);
      return f && f.receivedBytes > 0 && f.receivedBytes < slow.size ? f : undefined;
    }, { what: 'the fill to be part way' });
    assert.equal(fill.size, slow.size);
    const page = (await httpRequest(`${edge.adminUrl}/`)).body.toString('utf8');
    assert.match(page, new RegExp(`title="${slow.digest}".*<progress value="\\d+" max="${slow.size}"></progress>`));
    const shots = tempDir('re-status-shot-'); // kept: the closing note cites the screenshot
    const png = path.join(shots, 'status.png');
    // Taken while the fill runs (about 4 s): the picture shows one in flight.
    const shot = await chromium(['--virtual-time-budget=5000', `--screenshot=${png}`, '--window-size=1280,900', `${edge.adminUrl}/`]);
    assert.equal(shot.code, 0);
    assert.ok(statSync(png).size > 0);
    const image = decodePng(readFileSync(png));
    assert.deepEqual([image.width, image.height], [1280, 900]);
    assert.ok(image.colours >= 16, `a page, not a blank: ${image.colours} colours`);
    t.diagnostic(`status page screenshot: ${png} (${image.width}x${image.height}, ${image.colours} colours)`);
    assert.equal((await pulled).status, 200);
  });
});
