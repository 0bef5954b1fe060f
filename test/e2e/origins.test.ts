// One edge fronting two origins (two real registries with the same repository name and
// different content): containerd's ?ns= and override_path mirrors, a registries.conf
// prefix mirror, the closed ns allow-list, per-origin membership and pushes.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ctrContentDigests, ctrForget, ctrPull, startContainerd, writeHostsToml, type Containerd } from '../helpers/containerd.js';
import { logLines, startEdge, type Edge } from '../helpers/edge.js';
import { makeOciLayout, pushImage, sha256Digest, skopeo, verifyDirPull, type ImageInfo } from '../helpers/image.js';
import { httpRequest, removeDir, run, tempDir, waitFor } from '../helpers/proc.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { startShim, type Shim } from '../helpers/shim.js';

const KiB = 1024;
// Host names as image references write them; nothing resolves them: the edge dials the
// upstream URLs, and each client's own fallback for the name is a closed port.
const A = 'reg-a.test';
const B = 'reg-b.test';
const DEAD = 'http://127.0.0.1:1';

interface Side {
  registry: Registry;
  shim: Shim;
  image: ImageInfo;
}

describe('one edge, two origins', () => {
  let work: string;
  const sides: Partial<Record<string, Side>> = {};
  let edge: Edge;
  let containerd: Containerd;
  const side = (host: string): Side => sides[host] as Side;

  before(async () => {
    work = tempDir('re-origins-');
    for (const [host, sizes] of [[A, [300 * KiB, 40 * KiB]], [B, [200 * KiB]]] as const) {
      const registry = await startRegistry();
      const shim = await startShim(registry.url);
      const image = await makeOciLayout(path.join(work, `layout-${host}`), { layers: [...sizes], tag: '1.0' });
      await pushImage(image.layoutDir, '1.0', `${registry.host}/team/app:1.0`);
      sides[host] = { registry, shim, image };
    }
    edge = await startEdge({
      workDir: work,
      configYaml: [
        'origins:',
        `  ${A}:`,
        `    upstreams: [${side(A).shim.url}]`,
        '    push: true',
        `  ${B}:`,
        `    upstreams: [${side(B).shim.url}]`,
        `default_origin: ${A}`,
        '',
      ].join('\n'),
    });
    containerd = await startContainerd();
  });

  after(async () => {
    await containerd?.stop();
    await edge?.stop();
    for (const s of Object.values(sides)) {
      await s?.shim.stop();
      await s?.registry.dispose();
    }
    if (work) removeDir(work);
  });

  const resetShims = (): void => Object.values(sides).forEach((s) => s?.shim.reset());
  const layerGets = (host: string, image: ImageInfo): number[] => image.layers.map((l) => side(host).shim.stats.blobGets(l.digest));

  test('ctr pulls each origin through the edge: ?ns= for one, override_path for the other; each gets its own content', async () => {
    const hostsDir = path.join(work, 'certs.d');
    // ns alone must pick B (not the default origin); the prefix alone must pick A.
    writeHostsToml(hostsDir, B, { server: DEAD, mirrors: [{ url: edge.url }] });
    writeHostsToml(hostsDir, A, { server: DEAD, mirrors: [{ url: `${edge.url}/v2/${A}`, overridePath: true }] });
    resetShims();
    for (const host of [A, B]) {
      const r = await ctrPull(containerd.address, `${host}/team/app:1.0`, hostsDir);
      assert.equal(r.code, 0, r.stderr);
    }
    const content = await ctrContentDigests(containerd.address);
    for (const host of [A, B]) {
      const own = side(host).image;
      const other = side(host === A ? B : A).image;
      for (const l of own.layers) assert.ok(content.includes(l.digest), `containerd holds ${host}'s layer ${l.digest}`);
      assert.deepEqual(layerGets(host, own), own.layers.map(() => 1), `${host}'s upstream served each of its layers once, to the edge`);
      assert.deepEqual(layerGets(host, other), other.layers.map(() => 0), `${host}'s upstream was never asked for the other origin's layers`);
      for (const r of side(host).shim.stats.requests) assert.doesNotMatch(r.path, /[?&]ns=/, 'ns is not forwarded');
    }
    const lines = logLines<{ msg?: string; origin?: string; path?: string }>(edge.proc.logs()).filter((l) => l.msg === 'request');
    assert.ok(lines.some((l) => l.origin === A && l.path === `/v2/${A}/team/app/manifests/1.0`), 'override_path sends the host prefix; the log names the origin');
    assert.ok(lines.some((l) => l.origin === B && l.path === '/v2/team/app/manifests/1.0'));
    assert.ok((await edge.metric('registry_edge_http_requests_total', { origin: B, route: 'blob' })) >= 1);
    assert.ok((await edge.metric('registry_edge_cache_requests_total', { origin: A, kind: 'manifest' })) >= 1);
    await ctrForget(containerd.address);
  });

  test('skopeo with a registries.conf prefix mirror pulls each origin through the edge', async () => {
    const conf = path.join(work, 'registries.conf');
    const entry = (host: string): string =>
      // The registry's own location is a closed port: a pull that works came through the edge.
      `[[registry]]\nprefix = "${host}"\nlocation = "127.0.0.1:1"\n[[registry.mirror]]\nlocation = "${edge.host}/${host}"\ninsecure = true\n`;
    writeFileSync(conf, `${entry(A)}\n${entry(B)}`);
    for (const host of [A, B]) {
      const dest = path.join(work, `skopeo-${host}`);
      const r = await skopeo(['--registries-conf', conf, 'copy', '--src-tls-verify=false', '--src-no-creds', `docker://${host}/team/app:1.0`, `dir:${dest}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await verifyDirPull(dest, side(host).image), { ok: true });
    }
  });

  test('an unknown ns is refused with an OCI error and nothing is dialled; a known one is answered with OCI-Namespace', async () => {
    resetShims();
    const refused = await httpRequest(`${edge.url}/v2/team/app/manifests/1.0?ns=registry-1.docker.io`);
    assert.equal(refused.status, 404);
    assert.equal((JSON.parse(refused.body.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'NAME_UNKNOWN');
    assert.equal(refused.headers['oci-namespace'], undefined);
    const mismatch = await httpRequest(`${edge.url}/v2/${A}/team/app/manifests/1.0?ns=${B}`);
    assert.equal(mismatch.status, 404, 'a prefix and an ns naming different origins are refused');
    for (const host of [A, B]) assert.equal(side(host).shim.stats.requests.length, 0, `${host}'s upstream saw nothing`);

    const tags = await httpRequest(`${edge.url}/v2/team/app/tags/list?ns=${B}&n=10`);
    assert.equal(tags.status, 200);
    assert.equal(tags.headers['oci-namespace'], B);
    assert.deepEqual(side(B).shim.stats.requests.map((r) => r.path), ['/v2/team/app/tags/list?n=10'], 'passed through without ns');
    const plain = await httpRequest(`${edge.url}/v2/team/app/manifests/1.0`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(plain.headers['docker-content-digest'], side(A).image.manifestDigest, 'no ns and no prefix: the default origin');
    assert.equal(plain.headers['oci-namespace'], undefined);
  });

  test("a blob cached through one origin is not served under the other's name unless that upstream confirms it", async () => {
    const layer = side(A).image.layers[0]?.digest ?? '';
    const viaA = await httpRequest(`${edge.url}/v2/team/app/blobs/${layer}?ns=${A}`);
    assert.equal(viaA.status, 200);
    resetShims();
    const viaB = await httpRequest(`${edge.url}/v2/team/app/blobs/${layer}?ns=${B}`);
    assert.equal(viaB.status, 404, 'the same repository name under the other origin does not hold it');
    assert.equal(side(B).shim.stats.count('HEAD', new RegExp(`/v2/team/app/blobs/${layer}$`)), 1, "the other origin's upstream was asked");
    const viaPrefix = await httpRequest(`${edge.url}/v2/${B}/team/app/blobs/${layer}`);
    assert.equal(viaPrefix.status, 404);
    const manifest = side(A).image.manifestDigest;
    const manifestViaB = await httpRequest(`${edge.url}/v2/team/app/manifests/${manifest}?ns=${B}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(manifestViaB.status, 404, "A's manifest, cached, is not B's");
    assert.equal(side(A).shim.stats.requests.length, 0);
  });

  test('ns is not in cache keys: what was cached through ?ns= is served through the path prefix, and a hit through ns carries OCI-Namespace', async () => {
    // A repository nothing has asked for yet, so the first requests are misses.
    const fresh = await makeOciLayout(path.join(work, 'layout-fresh'), { layers: [60 * KiB], tag: '1.0' });
    await pushImage(fresh.layoutDir, '1.0', `${side(B).registry.host}/team/fresh:1.0`);
    const layer = fresh.layers[0]?.digest ?? '';
    const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
    resetShims();
    const manifestNs = await httpRequest(`${edge.url}/v2/team/fresh/manifests/${fresh.manifestDigest}?ns=${B}`, { headers: accept });
    assert.equal(manifestNs.status, 200);
    const blobNs = await httpRequest(`${edge.url}/v2/team/fresh/blobs/${layer}?ns=${B}`);
    assert.equal(blobNs.status, 200);
    assert.equal(side(B).shim.stats.blobGets(layer), 1, 'the first blob request was a miss, filled from B');
    assert.equal(side(B).shim.stats.count('GET', new RegExp(`/manifests/${fresh.manifestDigest}$`)), 1, 'the first manifest request was a miss, filled from B');
    await waitFor(async () => (await edge.metric('registry_edge_fills_in_flight')) === 0, { what: 'the fill to be committed' });

    resetShims();
    const blobPrefix = await httpRequest(`${edge.url}/v2/${B}/team/fresh/blobs/${layer}`);
    assert.equal(blobPrefix.status, 200);
    assert.equal(sha256Digest(blobPrefix.body), layer);
    const manifestPrefix = await httpRequest(`${edge.url}/v2/${B}/team/fresh/manifests/${fresh.manifestDigest}`, { headers: accept });
    assert.equal(manifestPrefix.status, 200);
    assert.deepEqual(manifestPrefix.body, fresh.manifestBytes);
    const blobHit = await httpRequest(`${edge.url}/v2/team/fresh/blobs/${layer}?ns=${B}`);
    assert.equal(blobHit.status, 200);
    assert.equal(blobHit.headers['oci-namespace'], B, 'a cached blob reached through ns says so');
    const manifestHit = await httpRequest(`${edge.url}/v2/team/fresh/manifests/${fresh.manifestDigest}?ns=${B}`, { headers: accept });
    assert.equal(manifestHit.status, 200);
    assert.equal(manifestHit.headers['oci-namespace'], B, 'a cached manifest reached through ns says so');
    assert.deepEqual(side(B).shim.stats.requests.map((r) => `${r.method} ${r.path}`), [], 'the prefix form and the second ns requests were answered from the cache');
    const blobLines = logLines<{ msg?: string; path?: string; cache?: string; origin?: string }>(edge.proc.logs()).filter(
      (l) => l.msg === 'request' && l.path?.endsWith(`/team/fresh/blobs/${layer}`),
    );
    assert.deepEqual(
      blobLines.map((l) => [l.path?.startsWith(`/v2/${B}/`) ? 'prefix' : 'ns', l.origin, l.cache]),
      [['ns', B, 'fill'], ['prefix', B, 'hit'], ['ns', B, 'hit']],
    );
  });

  test("Docker's registry-mirrors form: library/ names with no ns and no prefix are served from default_origin", async () => {
    const hub = await makeOciLayout(path.join(work, 'layout-library'), { layers: [50 * KiB], tag: '1.0' });
    await pushImage(hub.layoutDir, '1.0', `${side(B).registry.host}/library/hello:1.0`);
    // B stands for Docker Hub here, under the name dockerd's mirror requests are for.
    const mirror = await startEdge({
      workDir: work,
      cacheDir: path.join(work, 'cache-mirror'),
      configYaml: [
        'origins:',
        '  docker.io:',
        `    upstreams: [${side(B).shim.url}]`,
        `  ${A}:`,
        `    upstreams: [${side(A).shim.url}]`,
        'default_origin: docker.io',
        '',
      ].join('\n'),
    });
    try {
      resetShims();
      // dockerd with "registry-mirrors" asks the mirror for /v2/library/hello/..., as skopeo does for this reference.
      const dest = path.join(work, 'skopeo-library');
      const r = await skopeo(['copy', '--src-tls-verify=false', '--src-no-creds', `docker://${mirror.host}/library/hello:1.0`, `dir:${dest}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await verifyDirPull(dest, hub), { ok: true });
      assert.ok(side(B).shim.stats.count('GET', /^\/v2\/library\/hello\/manifests\/1\.0$/) >= 1, 'the default origin was asked for the library/ name as sent');
      assert.equal(side(B).shim.stats.blobGets(hub.layers[0]?.digest), 1);
      assert.equal(side(A).shim.stats.requests.length, 0, 'the other origin saw nothing');
      const lines = logLines<{ msg?: string; origin?: string; path?: string }>(mirror.proc.logs()).filter((l) => l.msg === 'request' && l.path?.startsWith('/v2/library/hello/'));
      assert.ok(lines.length > 0 && lines.every((l) => l.origin === 'docker.io'), 'the log names the default origin');
    } finally {
      await mirror.stop();
    }
  });

  test('an edge of one origin (no origins:) drops ns too: never forwarded upstream, never part of a cache key', async () => {
    const single = await startEdge({ workDir: work, cacheDir: path.join(work, 'cache-single'), configYaml: `upstreams: [${side(A).shim.url}]\n` });
    try {
      resetShims();
      const layer = side(A).image.layers[1]?.digest ?? '';
      const tags = await httpRequest(`${single.url}/v2/team/app/tags/list?ns=docker.io&n=10`);
      assert.equal(tags.status, 200);
      const catalog = await httpRequest(`${single.url}/v2/_catalog?ns=docker.io`);
      assert.equal(catalog.status, 200);
      const blob = await httpRequest(`${single.url}/v2/team/app/blobs/${layer}?ns=docker.io`);
      assert.equal(blob.status, 200);
      const seen = side(A).shim.stats.requests.map((r) => r.path);
      assert.ok(seen.includes('/v2/team/app/tags/list?n=10'), `tags/list passed through without ns: ${seen.join(', ')}`);
      assert.ok(seen.includes('/v2/_catalog'), `the catalog passed through without ns: ${seen.join(', ')}`);
      for (const p of seen) assert.doesNotMatch(p, /[?&]ns=/, 'ns is not forwarded');
      assert.equal(side(A).shim.stats.blobGets(layer), 1);
      await waitFor(async () => (await single.metric('registry_edge_fills_in_flight')) === 0, { what: 'the fill to be committed' });
      const again = await httpRequest(`${single.url}/v2/team/app/blobs/${layer}`);
      assert.equal(again.status, 200);
      assert.equal(sha256Digest(again.body), layer);
      assert.equal(side(A).shim.stats.blobGets(layer), 1, 'the blob cached through ?ns= is the one served without it');
    } finally {
      await single.stop();
    }
  });

  test('unknown_ns: default serves an ns this edge does not front from the default origin, and still dials nothing else', async () => {
    const lenient = await startEdge({
      workDir: work,
      cacheDir: path.join(work, 'cache-lenient'),
      configYaml: [
        'origins:',
        `  ${A}:`,
        `    upstreams: [${side(A).shim.url}]`,
        `  ${B}:`,
        `    upstreams: [${side(B).shim.url}]`,
        `default_origin: ${A}`,
        'unknown_ns: default',
        '',
      ].join('\n'),
    });
    try {
      resetShims();
      const res = await httpRequest(`${lenient.url}/v2/team/app/manifests/1.0?ns=registry-1.docker.io`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(res.status, 200);
      assert.equal(res.headers['docker-content-digest'], side(A).image.manifestDigest, 'the default origin answered');
      assert.equal(res.headers['oci-namespace'], undefined, 'the ns was not honoured, so it is not echoed');
      assert.equal(side(B).shim.stats.requests.length, 0);
      assert.ok(side(A).shim.stats.requests.length > 0);
      assert.ok(side(A).shim.stats.requests.every((r) => !r.path.includes('ns=')), 'ns is not forwarded');
      const mismatch = await httpRequest(`${lenient.url}/v2/${A}/team/app/manifests/1.0?ns=${B}`);
      assert.equal(mismatch.status, 404, 'a prefix and an ns naming different origins are still refused');
    } finally {
      await lenient.stop();
    }
  });

  test('each origin has its own authorization for cached content: htpasswd on one leaves the other public', async () => {
    const file = path.join(work, 'htpasswd');
    const line = await run('htpasswd', ['-Bbn', 'zone', 'zone-secret']);
    assert.equal(line.code, 0, line.stderr);
    writeFileSync(file, line.stdout);
    const guarded = await startEdge({
      workDir: work,
      cacheDir: path.join(work, 'cache-guarded'),
      configYaml: [
        'origins:',
        `  ${A}:`,
        `    upstreams: [${side(A).shim.url}]`,
        `    auth: {htpasswd: {path: ${file}, realm: centre}}`,
        `  ${B}:`,
        `    upstreams: [${side(B).shim.url}]`,
        `default_origin: ${B}`,
        '',
      ].join('\n'),
    });
    try {
      const layerA = side(A).image.layers[0]?.digest ?? '';
      const layerB = side(B).image.layers[0]?.digest ?? '';
      const anonymousA = await httpRequest(`${guarded.url}/v2/${A}/team/app/blobs/${layerA}`);
      assert.equal(anonymousA.status, 401);
      assert.match(String(anonymousA.headers['www-authenticate']), /^Basic realm="centre"/);
      const basic = `Basic ${Buffer.from('zone:zone-secret').toString('base64')}`;
      assert.equal((await httpRequest(`${guarded.url}/v2/${A}/team/app/blobs/${layerA}`, { headers: { authorization: basic } })).status, 200);
      assert.equal((await httpRequest(`${guarded.url}/v2/team/app/blobs/${layerB}`)).status, 200, 'the default origin B stays public');
    } finally {
      await guarded.stop();
    }
  });

  test('pushes go only to an origin that takes them', async () => {
    resetShims();
    const refused = await httpRequest(`${edge.url}/v2/${B}/team/app/blobs/uploads/`, { method: 'POST', body: '' });
    assert.equal(refused.status, 405);
    assert.equal((JSON.parse(refused.body.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'UNSUPPORTED');
    const refusedNs = await httpRequest(`${edge.url}/v2/team/app/manifests/2.0?ns=${B}`, { method: 'PUT', body: '{}' });
    assert.equal(refusedNs.status, 405);
    assert.equal(side(B).shim.stats.requests.length, 0, 'nothing reached the read-only origin');
    const taken = await httpRequest(`${edge.url}/v2/${A}/team/app/blobs/uploads/`, { method: 'POST', body: '' });
    assert.equal(taken.status, 202);
    assert.match(String(taken.headers.location), new RegExp(`^${edge.url}/v2/${A}/team/app/blobs/uploads/`), 'the upload URL keeps the prefix');
    assert.equal(side(A).shim.stats.count('POST', /^\/v2\/team\/app\/blobs\/uploads\/$/), 1);
  });
});
