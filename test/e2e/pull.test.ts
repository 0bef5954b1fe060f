// A real registry behind a counting shim, the real edge in front, skopeo as the client.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Edge } from '../helpers/edge.js';
import { makeOciLayout, pullImage, pushBlob, pushImage, randomFile, verifyDirPull, type ImageInfo } from '../helpers/image.js';
import { httpRequest, waitFor } from '../helpers/proc.js';
import type { Registry } from '../helpers/registry.js';
import type { Shim } from '../helpers/shim.js';
import { startStack, type Stack } from '../helpers/stack.js';

const MiB = 1024 * 1024;

/** GET with the request target sent byte for byte (URL parsers would resolve `..` first). */
function rawGet(host: string, target: string): Promise<{ status: number; body: Buffer }> {
  const [hostname, port] = host.split(':');
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname ?? '127.0.0.1', () => {
      socket.end(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('error', reject);
    socket.once('end', () => {
      const raw = Buffer.concat(chunks);
      const split = raw.indexOf('\r\n\r\n');
      resolve({ status: Number(raw.subarray(9, 12).toString()), body: raw.subarray(split + 4) });
    });
  });
}
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

describe('pull-through: images, manifests, ranges, pass-through routes, errors', () => {
  let stack: Stack;
  let work: string;
  let registry: Registry;
  let shim: Shim;
  let edge: Edge;
  let image: ImageInfo;
  let pulls = 0;
  const repo = 'team/app';
  const pullDir = (): string => path.join(work, `pull-${++pulls}`);
  const layerBytes = (): number => image.layers.reduce((a, l) => a + l.size, 0);

  before(async () => {
    stack = await startStack('re-pull-', {
      before: async (s) => {
        image = await makeOciLayout(path.join(s.work, 'layout'), { layers: [2 * MiB, 6 * MiB, 512 * 1024], tag: '1.0' });
        await pushImage(image.layoutDir, '1.0', `${s.registry.host}/${repo}:1.0`);
        await pushImage(image.layoutDir, '1.0', `${s.registry.host}/${repo}:docker`, { format: 'v2s2' });
      },
    });
    ({ work, registry, shim, edge } = stack);
  });

  after(async () => {
    await stack?.stop();
  });

  test('an image pulls through the edge twice; the second pull moves no blob bytes from upstream', async (t) => {
    const direct = await pullImage(`${registry.host}/${repo}:1.0`, pullDir());
    assert.equal(direct.code, 0, direct.stderr);
    shim.reset();
    const coldDir = pullDir();
    const cold = await pullImage(`${edge.host}/${repo}:1.0`, coldDir);
    assert.equal(cold.code, 0, cold.stderr);
    assert.deepEqual(await verifyDirPull(coldDir, image), { ok: true });
    const coldBlobBytes = shim.stats.blobBodyBytes;
    assert.ok(coldBlobBytes >= layerBytes(), `cold pull fetched ${coldBlobBytes} blob bytes`);
    for (const l of image.layers) assert.equal(shim.stats.blobGets(l.digest), 1, `one upstream GET for ${l.digest}`);

    shim.reset();
    const warmDir = pullDir();
    const warm = await pullImage(`${edge.host}/${repo}:1.0`, warmDir);
    assert.equal(warm.code, 0, warm.stderr);
    assert.deepEqual(await verifyDirPull(warmDir, image), { ok: true });
    assert.equal(shim.stats.blobGets(), 0, 'no blob request reaches the upstream on a warm pull');
    assert.equal(shim.stats.blobBodyBytes, 0);
    // Counted when each response closes, which may be just after the client has its bytes.
    await waitFor(async () => (await edge.metric('registry_edge_cache_requests_total', { kind: 'blob', result: 'hit' })) >= image.layers.length, { what: 'the hits to be counted' });
    t.diagnostic(`pull of ${(layerBytes() / MiB).toFixed(1)} MiB: direct ${direct.seconds.toFixed(3)} s, cold ${cold.seconds.toFixed(3)} s, warm ${warm.seconds.toFixed(3)} s; upstream blob bytes cold ${coldBlobBytes}, warm ${shim.stats.blobBodyBytes}`);
  });

  test('committed blobs are on disk under their digest and hash to it', async () => {
    for (const l of image.layers) {
      const hex = l.digest.slice('sha256:'.length);
      const file = path.join(edge.cacheDir, 'blobs', 'sha256', hex.slice(0, 2), hex);
      await waitFor(() => existsSync(file), { what: `${file} to be committed` });
      assert.equal(createHash('sha256').update(readFileSync(file)).digest('hex'), hex);
    }
  });

  test('a Docker v2 schema 2 image pulls too, and manifests keep their exact bytes and type', async () => {
    const dest = pullDir();
    const r = await pullImage(`${edge.host}/${repo}:docker`, dest);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await verifyDirPull(dest, image), { ok: true });
    const upstream = await httpRequest(`${registry.url}/v2/${repo}/manifests/docker`, { headers: { accept: DOCKER_MANIFEST } });
    const viaEdge = await httpRequest(`${edge.url}/v2/${repo}/manifests/docker`, { headers: { accept: DOCKER_MANIFEST } });
    assert.equal(viaEdge.status, 200);
    assert.equal(viaEdge.headers['content-type'], DOCKER_MANIFEST);
    assert.equal(viaEdge.headers['docker-content-digest'], upstream.headers['docker-content-digest']);
    assert.deepEqual(viaEdge.body, upstream.body);
  });

  test('a manifest by digest is served from the cache with its exact bytes, HEAD included', async () => {
    shim.reset();
    const get = await httpRequest(`${edge.url}/v2/${repo}/manifests/${image.manifestDigest}`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(get.status, 200);
    assert.deepEqual(get.body, image.manifestBytes);
    assert.equal(get.headers['docker-content-digest'], image.manifestDigest);
    assert.equal(get.headers['content-type'], OCI_MANIFEST);
    const head = await httpRequest(`${edge.url}/v2/${repo}/manifests/${image.manifestDigest}`, { method: 'HEAD', headers: { accept: OCI_MANIFEST } });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(image.manifestBytes.length));
    assert.equal(head.body.length, 0);
    assert.equal(shim.stats.count(undefined, /\/manifests\//), 0, 'served without asking the upstream');
  });

  test('Accept is honoured: a cached OCI manifest is not served to a client that accepts only Docker types', async () => {
    const res = await httpRequest(`${edge.url}/v2/${repo}/manifests/1.0`, { headers: { accept: DOCKER_MANIFEST } });
    // The upstream decides for such a client; registry:2 refuses an OCI manifest to it.
    assert.notEqual(res.headers['content-type'], OCI_MANIFEST);
    assert.equal(res.status, 404);
    assert.match(res.body.toString(), /MANIFEST_UNKNOWN/);
    const ok = await httpRequest(`${edge.url}/v2/${repo}/manifests/1.0`, { headers: { accept: `${DOCKER_MANIFEST}, ${OCI_MANIFEST}` } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['content-type'], OCI_MANIFEST);
  });

  test('blob headers and single Range requests: 206, suffix, open end, 416', async () => {
    const layer = image.layers[0];
    assert.ok(layer);
    const whole = readFileSync(layer.path);
    const url = `${edge.url}/v2/${repo}/blobs/${layer.digest}`;
    const head = await httpRequest(url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(layer.size));
    assert.equal(head.headers['docker-content-digest'], layer.digest);
    assert.equal(head.headers.etag, `"${layer.digest}"`);
    assert.equal(head.headers['accept-ranges'], 'bytes');

    const mid = await httpRequest(url, { headers: { range: 'bytes=1000-1999' } });
    assert.equal(mid.status, 206);
    assert.equal(mid.headers['content-range'], `bytes 1000-1999/${layer.size}`);
    assert.deepEqual(mid.body, whole.subarray(1000, 2000));
    const suffix = await httpRequest(url, { headers: { range: 'bytes=-100' } });
    assert.equal(suffix.status, 206);
    assert.deepEqual(suffix.body, whole.subarray(layer.size - 100));
    const open = await httpRequest(url, { headers: { range: `bytes=${layer.size - 10}-` } });
    assert.deepEqual(open.body, whole.subarray(layer.size - 10));
    const beyond = await httpRequest(url, { headers: { range: `bytes=${layer.size}-` } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers['content-range'], `bytes */${layer.size}`);
    const multi = await httpRequest(url, { headers: { range: 'bytes=0-1,5-6' } });
    assert.equal(multi.status, 200, 'several ranges may be ignored: the whole blob');
    assert.equal(multi.body.length, layer.size);
  });

  test('a Range request on a cold blob is answered from the fill and the whole blob is cached', async () => {
    const file = path.join(work, 'cold-range.bin');
    const digest = await randomFile(file, 3 * MiB);
    await pushBlob(registry.url, repo, file);
    shim.reset();
    const res = await httpRequest(`${edge.url}/v2/${repo}/blobs/${digest}`, { headers: { range: 'bytes=2097152-2097251' } });
    assert.equal(res.status, 206);
    assert.deepEqual(res.body, readFileSync(file).subarray(2097152, 2097252));
    const again = await httpRequest(`${edge.url}/v2/${repo}/blobs/${digest}`);
    assert.equal(createHash('sha256').update(again.body).digest('hex'), digest.slice(7));
    assert.equal(shim.stats.blobGets(digest), 1);
  });

  test('tags/list and _catalog pass through with pagination Link headers intact', async () => {
    const tags = await httpRequest(`${edge.url}/v2/${repo}/tags/list`);
    assert.equal(tags.status, 200);
    const listed = JSON.parse(tags.body.toString()) as { name: string; tags: string[] };
    assert.deepEqual({ name: listed.name, tags: [...listed.tags].sort() }, { name: repo, tags: ['1.0', 'docker'] });
    await pushImage(image.layoutDir, '1.0', `${registry.host}/team/other:1.0`);
    const up = await httpRequest(`${registry.url}/v2/_catalog?n=1`);
    const viaEdge = await httpRequest(`${edge.url}/v2/_catalog?n=1`);
    assert.equal(viaEdge.status, 200);
    assert.ok(up.headers.link, 'the upstream paginates');
    assert.equal(viaEdge.headers.link, up.headers.link);
    assert.deepEqual(JSON.parse(viaEdge.body.toString()), { repositories: [repo] });
    const next = /<([^>]+)>/.exec(String(viaEdge.headers.link))?.[1] ?? '';
    const page2 = await httpRequest(`${edge.url}${next}`);
    assert.equal(page2.status, 200);
    assert.deepEqual(JSON.parse(page2.body.toString()), { repositories: ['team/other'] });
  });

  test('malformed names, references and digests get the spec error codes and never reach the upstream', async () => {
    const zero = '0'.repeat(64);
    const cases: Array<[string, number, string]> = [
      [`/v2/Team/App/blobs/sha256:${zero}`, 400, 'NAME_INVALID'],
      [`/v2/../../etc/blobs/sha256:${zero}`, 400, 'NAME_INVALID'],
      [`/v2/team/%2e%2e/blobs/sha256:${zero}`, 400, 'NAME_INVALID'],
      [`/v2/team//app/manifests/latest`, 400, 'NAME_INVALID'],
      [`/v2/-team/manifests/latest`, 400, 'NAME_INVALID'],
      [`/v2/${'a'.repeat(256)}/manifests/latest`, 400, 'NAME_INVALID'],
      [`/v2/${repo}/blobs/sha256:abc`, 400, 'DIGEST_INVALID'],
      [`/v2/${repo}/blobs/md5:${'0'.repeat(32)}`, 400, 'DIGEST_INVALID'],
      [`/v2/${repo}/blobs/sha256:${'G'.repeat(64)}`, 400, 'DIGEST_INVALID'],
      [`/v2/${repo}/blobs/sha512:${zero}`, 400, 'DIGEST_INVALID'],
      [`/v2/${repo}/blobs/..%2f..%2fetc%2fpasswd`, 404, 'BLOB_UNKNOWN'],
      [`/v2/${repo}/manifests/sha256:${zero.slice(1)}`, 400, 'DIGEST_INVALID'],
      [`/v2/${repo}/manifests/${'t'.repeat(129)}`, 404, 'MANIFEST_UNKNOWN'],
      [`/v2/${repo}/manifests/.hidden`, 404, 'MANIFEST_UNKNOWN'],
      [`/v2/${repo}/manifests/bad%tag`, 400, 'NAME_INVALID'],
    ];
    shim.reset();
    for (const [p, status, code] of cases) {
      const res = await rawGet(edge.host, p);
      assert.equal(res.status, status, p);
      const body = JSON.parse(res.body.toString()) as { errors: Array<{ code: string; message: string }> };
      assert.equal(body.errors[0]?.code, code, p);
      assert.ok(body.errors[0]?.message, p);
    }
    assert.equal(shim.stats.requests.length, 0, 'nothing malformed was forwarded');
  });

  test('unknown content gets the upstream verdict; methods a route does not have get UNSUPPORTED', async () => {
    const blob = await httpRequest(`${edge.url}/v2/${repo}/blobs/sha256:${'1'.repeat(64)}`);
    assert.equal(blob.status, 404);
    assert.match(blob.body.toString(), /BLOB_UNKNOWN/);
    const manifest = await httpRequest(`${edge.url}/v2/${repo}/manifests/nope`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(manifest.status, 404);
    assert.match(manifest.body.toString(), /MANIFEST_UNKNOWN/);
    for (const [method, p] of [['PATCH', `/v2/${repo}/manifests/1.0`], ['POST', '/v2/'], ['DELETE', `/v2/${repo}/tags/list`]] as const) {
      const res = await httpRequest(`${edge.url}${p}`, { method });
      assert.equal(res.status, 405, `${method} ${p}`);
      assert.match(res.body.toString(), /UNSUPPORTED/);
    }
    const other = await httpRequest(`${edge.url}/etc/passwd`);
    assert.equal(other.status, 404);
    assert.ok(JSON.parse(other.body.toString()).errors);
  });

  test('admin listener: /healthz, /readyz and /metrics', async () => {
    assert.equal((await httpRequest(`${edge.adminUrl}/healthz`)).status, 200);
    const ready = await httpRequest(`${edge.adminUrl}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(JSON.parse(ready.body.toString()), { ready: true, cache: true, upstream: true });
    assert.ok(await edge.metric('registry_edge_http_requests_total', { route: 'blob', status: '200' }) > 0);
    assert.ok(await edge.metric('registry_edge_cache_size_bytes') >= layerBytes());
    assert.ok(await edge.metric('registry_edge_upstream_request_duration_seconds_count') > 0);
    assert.ok(await edge.metric('registry_edge_served_bytes_total', { source: 'cache' }) > 0);
    await waitFor(async () => (await edge.metric('registry_edge_fills_total', { result: 'committed' })) >= image.layers.length, { what: 'the fills to be committed' });
  });
});
