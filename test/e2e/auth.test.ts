// No private image leaks through the cache: a real token service and a real registry with
// auth.token, the edge verifying tokens itself, and every way around it tried.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { logLines, startEdge, type Edge } from '../helpers/edge.js';
import { makeOciLayout, pullImage, pushImage, verifyDirPull, type ImageInfo } from '../helpers/image.js';
import { httpRequest, removeDir, run, tempDir, waitFor } from '../helpers/proc.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { startShim, type Shim } from '../helpers/shim.js';
import { startTokenService, type TokenKeyType, type TokenService } from '../helpers/token-service.js';

const KiB = 1024;
const OCI = 'application/vnd.oci.image.manifest.v1+json';
const now = (): number => Math.floor(Date.now() / 1000);

for (const keyType of ['RS256', 'ES256'] as TokenKeyType[]) {
  describe(`token mode (${keyType}): the edge decides as the centre would, for cached content too`, () => {
    let work: string;
    let tokens: TokenService;
    let registry: Registry;
    let shim: Shim;
    let edge: Edge;
    let privateImage: ImageInfo;
    let publicImage: ImageInfo;
    let teamB: ImageInfo;

    const pullAccess = (repo: string, actions = ['pull']) => [{ type: 'repository', name: repo, actions }];

    before(async () => {
      work = tempDir('re-auth-');
      tokens = await startTokenService({
        keyType,
        users: {
          pusher: { password: 'p', access: [{ repo: '**', actions: ['pull', 'push'] }] },
          alice: { password: 'a', access: [{ repo: 'team-a/*', actions: ['pull'] }] },
          bob: { password: 'b', access: [{ repo: 'team-b/*', actions: ['pull'] }] },
          carol: { password: 'c', access: [{ repo: 'team-b/*', actions: ['pull'] }] },
        },
        anonymous: [{ repo: 'public/*', actions: ['pull'] }],
      });
      registry = await startRegistry({ config: tokens.registryConfig() });
      shim = await startShim(registry.url);
      privateImage = await makeOciLayout(path.join(work, 'private'), { layers: [300 * KiB, 200 * KiB], tag: '1.0' });
      publicImage = await makeOciLayout(path.join(work, 'public'), { layers: [100 * KiB], tag: '1.0' });
      teamB = await makeOciLayout(path.join(work, 'teamb'), { layers: [150 * KiB], tag: '1.0' });
      await pushImage(privateImage.layoutDir, '1.0', `${registry.host}/team-a/private:1.0`, { creds: 'pusher:p' });
      await pushImage(publicImage.layoutDir, '1.0', `${registry.host}/public/app:1.0`, { creds: 'pusher:p' });
      await pushImage(teamB.layoutDir, '1.0', `${registry.host}/team-b/app:1.0`, { creds: 'pusher:p' });
      edge = await startEdge({
        workDir: work,
        upstreams: [shim.url],
        configYaml: [
          'auth:',
          '  mode: token',
          `  token: {service: ${tokens.service}, issuer: ${tokens.issuer}, rootcertbundle: ${tokens.rootCertFile}}`,
          'token:',
          '  path: /token',
          `  url: ${tokens.url}`,
          'cache: {tag_ttl: 1h}',
          '',
        ].join('\n'),
      });
      // alice warms the cache with the private image.
      const warm = await pullImage(`${edge.host}/team-a/private:1.0`, path.join(work, 'warm'), { creds: 'alice:a' });
      assert.equal(warm.code, 0, warm.stderr);
    });

    after(async () => {
      await edge?.stop();
      await shim?.stop();
      await registry?.dispose();
      await tokens?.stop();
      if (work) removeDir(work);
    });

    test('skopeo logs in through the edge and pulls with per-user rights', async () => {
      const alice = await pullImage(`${edge.host}/team-a/private:1.0`, path.join(work, 'alice'), { creds: 'alice:a' });
      assert.equal(alice.code, 0, alice.stderr);
      assert.deepEqual(await verifyDirPull(path.join(work, 'alice'), privateImage), { ok: true });
      const bob = await pullImage(`${edge.host}/team-a/private:1.0`, path.join(work, 'bob'), { creds: 'bob:b' });
      assert.notEqual(bob.code, 0, 'bob has no rights on team-a');
      const anonymous = await pullImage(`${edge.host}/public/app:1.0`, path.join(work, 'anon'));
      assert.equal(anonymous.code, 0, anonymous.stderr);
      const anonymousPrivate = await pullImage(`${edge.host}/team-a/private:1.0`, path.join(work, 'anon-private'));
      assert.notEqual(anonymousPrivate.code, 0);
      assert.ok(tokens.requests.some((r) => r.user === 'alice'), 'the token service was reached (through the edge token route)');
      const subjects = logLines<{ msg?: string; path?: string; status?: number; subject?: string }>(edge.proc.logs()).filter((l) => l.msg === 'request' && l.status === 200 && l.path?.startsWith('/v2/team-a/private/'));
      assert.ok(subjects.some((l) => l.subject === 'alice'), 'the access line names the token\'s subject');
    });

    test('every forged, stale or misdirected token is refused without a byte of cached content', async () => {
      const layer = privateImage.layers[0];
      assert.ok(layer);
      const blobUrl = `${edge.url}/v2/team-a/private/blobs/${layer.digest}`;
      const manifestUrl = `${edge.url}/v2/team-a/private/manifests/${privateImage.manifestDigest}`;
      const valid = tokens.issue({ access: pullAccess('team-a/private') });
      assert.equal((await httpRequest(blobUrl, { headers: { authorization: `Bearer ${valid}` } })).status, 200, 'the valid token works');
      const cases: Array<[string, string | undefined]> = [
        ['no token', undefined],
        ['expired', tokens.issue({ access: pullAccess('team-a/private'), claims: { exp: now() - 3600, nbf: now() - 7200 } })],
        ['not yet valid', tokens.issue({ access: pullAccess('team-a/private'), claims: { nbf: now() + 3600, exp: now() + 7200 } })],
        ['wrong issuer', tokens.issue({ access: pullAccess('team-a/private'), claims: { iss: 'someone-else' } })],
        ['wrong audience', tokens.issue({ access: pullAccess('team-a/private'), claims: { aud: 'another-registry' } })],
        ['token for another repository', tokens.issue({ access: pullAccess('team-b/app') })],
        ['push but not pull', tokens.issue({ access: pullAccess('team-a/private', ['push']) })],
        ['alg none', tokens.issue({ access: pullAccess('team-a/private'), signer: 'none' })],
        ['HS256 keyed with the public key', tokens.issue({ access: pullAccess('team-a/private'), signer: 'hs256-public-key' })],
        ['signed by a key not in the bundle', tokens.issue({ access: pullAccess('team-a/private'), signer: 'untrusted' })],
        ['tampered payload', tokens.issue({ access: pullAccess('team-b/app'), tamper: 'claims' })],
        ['garbage', 'not.a.jwt'],
      ];
      for (const [name, token] of cases) {
        for (const url of [blobUrl, manifestUrl]) {
          const headers: Record<string, string> = { accept: OCI };
          if (token) headers.authorization = `Bearer ${token}`;
          for (const method of ['GET', 'HEAD']) {
            const res = await httpRequest(url, { method, headers });
            assert.ok(res.status === 401 || res.status === 403, `${name} ${method} ${url}: ${res.status}`);
            assert.ok(!res.body.includes(Buffer.from('"schemaVersion"')), `${name}: no manifest bytes`);
            assert.ok(res.body.length < 1024, `${name}: an error body, not content`);
            if (res.status === 401) {
              const challenge = String(res.headers['www-authenticate']);
              assert.match(challenge, new RegExp(`^Bearer realm="${edge.url}/token",service="${tokens.service}",scope="repository:team-a/private:pull"`), name);
            }
          }
        }
      }
    });

    test('a private blob or manifest asked for under a public repository name is not served', async () => {
      const layer = privateImage.layers[0];
      assert.ok(layer);
      const publicToken = tokens.issue({ access: pullAccess('public/app') });
      const headers = { authorization: `Bearer ${publicToken}`, accept: OCI };
      const blob = await httpRequest(`${edge.url}/v2/public/app/blobs/${layer.digest}`, { headers });
      assert.notEqual(blob.status, 200);
      assert.ok(blob.body.length < 1024 && !blob.body.includes(Buffer.from('ustar')));
      assert.match(blob.body.toString(), /BLOB_UNKNOWN/, 'the centre does not have it in public/app');
      const manifest = await httpRequest(`${edge.url}/v2/public/app/manifests/${privateImage.manifestDigest}`, { headers });
      assert.notEqual(manifest.status, 200);
      assert.ok(!manifest.body.includes(Buffer.from('"schemaVersion"')));
      // The public image itself is fine under its own name.
      const own = await httpRequest(`${edge.url}/v2/public/app/blobs/${publicImage.layers[0]?.digest}`, { headers });
      assert.equal(own.status, 200);
    });

    test('a user allowed team-b/* pulls a cached image without any upstream request for authorization', async () => {
      const first = await pullImage(`${edge.host}/team-b/app:1.0`, path.join(work, 'bob-b'), { creds: 'bob:b' });
      assert.equal(first.code, 0, first.stderr);
      shim.reset();
      const dest = path.join(work, 'carol-b');
      const carol = await pullImage(`${edge.host}/team-b/app:1.0`, dest, { creds: 'carol:c' });
      assert.equal(carol.code, 0, carol.stderr);
      assert.deepEqual(await verifyDirPull(dest, teamB), { ok: true });
      assert.equal(shim.stats.requests.length, 0, `no upstream request: ${shim.stats.requests.map((r) => `${r.method} ${r.path}`).join(', ')}`);
    });
  });
}

describe('upstream-check mode with htpasswd basic auth at the centre', () => {
  let work: string;
  let registry: Registry;
  let shim: Shim;
  let edge: Edge;
  let image: ImageInfo;
  let htpasswdFile: string;

  const htpasswd = async (users: Array<[string, string]>): Promise<void> => {
    const lines: string[] = [];
    for (const [user, password] of users) {
      const r = await run('htpasswd', ['-Bbn', user, password]);
      assert.equal(r.code, 0, r.stderr);
      lines.push(r.stdout.trim());
    }
    writeFileSync(htpasswdFile, lines.join('\n') + '\n');
  };
  const basic = (user: string, password: string): string => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');

  before(async () => {
    work = tempDir('re-check-');
    htpasswdFile = path.join(work, 'htpasswd');
    await htpasswd([['dave', 'd1'], ['pusher', 'p']]);
    registry = await startRegistry({ config: { auth: { htpasswd: { realm: 'central', path: htpasswdFile } } } });
    shim = await startShim(registry.url);
    image = await makeOciLayout(path.join(work, 'img'), { layers: [200 * KiB], tag: '1.0' });
    await pushImage(image.layoutDir, '1.0', `${registry.host}/team/app:1.0`, { creds: 'pusher:p' });
    edge = await startEdge({ workDir: work, upstreams: [shim.url], env: { REGISTRY_EDGE_AUTH_MODE: 'upstream-check', REGISTRY_EDGE_AUTH_CHECK_TTL: '1s' } });
  });

  after(async () => {
    await edge?.stop();
    await shim?.stop();
    await registry?.dispose();
    if (work) removeDir(work);
  });

  test('accepted credentials are remembered briefly; once the centre rejects them, so does the edge', async () => {
    const url = `${edge.url}/v2/team/app/blobs/${image.layers[0]?.digest}`;
    const first = await httpRequest(url, { headers: { authorization: basic('dave', 'd1') } });
    assert.equal(first.status, 200);
    shim.reset();
    const second = await httpRequest(url, { headers: { authorization: basic('dave', 'd1') } });
    assert.equal(second.status, 200);
    assert.equal(shim.stats.requests.length, 0, 'the decision was reused within auth.check.ttl');

    const noCreds = await httpRequest(url);
    assert.equal(noCreds.status, 401, 'no credentials: the centre says no');
    assert.match(String(noCreds.headers['www-authenticate']), /Basic realm="central"/);
    const wrong = await httpRequest(url, { headers: { authorization: basic('dave', 'nope') } });
    assert.equal(wrong.status, 401);
    assert.ok(wrong.body.length < 1024);

    // The centre changes dave's password (registry 2.8 reads htpasswd at start).
    await htpasswd([['dave', 'd2'], ['pusher', 'p']]);
    await registry.restart();
    const refused = await waitFor(
      async () => {
        const r = await httpRequest(url, { headers: { authorization: basic('dave', 'd1') } });
        return r.status === 401 ? r : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 100, what: 'the edge to stop accepting the old password' },
    );
    assert.ok(refused.body.length < 1024, 'no content with the refusal');
    const renewed = await httpRequest(url, { headers: { authorization: basic('dave', 'd2') } });
    assert.equal(renewed.status, 200);
  });
});

describe('public mode with an htpasswd file for clients of the edge', () => {
  let work: string;
  let registry: Registry;
  let edge: Edge;
  let image: ImageInfo;

  before(async () => {
    work = tempDir('re-htpasswd-');
    const file = path.join(work, 'htpasswd');
    const entry = await run('htpasswd', ['-Bbn', 'erin', 'e-secret']);
    assert.equal(entry.code, 0, entry.stderr);
    writeFileSync(file, entry.stdout);
    registry = await startRegistry();
    image = await makeOciLayout(path.join(work, 'img'), { layers: [100 * KiB], tag: '1.0' });
    await pushImage(image.layoutDir, '1.0', `${registry.host}/library/app:1.0`);
    edge = await startEdge({ workDir: work, upstreams: [registry.url], env: { REGISTRY_EDGE_AUTH_HTPASSWD_PATH: file, REGISTRY_EDGE_AUTH_HTPASSWD_REALM: 'zone-a' } });
  });

  after(async () => {
    await edge?.stop();
    await registry?.dispose();
    if (work) removeDir(work);
  });

  test('only users in the file may pull, cached content included', async () => {
    const dest = path.join(work, 'erin');
    const ok = await pullImage(`${edge.host}/library/app:1.0`, dest, { creds: 'erin:e-secret' });
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(await verifyDirPull(dest, image), { ok: true });
    const served = logLines<{ msg?: string; status?: number; route?: string; subject?: string }>(edge.proc.logs()).filter((l) => l.msg === 'request' && l.status === 200 && l.route === 'blob');
    assert.ok(served.length > 0 && served.every((l) => l.subject === 'erin'), 'the access line names the htpasswd user');
    const blob = `${edge.url}/v2/library/app/blobs/${image.layers[0]?.digest}`;
    for (const authorization of [undefined, 'Basic ' + Buffer.from('erin:wrong').toString('base64'), 'Basic ' + Buffer.from('mallory:e-secret').toString('base64'), 'Bearer x']) {
      const res = await httpRequest(blob, { headers: authorization ? { authorization } : {} });
      assert.equal(res.status, 401, String(authorization));
      assert.equal(res.headers['www-authenticate'], 'Basic realm="zone-a"');
      assert.ok(res.body.length < 1024);
    }
    assert.equal((await httpRequest(`${edge.url}/v2/`)).status, 401);
    const denied = await pullImage(`${edge.host}/library/app:1.0`, path.join(work, 'anon'));
    assert.notEqual(denied.code, 0);
  });
});
