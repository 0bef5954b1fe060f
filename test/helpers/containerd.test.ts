// Self-test of the containerd fixture: a private containerd pulls from a plain
// docker-registry through a mirror (a second docker-registry configured as a
// pull-through proxy) named in a hosts.toml, with and without unpacking, and
// with credentials against the token-auth fixture.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ctrContentDigests,
  ctrFetch,
  ctrForget,
  ctrImages,
  ctrPull,
  hostsToml,
  startContainerd,
  writeHostsToml,
  type Containerd,
} from './containerd.js';
import { hexOf, makeOciLayout, pushImage, type ImageInfo } from './image.js';
import { freePort, httpRequest, removeDir, tempDir, waitFor } from './proc.js';
import { startRegistry, type Registry } from './registry.js';
import { startTokenService, type TokenService } from './token-service.js';

function imageDigests(image: ImageInfo): string[] {
  return [image.manifestDigest, image.configDigest, ...image.layers.map((l) => l.digest)].sort();
}

describe('hostsToml', () => {
  test('renders server, mirrors and per-host options', () => {
    assert.equal(
      hostsToml('127.0.0.1:5000', {
        mirrors: ['http://127.0.0.1:6000', { url: 'https://m', capabilities: ['pull'], skipVerify: true, ca: '/ca.pem', header: { 'X-A': 'b' } }],
      }),
      [
        'server = "http://127.0.0.1:5000"',
        '',
        '[host."http://127.0.0.1:6000"]',
        '  capabilities = ["pull", "resolve"]',
        '',
        '[host."https://m"]',
        '  capabilities = ["pull"]',
        '  skip_verify = true',
        '  ca = ["/ca.pem"]',
        '  [host."https://m".header]',
        '    "X-A" = "b"',
        '',
      ].join('\n'),
    );
    // containerd 1.6.20 cannot parse a hosts.toml without a `host` table.
    assert.equal(hostsToml('h:1', { server: 'http://m:2' }), 'server = "http://m:2"\n\n[host]\n');
  });
});

describe('containerd + ctr through a mirror', () => {
  let cd: Containerd;
  let upstream: Registry;
  let mirror: Registry;
  let work: string;
  let image: ImageInfo;
  let ref: string;

  before(async () => {
    work = tempDir('re-ctrtest-');
    cd = await startContainerd();
    upstream = await startRegistry();
    // The mirror: a pull-through cache of upstream. Log level info so its log
    // shows each request containerd made to it.
    mirror = await startRegistry({ logLevel: 'info', config: { proxy: { remoteurl: upstream.url } } });
    image = await makeOciLayout(path.join(work, 'layout'), { layers: [200 * 1024, 3000] });
    ref = `${upstream.host}/team/app:v1`;
    await pushImage(image.layoutDir, image.tag, ref);
  });
  after(async () => {
    await cd?.stop();
    await mirror?.dispose();
    await upstream?.dispose();
    if (work) removeDir(work);
  });

  test('the mirror as the only host (server) serves the whole pull', async () => {
    const hosts = path.join(work, 'hosts-server-only');
    writeHostsToml(hosts, upstream.host, { server: mirror.url });
    const before = mirror.logs().length;
    const r = await ctrPull(cd.address, ref, hosts, { skipUnpack: true });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.doesNotMatch(r.stderr, /failed to decode hosts\.toml/);
    const log = mirror.logs().slice(before);
    for (const d of imageDigests(image)) assert.ok(log.includes(d), `mirror log lacks ${d}`);
    await ctrForget(cd.address);
  });

  test('pull with unpack (native snapshotter) goes to the mirror', async () => {
    const hosts = path.join(work, 'hosts-mirror');
    writeHostsToml(hosts, upstream.host, { server: upstream.url, mirrors: [mirror.url] });
    const r = await ctrPull(cd.address, ref, hosts);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(await ctrImages(cd.address), [
      { ref, mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: image.manifestDigest },
    ]);
    assert.deepEqual((await ctrContentDigests(cd.address)).sort(), imageDigests(image));
    const snaps = await cd.ctr(['snapshots', '--snapshotter', 'native', 'ls']);
    assert.equal(snaps.code, 0, snaps.stderr);
    assert.equal(snaps.stdout.match(/Committed/g)?.length, image.layers.length);
    // containerd names the upstream host in an `ns` query parameter on mirror requests.
    const ns = `ns=${encodeURIComponent(upstream.host)}`;
    const log = mirror.logs();
    for (const d of [image.manifestDigest, image.configDigest, ...image.layers.map((l) => l.digest)]) {
      assert.ok(log.includes(`${d}?${ns}`), `mirror log lacks a request for ${d}?${ns}`);
    }
    assert.match(log, /useragent="containerd\//);
    // The proxy cached what it served.
    const layer = image.layers[0];
    assert.ok(layer);
    const hex = hexOf(layer.digest);
    const cached = path.join(mirror.rootDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    await waitFor(() => fs.existsSync(cached), { timeoutMs: 10_000, what: 'the mirror to store the layer' });
  });

  test('content fetch and --skip-unpack', async () => {
    const hosts = path.join(work, 'hosts-mirror');
    await ctrForget(cd.address);
    assert.deepEqual(await ctrContentDigests(cd.address), []);
    const f = await ctrFetch(cd.address, ref, hosts);
    assert.equal(f.code, 0, f.stderr + f.stdout);
    assert.deepEqual((await ctrContentDigests(cd.address)).sort(), imageDigests(image));
    // content fetch records the image too, but unpacks nothing.
    assert.equal((await ctrImages(cd.address))[0]?.digest, image.manifestDigest);
    const snaps = await cd.ctr(['snapshots', '--snapshotter', 'native', 'ls']);
    assert.doesNotMatch(snaps.stdout, /Committed/);
    await ctrForget(cd.address);
    const p = await ctrPull(cd.address, ref, hosts, { skipUnpack: true });
    assert.equal(p.code, 0, p.stderr + p.stdout);
    assert.equal((await ctrImages(cd.address))[0]?.digest, image.manifestDigest);
    await ctrForget(cd.address);
  });

  test('a dead or failing mirror is skipped silently; a dead server alone fails the pull', async () => {
    const deadPort = await freePort();
    const seen: string[] = [];
    const failing = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('down');
    });
    await new Promise<void>((resolve) => failing.listen(0, '127.0.0.1', resolve));
    const addr = failing.address();
    assert.ok(addr && typeof addr === 'object');
    try {
      // Mirror refuses connections -> containerd falls back to `server`.
      const hostsDead = path.join(work, 'hosts-dead-mirror');
      writeHostsToml(hostsDead, upstream.host, { server: upstream.url, mirrors: [`http://127.0.0.1:${deadPort}`] });
      const a = await ctrPull(cd.address, ref, hostsDead, { skipUnpack: true });
      assert.equal(a.code, 0, a.stderr);
      await ctrForget(cd.address);

      // Mirror answers 503 -> also falls back.
      const hosts503 = path.join(work, 'hosts-503-mirror');
      writeHostsToml(hosts503, upstream.host, { server: upstream.url, mirrors: [`http://127.0.0.1:${addr.port}`] });
      const b = await ctrPull(cd.address, ref, hosts503, { skipUnpack: true });
      assert.equal(b.code, 0, b.stderr);
      assert.ok(seen.length > 0, 'the 503 mirror was never asked');
      await ctrForget(cd.address);
      seen.length = 0;

      // The mirror as the only host: its failure is the pull's failure.
      const hostsOnly = path.join(work, 'hosts-only');
      writeHostsToml(hostsOnly, upstream.host, { server: `http://127.0.0.1:${addr.port}` });
      const c = await ctrPull(cd.address, ref, hostsOnly, { skipUnpack: true, timeoutMs: 60_000 });
      assert.notEqual(c.code, 0);
      assert.equal(c.timedOut, false);
      assert.match(c.stderr, /503/);
      assert.deepEqual(seen, [`HEAD /v2/team/app/manifests/v1?ns=${encodeURIComponent(upstream.host)}`]);
      assert.deepEqual(await ctrImages(cd.address), []);
    } finally {
      await new Promise<void>((resolve) => {
        failing.close(() => resolve());
        failing.closeAllConnections();
      });
      await ctrForget(cd.address);
    }
  });

  describe('with token auth', () => {
    let ts: TokenService;
    let secured: Registry;
    before(async () => {
      ts = await startTokenService({
        keyType: 'ES256',
        users: {
          pusher: { password: 'push-pw', access: [{ repo: '**', actions: ['pull', 'push'] }] },
          reader: { password: 'read-pw', access: [{ repo: 'team/*', actions: ['pull'] }] },
        },
      });
      secured = await startRegistry({ config: ts.registryConfig() });
      await pushImage(image.layoutDir, image.tag, `${secured.host}/team/app:v1`, { creds: 'pusher:push-pw' });
    });
    after(async () => {
      await secured?.dispose();
      await ts?.stop();
    });

    test('ctr --user pulls with a token; a wrong password fails', async () => {
      const sref = `${secured.host}/team/app:v1`;
      const bad = await ctrPull(cd.address, sref, undefined, { user: 'reader:wrong', skipUnpack: true });
      assert.notEqual(bad.code, 0);
      const ok = await ctrPull(cd.address, sref, undefined, { user: 'reader:read-pw' });
      assert.equal(ok.code, 0, ok.stderr + ok.stdout);
      assert.equal((await ctrImages(cd.address))[0]?.digest, image.manifestDigest);
      // containerd 1.6 asks for the token with the OAuth2 POST form first...
      const byReader = ts.requests.filter((q) => q.user === 'reader');
      assert.ok(byReader.length > 0);
      assert.ok(byReader.every((q) => q.method === 'POST' && q.grantType === 'password'), JSON.stringify(byReader));
      // ...and after a 401 there retries with GET + Basic auth.
      const failed = ts.requests.filter((q) => q.attemptedUser === 'reader' && q.status === 401).map((q) => q.method);
      assert.deepEqual(failed, ['POST', 'GET']);
      await ctrForget(cd.address);
      // Anonymous: the token has no access, the registry says insufficient_scope.
      const anon = await ctrPull(cd.address, sref, undefined, { skipUnpack: true });
      assert.notEqual(anon.code, 0);
      assert.match(anon.stderr, /insufficient_scope|access denied/);
    });

    test('ctr --refresh uses the refresh_token grant', async () => {
      const sref = `${secured.host}/team/app:v1`;
      const r = await httpRequest(ts.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'password', username: 'reader', password: 'read-pw', access_type: 'offline' }).toString(),
      });
      const refresh = (JSON.parse(r.body.toString('utf8')) as { refresh_token?: string }).refresh_token;
      assert.equal(typeof refresh, 'string');
      const before = ts.requests.length;
      const ok = await ctrPull(cd.address, sref, undefined, { refreshToken: refresh ?? '', skipUnpack: true });
      assert.equal(ok.code, 0, ok.stderr + ok.stdout);
      const used = ts.requests.slice(before);
      assert.ok(used.length > 0 && used.every((q) => q.grantType === 'refresh_token' && q.user === 'reader'), JSON.stringify(used));
      await ctrForget(cd.address);
    });
  });
});
