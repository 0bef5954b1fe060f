// The token route end to end: a real token service (the auth realm), a real
// docker-registry that trusts it, and the edge in `auth.mode: passthrough` with
// `token.path: /token` forwarding to the service. Clients (skopeo, raw HTTP,
// containerd's ctr) are given only the edge's address and must complete the
// whole challenge flow through it.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { initCertificates } from '../../src/certs/issue.js';
import { ctrImages, ctrForget, ctrPull, startContainerd, writeHostsToml, type Containerd } from '../helpers/containerd.js';
import { logLines, startEdge, type Edge } from '../helpers/edge.js';
import { makeOciLayout, pullImage, pushImage, skopeoInspect, verifyDirPull, type ImageInfo } from '../helpers/image.js';
import { freePort, httpRequest, removeDir, tempDir, waitFor } from '../helpers/proc.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

const KiB = 1024;

const USERS = {
  pusher: { password: 'push-pw', access: [{ repo: 'team/*', actions: ['pull', 'push'] }] },
  reader: { password: 'read-pw', access: [{ repo: 'team/*', actions: ['pull'] }] },
  outsider: { password: 'out-pw', access: [{ repo: 'other/*', actions: ['pull', 'push'] }] },
};

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** `Bearer realm="…",service="…",scope="…"` → its parts (quoted values only, as registries send). */
function parseChallenge(header: string | string[] | undefined): Challenge {
  const value = Array.isArray(header) ? (header[0] ?? '') : (header ?? '');
  const m = /^(\S+)\s+(.*)$/.exec(value);
  assert.ok(m, `not a challenge: ${value}`);
  const params: Record<string, string> = {};
  for (const p of (m[2] ?? '').matchAll(/([A-Za-z_]+)="([^"]*)"/g)) params[(p[1] ?? '').toLowerCase()] = p[2] ?? '';
  return { scheme: (m[1] ?? '').toLowerCase(), params };
}

interface AccessLine {
  msg?: string;
  route?: string;
  method?: string;
  status?: number;
  path?: string;
}

const accessLog = (edge: Edge): AccessLine[] => logLines<AccessLine>(edge.proc.logs()).filter((l) => l.msg === 'request');

const tokenRouteCount = (edge: Edge): number => accessLog(edge).filter((l) => l.route === 'token').length;

type Mode = 'upstream-check' | 'token';

/** The edge's config for a mode: the token route to the service, and the mode's own keys. */
function edgeConfig(mode: Mode, ts: TokenService): string {
  const lines = ['log:', '  level: info', 'token:', '  path: /token', `  url: ${ts.url}`, 'auth:', `  mode: ${mode}`];
  if (mode === 'token') {
    lines.push('  token:', `    service: ${ts.service}`, `    issuer: ${ts.issuer}`, `    rootcertbundle: ${ts.rootCertFile}`);
  }
  return lines.join('\n') + '\n';
}

describe('token route: challenges, skopeo, OAuth2 form and containerd through the edge only', () => {
  let work: string;
  let ts: TokenService;
  let registry: Registry;
  let cd: Containerd;
  let app: ImageInfo;
  let secret: ImageInfo;
  let ctrImage: ImageInfo;
  let mirrorImage: ImageInfo;
  let pulls = 0;
  const pullDir = (): string => path.join(work, `pull-${++pulls}`);

  before(async () => {
    work = tempDir('re-token-');
    ts = await startTokenService({ users: USERS });
    registry = await startRegistry({ config: ts.registryConfig() });
    cd = await startContainerd();
    app = await makeOciLayout(path.join(work, 'app'), { layers: [400 * KiB, 90 * KiB], tag: 'v1' });
    secret = await makeOciLayout(path.join(work, 'secret'), { layers: [120 * KiB], tag: 'v1' });
    ctrImage = await makeOciLayout(path.join(work, 'ctr'), { layers: [200 * KiB, 3000], tag: 'v1' });
    mirrorImage = await makeOciLayout(path.join(work, 'ctr-mirror'), { layers: [150 * KiB], tag: 'v1' });
    for (const [image, repo] of [[app, 'team/app'], [secret, 'team/secret'], [ctrImage, 'team/ctr'], [mirrorImage, 'team/ctr-mirror']] as const) {
      await pushImage(image.layoutDir, 'v1', `${registry.host}/${repo}:v1`, { creds: 'pusher:push-pw' });
    }
  });

  after(async () => {
    await cd?.stop();
    await registry?.dispose();
    await ts?.stop();
    if (work) removeDir(work);
  });

  for (const mode of ['upstream-check', 'token'] as const) {
    describe(`auth.mode ${mode}`, () => {
      let edge: Edge;

      before(async () => {
        const dir = path.join(work, `edge-${mode}`);
        fs.mkdirSync(dir);
        edge = await startEdge({ workDir: dir, upstreams: [registry.url], configYaml: edgeConfig(mode, ts) });
      });

      after(async () => {
        await edge?.stop();
      });
      test('401 challenges through the edge name the edge token route as realm; service and scope are kept', async () => {
        const direct = await httpRequest(`${registry.url}/v2/`);
        assert.equal(direct.status, 401);
        const directChallenge = parseChallenge(direct.headers['www-authenticate']);
        assert.equal(directChallenge.params['realm'], ts.url);

        const base = await httpRequest(`${edge.url}/v2/`);
        assert.equal(base.status, 401);
        const c = parseChallenge(base.headers['www-authenticate']);
        assert.equal(c.scheme, 'bearer');
        assert.equal(c.params['realm'], `${edge.url}/token`);
        assert.deepEqual({ ...c.params, realm: '' }, { ...directChallenge.params, realm: '' });
        assert.equal(c.params['service'], ts.service);

        // A repository request: the scope survives the rewrite.
        const manifest = await httpRequest(`${edge.url}/v2/team/app/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
        assert.equal(manifest.status, 401);
        const m = parseChallenge(manifest.headers['www-authenticate']);
        assert.equal(m.params['realm'], `${edge.url}/token`);
        assert.equal(m.params['service'], ts.service);
        assert.equal(m.params['scope'], 'repository:team/app:pull');
        assert.ok(!String(manifest.headers['www-authenticate']).includes(String(ts.port)), 'the token service address never reaches the client');

        // Routes the edge forwards (an upload, a tag list): the upstream's challenge, rewritten.
        const upload = await httpRequest(`${edge.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { 'content-length': 0 } });
        assert.equal(upload.status, 401);
        const u = parseChallenge(upload.headers['www-authenticate']);
        assert.equal(u.params['realm'], `${edge.url}/token`);
        // registry:2 lists the actions in no fixed order.
        const [type, repo, actions] = String(u.params['scope']).split(':');
        assert.deepEqual([type, repo, actions?.split(',').sort()], ['repository', 'team/app', ['pull', 'push']]);
        const tags = await httpRequest(`${edge.url}/v2/team/app/tags/list`);
        assert.equal(tags.status, 401);
        assert.equal(parseChallenge(tags.headers['www-authenticate']).params['realm'], `${edge.url}/token`);
      });

      test('skopeo with credentials pulls through the edge; every token request went through the edge', async () => {
        const tsBefore = ts.requests.length;
        const routeBefore = tokenRouteCount(edge);
        const dest = pullDir();
        const r = await pullImage(`${edge.host}/team/app:v1`, dest, { creds: 'reader:read-pw' });
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(await verifyDirPull(dest, app), { ok: true });
        const seen = ts.requests.slice(tsBefore);
        assert.ok(seen.some((q) => q.user === 'reader' && q.status === 200 && q.scopes.includes('repository:team/app:pull')), JSON.stringify(seen));
        // The token service saw exactly the token requests the edge's token route forwarded: skopeo never went there directly.
        await waitFor(() => tokenRouteCount(edge) - routeBefore === seen.length, { what: 'token requests in the access log to match the token service' });
      });

      test('a user without rights is refused, for content the edge has not seen and for content it has cached', async () => {
        // team/secret was never pulled through this edge.
        const outsider = await pullImage(`${edge.host}/team/secret:v1`, pullDir(), { creds: 'outsider:out-pw', timeoutMs: 60_000 });
        assert.notEqual(outsider.code, 0, 'outsider must not pull team/secret');
        assert.match(outsider.stderr, /unauthorized|denied|authentication required|insufficient_scope/i);
        const wrong = await pullImage(`${edge.host}/team/secret:v1`, pullDir(), { creds: 'reader:nope', timeoutMs: 60_000 });
        assert.notEqual(wrong.code, 0);
        assert.ok(ts.requests.some((q) => q.attemptedUser === 'reader' && q.status === 401));
        // The rightful reader does get it through the edge.
        const dest = pullDir();
        const ok = await pullImage(`${edge.host}/team/secret:v1`, dest, { creds: 'reader:read-pw' });
        assert.equal(ok.code, 0, ok.stderr);
        assert.deepEqual(await verifyDirPull(dest, secret), { ok: true });
        // Both images are now in the edge's cache: still no for the outsider and for anonymous clients.
        for (const repo of ['team/app', 'team/secret']) {
          const cachedOutsider = await pullImage(`${edge.host}/${repo}:v1`, pullDir(), { creds: 'outsider:out-pw', timeoutMs: 60_000 });
          assert.notEqual(cachedOutsider.code, 0, `outsider must not pull ${repo} from the cache`);
          const anonymous = await pullImage(`${edge.host}/${repo}:v1`, pullDir(), { timeoutMs: 60_000 });
          assert.notEqual(anonymous.code, 0, `anonymous must not pull ${repo} from the cache`);
        }
        const layer = app.layers[0];
        assert.ok(layer);
        const blob = await httpRequest(`${edge.url}/v2/team/app/blobs/${layer.digest}`);
        assert.equal(blob.status, 401, 'a cached blob is not served without credentials');
        assert.equal(parseChallenge(blob.headers['www-authenticate']).params['realm'], `${edge.url}/token`);
      });

      test('a push with push rights goes through the edge (uploads and manifest PUT pass through)', async () => {
        const repo = `team/pushed-${mode}`;
        const pushed = await makeOciLayout(path.join(work, `pushed-${mode}`), { layers: [300 * KiB, 50 * KiB], tag: 'v2' });
        const tsBefore = ts.requests.length;
        const routeBefore = tokenRouteCount(edge);
        const logBefore = accessLog(edge).length;
        await pushImage(pushed.layoutDir, 'v2', `${edge.host}/${repo}:v2`, { creds: 'pusher:push-pw' });
        // Access log lines are written asynchronously once each response has closed.
        const lines = await waitFor(() => {
          const l = accessLog(edge).slice(logBefore);
          return l.some((x) => x.route === 'manifest' && x.method === 'PUT') ? l : undefined;
        }, { what: 'the manifest PUT in the access log' });
        assert.ok(lines.some((l) => l.route === 'upload' && l.method === 'PUT' && l.status === 201), 'blob upload finished through the edge');
        assert.ok(lines.some((l) => l.route === 'manifest' && l.method === 'PUT' && l.status === 201), 'manifest PUT through the edge');
        const seen = ts.requests.slice(tsBefore);
        assert.ok(seen.some((q) => q.user === 'pusher' && q.granted.some((g) => g.name === repo && g.actions.includes('push'))), JSON.stringify(seen));
        await waitFor(() => tokenRouteCount(edge) - routeBefore === seen.length, { what: 'token requests in the access log to match the token service' });
        // The registry has it (asked directly, with credentials).
        const raw = await skopeoInspect(`${registry.host}/${repo}:v2`, { creds: 'pusher:push-pw' });
        assert.deepEqual(raw, JSON.parse(pushed.manifestBytes.toString('utf8')));
        // A reader pulls it back through the edge.
        const dest = pullDir();
        const r = await pullImage(`${edge.host}/${repo}:v2`, dest, { creds: 'reader:read-pw' });
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(await verifyDirPull(dest, pushed), { ok: true });
        // A reader cannot push.
        const denied = await makeOciLayout(path.join(work, `denied-${mode}`), { layers: [10 * KiB], tag: 'v1' });
        await assert.rejects(pushImage(denied.layoutDir, 'v1', `${edge.host}/team/denied:v1`, { creds: 'reader:read-pw' }));
      });

      test('the OAuth2 POST form (grant_type=password) through the edge returns an access_token that works', async () => {
        const before = ts.requests.length;
        const form = new URLSearchParams({
          grant_type: 'password',
          username: 'reader',
          password: 'read-pw',
          service: ts.service,
          scope: 'repository:team/app:pull',
          client_id: 'registry-edge-test',
        }).toString();
        const r = await httpRequest(`${edge.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form });
        assert.equal(r.status, 200, r.body.toString('utf8'));
        const body = JSON.parse(r.body.toString('utf8')) as { access_token?: unknown };
        assert.equal(typeof body.access_token, 'string');
        const rec = ts.requests.slice(before);
        assert.equal(rec.length, 1);
        assert.equal(rec[0]?.method, 'POST');
        assert.equal(rec[0]?.grantType, 'password');
        assert.equal(rec[0]?.user, 'reader');
        // A wrong password answers 401 through the edge as well.
        const bad = await httpRequest(`${edge.url}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'password', username: 'reader', password: 'x', service: ts.service }).toString(),
        });
        assert.equal(bad.status, 401);
        // The token opens a repository the edge has never served (so the upstream checks it).
        const tags = await httpRequest(`${edge.url}/v2/team/app/tags/list`, { headers: { authorization: `Bearer ${String(body.access_token)}` } });
        assert.equal(tags.status, 200, tags.body.toString('utf8'));
        assert.deepEqual((JSON.parse(tags.body.toString('utf8')) as { tags?: string[] }).tags, ['v1']);
      });

      test('the edge as the server: ctr pulls with token auth via the edge token route (OAuth2 POST)', async () => {
        const hosts = path.join(work, `hosts-server-${mode}`);
        writeHostsToml(hosts, registry.host, { server: edge.url });
        const ref = `${registry.host}/team/ctr:v1`;
        const tsBefore = ts.requests.length;
        const routeBefore = tokenRouteCount(edge);
        const r = await ctrPull(cd.address, ref, hosts, { user: 'reader:read-pw' });
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.equal((await ctrImages(cd.address)).find((i) => i.ref === ref)?.digest, ctrImage.manifestDigest);
        const seen = ts.requests.slice(tsBefore);
        assert.ok(seen.some((q) => q.method === 'POST' && q.grantType === 'password' && q.user === 'reader' && q.status === 200), JSON.stringify(seen));
        await waitFor(() => tokenRouteCount(edge) - routeBefore === seen.length, { what: 'token requests in the access log to match the token service' });
        await ctrForget(cd.address);
      });

      test('the edge as a mirror (requests carry ?ns=): ctr pulls with token auth; nothing reaches the dead server', async () => {
        const hosts = path.join(work, `hosts-mirror-${mode}`);
        const dead = `http://127.0.0.1:${await freePort()}`;
        writeHostsToml(hosts, registry.host, { server: dead, mirrors: [edge.url] });
        const ref = `${registry.host}/team/ctr-mirror:v1`;
        const tsBefore = ts.requests.length;
        const routeBefore = tokenRouteCount(edge);
        const logBefore = accessLog(edge).length;
        const r = await ctrPull(cd.address, ref, hosts, { user: 'reader:read-pw', httpDump: true });
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.equal((await ctrImages(cd.address)).find((i) => i.ref === ref)?.digest, mirrorImage.manifestDigest);
        // containerd named the registry in ?ns= on its requests to the edge.
        assert.ok(r.stderr.includes(`?ns=${registry.host}`) || r.stderr.includes(`?ns=${encodeURIComponent(registry.host)}`), 'ctr sent ?ns= to the mirror');
        const seen = ts.requests.slice(tsBefore);
        assert.ok(seen.some((q) => q.user === 'reader' && q.status === 200 && q.scopes.includes('repository:team/ctr-mirror:pull')), JSON.stringify(seen));
        await waitFor(() => tokenRouteCount(edge) - routeBefore === seen.length, { what: 'token requests in the access log to match the token service' });
        const blobs = accessLog(edge).slice(logBefore).filter((l) => l.route === 'blob' && l.status === 200);
        for (const l of mirrorImage.layers) assert.ok(blobs.some((b) => b.path?.endsWith(l.digest)), `edge served ${l.digest}`);
        await ctrForget(cd.address);
      });
    });
  }

  describe('over TLS, with a plain listener beside it', () => {
    let edge: Edge;
    let certDir: string;
    let plainAddr: string;

    before(async () => {
      const dir = path.join(work, 'edge-tls');
      const certs = await initCertificates({ hosts: ['127.0.0.1', 'localhost'], outDir: path.join(dir, 'certs') });
      certDir = path.join(dir, 'skopeo-ca');
      fs.mkdirSync(certDir);
      fs.copyFileSync(certs.caCert, path.join(certDir, 'ca.crt'));
      plainAddr = `127.0.0.1:${await freePort()}`;
      edge = await startEdge({
        workDir: dir,
        upstreams: [registry.url],
        configYaml: edgeConfig('upstream-check', ts),
        env: { REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: certs.cert, REGISTRY_EDGE_HTTP_TLS_KEY: certs.key, REGISTRY_EDGE_HTTP_PLAIN_ADDR: plainAddr },
      });
    });

    after(async () => {
      await edge?.stop();
    });

    test('the realm follows the listener (https on TLS, http on plain); skopeo completes the flow over verified TLS', async () => {
      const ca = fs.readFileSync(path.join(certDir, 'ca.crt'));
      const res = await new Promise<{ status: number; challenge: string }>((resolve, reject) => {
        const req = https.get(`https://${edge.host}/v2/`, { ca, agent: false }, (r) => {
          r.resume();
          r.once('end', () => resolve({ status: r.statusCode ?? 0, challenge: String(r.headers['www-authenticate'] ?? '') }));
        });
        req.once('error', reject);
      });
      assert.equal(res.status, 401);
      assert.equal(parseChallenge(res.challenge).params['realm'], `https://${edge.host}/token`);
      const plain = await httpRequest(`http://${plainAddr}/v2/`);
      assert.equal(plain.status, 401);
      assert.equal(parseChallenge(plain.headers['www-authenticate']).params['realm'], `http://${plainAddr}/token`);

      const tsBefore = ts.requests.length;
      const routeBefore = tokenRouteCount(edge);
      const dest = pullDir();
      const r = await pullImage(`${edge.host}/team/app:v1`, dest, { certDir, tlsVerify: true, creds: 'reader:read-pw' });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await verifyDirPull(dest, app), { ok: true });
      const seen = ts.requests.slice(tsBefore);
      assert.ok(seen.some((q) => q.user === 'reader' && q.status === 200), JSON.stringify(seen));
      await waitFor(() => tokenRouteCount(edge) - routeBefore === seen.length, { what: 'token requests in the access log to match the token service' });
    });
  });
});
