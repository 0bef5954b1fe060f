// The nginx "Registry Proxy" tier replaced: TLS, two registry instances sharing storage,
// pushes through the edge, failover, upload pinning across a pool change, ip_hash spread.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { initCertificates } from '../../src/certs/issue.js';
import { Balancer } from '../../src/upstream/balancer.js';
import { startEdge, type Edge } from '../helpers/edge.js';
import { makeOciLayout, pullImage, pushImage, randomFile, sha256File, verifyDirPull, type ImageInfo } from '../helpers/image.js';
import { removeDir, tempDir, waitFor } from '../helpers/proc.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { startShim, type Shim } from '../helpers/shim.js';

const MiB = 1024 * 1024;
const OCI = 'application/vnd.oci.image.manifest.v1+json';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

describe('the nginx tier, replaced', () => {
  let work: string;
  let storage: string;
  const registries: Registry[] = [];
  const shims: Shim[] = [];
  let edge: Edge;
  let agent: Agent;
  let certDir: string;
  let image: ImageInfo;
  let pulls = 0;
  const secret = 'shared-http-secret-for-uploads';

  const call = async (method: string, url: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<Reply> => {
    const res = await request(url, { method: method as 'GET', headers, body: body ?? null, dispatcher: agent });
    return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
  };
  const configYaml = (upstreams: string[], extra = ''): string => [
    'http:',
    `  tls: {certificate: ${path.join(certDir, 'server.crt')}, key: ${path.join(certDir, 'server.key')}}`,
    '  trusted_proxies: [127.0.0.1]',
    'upstream:',
    '  balance: ip_hash',
    '  health: {interval: 1s, timeout: 1s}',
    'upstreams:',
    ...upstreams.map((u) => `  - {url: "${u}", max_fails: 1, fail_timeout: 30s}`),
    'cache: {tag_ttl: 1h}',
    extra,
  ].join('\n');
  const addRegistry = async (): Promise<Shim> => {
    const registry = await startRegistry({ rootDir: storage, config: { http: { secret } } });
    registries.push(registry);
    const shim = await startShim(registry.url);
    shims.push(shim);
    return shim;
  };
  const reloadWith = async (upstreams: string[]): Promise<void> => {
    const before = (edge.proc.logs().match(/upstream instances updated/g) ?? []).length;
    writeFileSync(edge.configFile, configYaml(upstreams));
    edge.proc.child.kill('SIGHUP');
    await waitFor(() => (edge.proc.logs().match(/upstream instances updated/g) ?? []).length > before, { what: 'the edge to apply the new upstream list' });
  };

  before(async () => {
    work = tempDir('re-tier-');
    storage = path.join(work, 'storage');
    mkdirSync(storage);
    const certs = await initCertificates({ hosts: ['127.0.0.1', 'localhost'], outDir: path.join(work, 'certs') });
    certDir = path.dirname(certs.cert);
    // skopeo's --cert-dir may only hold the CA.
    mkdirSync(path.join(work, 'trust'));
    copyFileSync(certs.caCert, path.join(work, 'trust', 'ca.crt'));
    agent = new Agent({ connect: { ca: readFileSync(certs.caCert) } });
    await addRegistry();
    await addRegistry();
    image = await makeOciLayout(path.join(work, 'layout'), { layers: [3 * MiB, MiB, 256 * 1024], tag: '1.0' });
    edge = await startEdge({ workDir: work, configYaml: configYaml(shims.map((s) => s.url)) });
  });

  after(async () => {
    await edge?.stop();
    await agent?.close();
    for (const s of shims) await s.stop();
    for (const r of registries) await r.dispose();
    if (work) removeDir(work);
  });

  test('skopeo pushes a multi-layer image through the edge over TLS and pulls it back', async () => {
    assert.match(edge.url, /^https:/);
    await pushImage(image.layoutDir, '1.0', `${edge.host}/team/app:1.0`, { certDir: path.join(work, 'trust') });
    const uploads = shims.reduce((n, s) => n + s.stats.count('PATCH', /\/blobs\/uploads\//) + s.stats.count('PUT', /\/blobs\/uploads\//), 0);
    assert.ok(uploads >= image.layers.length, 'blob uploads went upstream through the edge');
    const dest = path.join(work, `pull-${++pulls}`);
    const pulled = await pullImage(`${edge.host}/team/app:1.0`, dest, { certDir: path.join(work, 'trust') });
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.deepEqual(await verifyDirPull(dest, image), { ok: true });
  });

  test('requests upstream carry X-Real-IP, X-Forwarded-For and X-Forwarded-Proto; Location names the edge and pins the instance', async () => {
    for (const s of shims) s.reset();
    const res = await call('POST', `${edge.url}/v2/team/app/blobs/uploads/`, { 'x-forwarded-for': '203.0.113.9' });
    assert.equal(res.status, 202);
    const location = String(res.headers.location);
    assert.ok(location.startsWith(`${edge.url}/v2/team/app/blobs/uploads/`), location);
    assert.match(location, /_edge_upstream=/);
    const seen = shims.flatMap((s) => s.stats.requests).find((r) => r.method === 'POST');
    assert.ok(seen);
    assert.equal(seen.headers['x-real-ip'], '203.0.113.9');
    assert.equal(seen.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    await call('DELETE', location);
  });

  test('a chunked upload stays on its instance while another instance joins the pool', async () => {
    const urlsBefore = shims.map((s) => s.url);
    const third = await addRegistry();
    const spec = (id: string) => ({ id, weight: 1, maxFails: 1, failTimeoutMs: 30_000, backup: false });
    const twoPool = new Balancer(urlsBefore.map(spec), 'ip_hash');
    const threePool = new Balancer([...urlsBefore, third.url].map(spec), 'ip_hash');
    // A client that the new instance would take over: without pinning, its upload would move.
    let client = '';
    for (let i = 1; i < 255 && !client; i++) {
      const address = `198.51.${i}.7`;
      if (threePool.order(address)[0]?.id === third.url) client = address;
    }
    assert.ok(client, 'found a client the new instance takes over');
    const home = shims.find((s) => s.url === twoPool.order(client)[0]?.id);
    assert.ok(home);
    for (const s of shims) s.reset();

    const file = path.join(work, 'chunked.bin');
    const digest = await randomFile(file, 3 * MiB);
    const data = readFileSync(file);
    const xff = { 'x-forwarded-for': client };
    const start = await call('POST', `${edge.url}/v2/team/chunked/blobs/uploads/`, xff);
    assert.equal(start.status, 202);
    let location = String(start.headers.location);
    const first = await call('PATCH', location, { ...xff, 'content-type': 'application/octet-stream', 'content-range': `0-${2 * MiB - 1}` }, data.subarray(0, 2 * MiB));
    assert.equal(first.status, 202, first.body.toString());
    location = String(first.headers.location);

    await reloadWith([...urlsBefore, third.url]);

    const second = await call('PATCH', location, { ...xff, 'content-type': 'application/octet-stream', 'content-range': `${2 * MiB}-${3 * MiB - 1}` }, data.subarray(2 * MiB));
    assert.equal(second.status, 202, second.body.toString());
    location = String(second.headers.location);
    const done = await call('PUT', `${location}&digest=${digest}`, xff);
    assert.equal(done.status, 201, done.body.toString());
    const uploadRequests = (s: Shim): number => s.stats.count(undefined, /\/blobs\/uploads\//);
    assert.equal(uploadRequests(home), 4, 'POST, PATCH, PATCH and PUT all reached the instance that opened the upload');
    assert.equal(uploadRequests(third), 0);
    // And a new request from the same client now goes to the new instance.
    const tags = await call('GET', `${edge.url}/v2/team/app/tags/list`, xff);
    assert.equal(tags.status, 200);
    assert.equal(third.stats.count('GET', /\/tags\/list$/), 1);
    const blob = await call('GET', `${edge.url}/v2/team/chunked/blobs/${digest}`);
    assert.equal(blob.status, 200);
    assert.equal(blob.body.length, 3 * MiB);
    assert.equal(await sha256File(file), digest);
  });

  test('ip_hash: many clients spread over the instances, each sticks, removing one moves only its share', async () => {
    const clients = Array.from({ length: 120 }, (_, i) => `10.${i}.${(i * 7) % 250}.1`);
    const where = async (): Promise<Map<string, string>> => {
      const map = new Map<string, string>();
      for (const client of clients) {
        for (const s of shims) s.reset();
        const res = await call('GET', `${edge.url}/v2/team/app/tags/list`, { 'x-forwarded-for': client });
        assert.equal(res.status, 200);
        const hit = shims.find((s) => s.stats.count('GET', /\/tags\/list$/) === 1);
        assert.ok(hit, client);
        map.set(client, hit.url);
      }
      return map;
    };
    const first = await where();
    const again = await where();
    assert.deepEqual(again, first, 'the same address always lands on the same instance');
    const counts = shims.map((s) => [...first.values()].filter((u) => u === s.url).length);
    for (const n of counts) assert.ok(n >= 120 / shims.length / 2, `every instance gets a share: ${counts.join(', ')}`);

    const removed = shims[shims.length - 1];
    assert.ok(removed);
    await reloadWith(shims.slice(0, -1).map((s) => s.url));
    const afterRemoval = await where();
    for (const client of clients) {
      if (first.get(client) !== removed.url) assert.equal(afterRemoval.get(client), first.get(client), `${client} kept its instance`);
      else assert.notEqual(afterRemoval.get(client), removed.url);
    }
    await reloadWith(shims.map((s) => s.url));
  });

  test('an instance stopped in the middle of a series of pulls: the pulls keep working', async () => {
    const images: ImageInfo[] = [];
    for (let i = 0; i < 4; i++) {
      const img = await makeOciLayout(path.join(work, `series-${i}`), { layers: [512 * 1024], tag: 'v' });
      await pushImage(img.layoutDir, 'v', `${registries[0]?.host}/series/img${i}:v`);
      images.push(img);
    }
    const pullOne = async (i: number): Promise<void> => {
      const dest = path.join(work, `pull-${++pulls}`);
      const r = await pullImage(`${edge.host}/series/img${i}:v`, dest, { certDir: path.join(work, 'trust') });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await verifyDirPull(dest, images[i] as ImageInfo), { ok: true });
    };
    await pullOne(0);
    // Stop every instance but one, one after the other, between pulls: whichever serves this client goes away.
    await registries[0]?.stop();
    await pullOne(1);
    await registries[0]?.restart();
    await registries[1]?.stop();
    await pullOne(2);
    await registries[1]?.restart();
    await registries[2]?.stop();
    await pullOne(3);
    await registries[2]?.restart();
  });

  test('a manifest pushed through the edge updates its tag cache; all instances down: cached content still served, misses get 503', async () => {
    const v2 = await makeOciLayout(path.join(work, 'v2'), { layers: [256 * 1024], tag: '1.0' });
    const before = await call('GET', `${edge.url}/v2/team/app/manifests/1.0`, { accept: OCI });
    assert.equal(before.headers['docker-content-digest'], image.manifestDigest);
    await pushImage(v2.layoutDir, '1.0', `${edge.host}/team/app:1.0`, { certDir: path.join(work, 'trust') });
    const afterPush = await call('GET', `${edge.url}/v2/team/app/manifests/1.0`, { accept: OCI });
    assert.equal(afterPush.headers['docker-content-digest'], v2.manifestDigest, 'the pull right after the push sees the new digest (tag_ttl is 1h)');

    for (const s of shims) await s.stopListening();
    try {
      const cached = await call('GET', `${edge.url}/v2/team/app/manifests/1.0`, { accept: OCI });
      assert.equal(cached.status, 200);
      const layer = image.layers[0];
      assert.ok(layer);
      const blob = await call('GET', `${edge.url}/v2/team/app/blobs/${layer.digest}`);
      assert.equal(blob.status, 200);
      const miss = await call('GET', `${edge.url}/v2/team/app/blobs/sha256:${'e'.repeat(64)}`);
      assert.equal(miss.status, 503);
      assert.equal((JSON.parse(miss.body.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'UNAVAILABLE');
    } finally {
      for (const s of shims) await s.listenAgain();
    }
  });
});
