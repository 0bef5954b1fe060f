// Self-test of the token-auth fixture: protocol behaviour on its own, then a
// real docker-registry 2.8 configured with its registryConfig(), driven by
// skopeo with credentials and by raw HTTP with hand-minted (forged) tokens.
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeOciLayout, pullImage, pushImage, verifyDirPull, type ImageInfo } from './image.js';
import { httpRequest, removeDir, tempDir, type HttpResult } from './proc.js';
import { startRegistry, type Registry } from './registry.js';
import {
  decodeToken,
  grantAccess,
  libtrustKeyId,
  parseScope,
  startTokenService,
  type IssueOptions,
  type TokenKeyType,
  type TokenService,
  type TokenServiceOptions,
} from './token-service.js';

const USERS: TokenServiceOptions['users'] = {
  pusher: {
    password: 'push-pw',
    access: [
      { repo: 'team-a/*', actions: ['pull', 'push'] },
      { repo: 'public/*', actions: ['pull', 'push'] },
    ],
  },
  reader: { password: 'read-pw', access: [{ repo: 'team-a/*', actions: ['pull'] }] },
  outsider: { password: 'out-pw', access: [{ repo: 'team-b/*', actions: ['pull', 'push'] }] },
};
const ANONYMOUS = [{ repo: 'public/*', actions: ['pull'] }];

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

async function getJson(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await httpRequest(url, { headers });
  return { status: r.status, body: JSON.parse(r.body.toString('utf8')) as Record<string, unknown> };
}

async function postForm(url: string, form: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await httpRequest(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  return { status: r.status, body: JSON.parse(r.body.toString('utf8')) as Record<string, unknown> };
}

function tokenOf(body: Record<string, unknown>): string {
  const t = body['token'] ?? body['access_token'];
  assert.equal(typeof t, 'string');
  return t as string;
}

describe('token service on its own', () => {
  let ts: TokenService;
  before(async () => {
    ts = await startTokenService({ users: USERS, anonymous: ANONYMOUS, expiresInSeconds: 120 });
  });
  after(async () => {
    await ts.stop();
  });

  test('scope parsing and grant intersection', () => {
    assert.deepEqual(parseScope('repository:team-a/app:pull,push'), { type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] });
    assert.deepEqual(parseScope('repository(plugin):127.0.0.1:5000/x:pull'), {
      type: 'repository',
      name: '127.0.0.1:5000/x',
      actions: ['pull'],
    });
    assert.equal(parseScope('garbage'), undefined);
    const rules = [
      { repo: 'team-a/*', actions: ['pull'] },
      { repo: 'team-a/app', actions: ['push'] },
      { repo: 'deep/**', actions: ['*'] },
    ];
    assert.deepEqual(grantAccess(rules, ['repository:team-a/app:pull,push,delete']), [
      { type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] },
    ]);
    // '*' does not cross '/', '**' does.
    assert.deepEqual(grantAccess(rules, ['repository:team-a/x/y:pull']), []);
    assert.deepEqual(grantAccess(rules, ['repository:deep/x/y:pull,delete']), [
      { type: 'repository', name: 'deep/x/y', actions: ['pull', 'delete'] },
    ]);
    assert.deepEqual(grantAccess(rules, ['registry:catalog:*']), []);
  });

  test('certificates chain to the root and kid is the libtrust fingerprint', () => {
    const root = new crypto.X509Certificate(ts.rootCertPem);
    const leaf = new crypto.X509Certificate(ts.signingCertPem);
    assert.ok(leaf.checkIssued(root));
    assert.ok(leaf.verify(root.publicKey));
    assert.ok(root.verify(root.publicKey));
    assert.equal(root.ca, true);
    assert.equal(leaf.ca, false);
    assert.equal(fs.readFileSync(ts.rootCertFile, 'utf8'), ts.rootCertPem);
    const spki = leaf.publicKey.export({ type: 'spki', format: 'der' });
    assert.equal(ts.signingKeyId, libtrustKeyId(spki));
    assert.match(ts.signingKeyId, /^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
    const { header, claims } = decodeToken(ts.issue());
    assert.equal(header['alg'], 'RS256');
    assert.equal(header['kid'], ts.signingKeyId);
    assert.deepEqual(header['x5c'], [leaf.raw.toString('base64')]);
    assert.equal(claims['iss'], 'test-issuer');
    assert.equal(claims['aud'], 'test-registry');
  });

  test('GET: Basic auth, several scopes, intersection of requested and allowed actions', async () => {
    const q = '?service=test-registry&scope=repository:team-a/app:pull,push&scope=repository:team-b/x:pull&offline_token=true';
    const r = await getJson(ts.url + q, { authorization: basic('reader', 'read-pw') });
    assert.equal(r.status, 200);
    assert.equal(r.body['expires_in'], 120);
    assert.equal(typeof r.body['issued_at'], 'string');
    assert.equal(r.body['token'], r.body['access_token']);
    assert.equal(typeof r.body['refresh_token'], 'string');
    const { claims } = decodeToken(tokenOf(r.body));
    assert.equal(claims['sub'], 'reader');
    assert.deepEqual(claims['access'], [{ type: 'repository', name: 'team-a/app', actions: ['pull'] }]);
    assert.equal((claims['exp'] as number) - (claims['iat'] as number), 120);
    const rec = ts.requests.at(-1);
    assert.equal(rec?.user, 'reader');
    assert.deepEqual(rec?.scopes, ['repository:team-a/app:pull,push', 'repository:team-b/x:pull']);
    assert.equal(rec?.refreshTokenIssued, true);
  });

  test('GET: bad credentials are 401, no credentials get the anonymous rights', async () => {
    const scope = '?service=test-registry&scope=repository:public/app:pull,push';
    assert.equal((await getJson(ts.url + scope, { authorization: basic('reader', 'nope') })).status, 401);
    assert.equal((await getJson(ts.url + scope, { authorization: basic('ghost', 'x') })).status, 401);
    assert.equal(ts.requests.at(-1)?.attemptedUser, 'ghost');
    assert.equal((await getJson(ts.url + scope, { authorization: 'Bearer abc' })).status, 401);
    assert.equal((await getJson(`${ts.url}?service=other&scope=x:y:pull`)).status, 400);
    const anon = await getJson(ts.url + scope);
    assert.equal(anon.status, 200);
    assert.deepEqual(decodeToken(tokenOf(anon.body)).claims['access'], [{ type: 'repository', name: 'public/app', actions: ['pull'] }]);
    assert.equal(anon.body['refresh_token'], undefined);
    assert.equal(ts.requests.at(-1)?.user, undefined);
    // Space-separated scopes in one parameter are accepted too.
    const multi = await getJson(`${ts.url}?scope=${encodeURIComponent('repository:public/a:pull repository:team-a/b:pull')}`);
    assert.deepEqual(decodeToken(tokenOf(multi.body)).claims['access'], [{ type: 'repository', name: 'public/a', actions: ['pull'] }]);
  });

  test('POST (OAuth2): password grant with offline access, then refresh_token grant', async () => {
    const first = await postForm(ts.url, {
      grant_type: 'password',
      username: 'pusher',
      password: 'push-pw',
      service: 'test-registry',
      scope: 'repository:team-a/app:pull,push repository:public/x:pull',
      client_id: 'test',
      access_type: 'offline',
    });
    assert.equal(first.status, 200);
    assert.equal(typeof first.body['access_token'], 'string');
    const refresh = first.body['refresh_token'];
    assert.equal(typeof refresh, 'string');
    assert.deepEqual(decodeToken(tokenOf(first.body)).claims['access'], [
      { type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'public/x', actions: ['pull'] },
    ]);
    const second = await postForm(ts.url, {
      grant_type: 'refresh_token',
      refresh_token: refresh as string,
      service: 'test-registry',
      scope: 'repository:team-a/other:push',
    });
    assert.equal(second.status, 200);
    const { claims } = decodeToken(tokenOf(second.body));
    assert.equal(claims['sub'], 'pusher');
    assert.deepEqual(claims['access'], [{ type: 'repository', name: 'team-a/other', actions: ['push'] }]);
    assert.equal((await postForm(ts.url, { grant_type: 'password', username: 'pusher', password: 'x' })).status, 401);
    assert.equal((await postForm(ts.url, { grant_type: 'refresh_token', refresh_token: 'bogus' })).status, 401);
    assert.equal((await postForm(ts.url, { grant_type: 'client_credentials' })).status, 400);
  });

  test('setUser / removeUser / setFailure', async () => {
    ts.setUser('late', { password: 'pw', access: [{ repo: 'late/*', actions: ['pull'] }] });
    const ok = await getJson(`${ts.url}?scope=repository:late/x:pull`, { authorization: basic('late', 'pw') });
    assert.deepEqual(decodeToken(tokenOf(ok.body)).claims['access'], [{ type: 'repository', name: 'late/x', actions: ['pull'] }]);
    ts.removeUser('late');
    assert.equal((await getJson(ts.url, { authorization: basic('late', 'pw') })).status, 401);
    ts.setFailure(503);
    assert.equal((await getJson(ts.url)).status, 503);
    ts.setFailure(null);
    assert.equal((await getJson(ts.url)).status, 200);
  });

  test('issue() builds the requested malformed tokens', () => {
    const none = decodeToken(ts.issue({ signer: 'none' }));
    assert.equal(none.header['alg'], 'none');
    assert.equal(none.signature.length, 0);
    assert.equal(decodeToken(ts.issue({ signer: 'hs256-public-key' })).header['alg'], 'HS256');
    const untrusted = decodeToken(ts.issue({ signer: 'untrusted' }));
    assert.notEqual(untrusted.header['kid'], ts.signingKeyId);
    const kidOnly = decodeToken(ts.issue({ keyRef: 'kid' }));
    assert.equal(kidOnly.header['x5c'], undefined);
    assert.equal(kidOnly.header['kid'], ts.signingKeyId);
    const custom = decodeToken(ts.issue({ claims: { aud: ['a', 'b'], nbf: undefined }, header: { typ: undefined, extra: 1 } }));
    assert.deepEqual(custom.claims['aud'], ['a', 'b']);
    assert.equal('nbf' in custom.claims, false);
    assert.equal('typ' in custom.header, false);
    assert.equal(custom.header['extra'], 1);
    assert.equal(ts.issue({ tamper: 'two-parts' }).split('.').length, 2);
    assert.ok(ts.issue({ tamper: 'strip-signature' }).endsWith('.'));
  });
});

for (const keyType of ['RS256', 'ES256'] as const satisfies readonly TokenKeyType[]) {
  describe(`docker-registry 2.8 behind ${keyType} token auth`, () => {
    let ts: TokenService;
    let reg: Registry;
    let work: string;
    let image: ImageInfo;

    before(async () => {
      work = tempDir('re-tokentest-');
      ts = await startTokenService({ keyType, users: USERS, anonymous: ANONYMOUS });
      reg = await startRegistry({ config: ts.registryConfig() });
      image = await makeOciLayout(path.join(work, 'layout'), { layers: [64 * 1024, 4096] });
      await pushImage(image.layoutDir, image.tag, `${reg.host}/team-a/app:v1`, { creds: 'pusher:push-pw' });
      await pushImage(image.layoutDir, image.tag, `${reg.host}/public/app:v1`, { creds: 'pusher:push-pw' });
    });
    after(async () => {
      await reg?.dispose();
      await ts?.stop();
      if (work) removeDir(work);
    });

    test('the registry challenges with the token realm', async () => {
      const r = await httpRequest(`${reg.url}/v2/team-a/app/manifests/v1`);
      assert.equal(r.status, 401);
      assert.equal(
        r.headers['www-authenticate'],
        `Bearer realm="${ts.url}",service="test-registry",scope="repository:team-a/app:pull"`,
      );
      assert.ok(ts.requests.some((q) => q.user === 'pusher' && q.granted.some((g) => g.actions.includes('push'))));
    });

    test('pull-only user pulls; users without rights and bad passwords fail; anonymous pulls public/*', async () => {
      const pull = async (ref: string, creds?: string): Promise<{ code: number | null; dir: string; stderr: string }> => {
        const dir = fs.mkdtempSync(path.join(work, 'pull-'));
        const r = await pullImage(`${reg.host}/${ref}`, dir, creds === undefined ? {} : { creds });
        return { code: r.code, dir, stderr: r.stderr };
      };
      const ok = await pull('team-a/app:v1', 'reader:read-pw');
      assert.equal(ok.code, 0, ok.stderr);
      assert.deepEqual(await verifyDirPull(ok.dir, image), { ok: true });
      assert.equal(ts.requests.at(-1)?.user, 'reader');

      const denied = await pull('team-a/app:v1', 'outsider:out-pw');
      assert.notEqual(denied.code, 0);
      assert.match(denied.stderr, /unauthorized|denied|authentication required/i);
      const outsiderReq = ts.requests.filter((q) => q.user === 'outsider');
      assert.ok(outsiderReq.length > 0 && outsiderReq.every((q) => q.granted.length === 0));

      const badPw = await pull('team-a/app:v1', 'reader:wrong');
      assert.notEqual(badPw.code, 0);
      assert.ok(ts.requests.some((q) => q.attemptedUser === 'reader' && q.status === 401));

      const anonPrivate = await pull('team-a/app:v1');
      assert.notEqual(anonPrivate.code, 0);
      const anonPublic = await pull('public/app:v1');
      assert.equal(anonPublic.code, 0, anonPublic.stderr);
      assert.deepEqual(await verifyDirPull(anonPublic.dir, image), { ok: true });

      await assert.rejects(
        pushImage(image.layoutDir, image.tag, `${reg.host}/team-a/app:v2`, { creds: 'reader:read-pw' }),
        /unauthorized|denied|authentication required/i,
      );
    });

    test('the registry accepts the service tokens and rejects forged ones', async () => {
      const pullAccess = [{ type: 'repository', name: 'team-a/app', actions: ['pull'] }];
      const get = (token: string): Promise<HttpResult> =>
        httpRequest(`${reg.url}/v2/team-a/app/manifests/v1`, {
          headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.oci.image.manifest.v1+json' },
        });
      const now = Math.floor(Date.now() / 1000);
      const cases: Array<[string, IssueOptions, number]> = [
        ['default (x5c + kid)', {}, 200],
        ['x5c only', { keyRef: 'x5c' }, 200],
        ['x5c with the root too', { keyRef: 'x5c-full' }, 200],
        ['jwk header with x5c inside', { keyRef: 'jwk+x5c' }, 200],
        ['signed by the root key, kid only (root is in the bundle)', { signer: 'root', keyRef: 'kid' }, 200],
        ['exp 30 s ago (within the 60 s leeway)', { claims: { exp: now - 30 } }, 200],
        ['nbf 30 s ahead (within the leeway)', { claims: { nbf: now + 30 } }, 200],
        ['no nbf', { claims: { nbf: undefined } }, 200],
        ['"*" action', { access: [{ type: 'repository', name: 'team-a/app', actions: ['*'] }] }, 200],
        ['kid only, signing cert not in the bundle', { keyRef: 'kid' }, 401],
        ['jwk without chain, not in the bundle', { keyRef: 'jwk' }, 401],
        ['no key reference', { keyRef: 'none' }, 401],
        ['alg none', { signer: 'none' }, 401],
        ['HS256 keyed with the public key', { signer: 'hs256-public-key' }, 401],
        ['key not in the bundle (x5c)', { signer: 'untrusted' }, 401],
        ['key not in the bundle (full foreign chain)', { signer: 'untrusted', keyRef: 'x5c-full' }, 401],
        ['wrong issuer', { claims: { iss: 'someone-else' } }, 401],
        ['wrong audience', { claims: { aud: 'other-registry' } }, 401],
        ['audience as an array', { claims: { aud: ['test-registry'] } }, 401],
        ['exp 90 s ago', { claims: { exp: now - 90 } }, 401],
        ['no exp', { claims: { exp: undefined } }, 401],
        ['exp as a string', { claims: { exp: String(now + 100) } }, 401],
        ['nbf 90 s ahead', { claims: { nbf: now + 90 } }, 401],
        ['claims altered after signing', { tamper: 'claims' }, 401],
        ['signature bit flipped', { tamper: 'signature' }, 401],
        ['empty signature', { tamper: 'strip-signature' }, 401],
        ['header alg differs from the key', { header: { alg: keyType === 'RS256' ? 'RS384' : 'ES384' } }, 401],
        ['no access entries', { access: [] }, 401],
        ['access to another repository', { access: [{ type: 'repository', name: 'team-a/other', actions: ['pull'] }] }, 401],
        ['push but not pull', { access: [{ type: 'repository', name: 'team-a/app', actions: ['push'] }] }, 401],
        ['glob in the access claim is literal', { access: [{ type: 'repository', name: 'team-a/*', actions: ['pull'] }] }, 401],
      ];
      const mismatches: string[] = [];
      for (const [name, opts, want] of cases) {
        const got = (await get(ts.issue({ access: pullAccess, ...opts }))).status;
        if (got !== want) mismatches.push(`${name}: got ${got}, want ${want}`);
      }
      assert.deepEqual(mismatches, []);
      const two = await httpRequest(`${reg.url}/v2/team-a/app/manifests/v1`, {
        headers: { authorization: `Bearer ${ts.issue({ access: pullAccess, tamper: 'two-parts' })}` },
      });
      assert.equal(two.status, 401);
    });
  });

  describe(`docker-registry 2.8 with the ${keyType} signing cert in rootcertbundle`, () => {
    let ts: TokenService;
    let reg: Registry;
    before(async () => {
      ts = await startTokenService({ keyType, trust: 'root+leaf' });
      reg = await startRegistry({ config: ts.registryConfig() });
    });
    after(async () => {
      await reg?.dispose();
      await ts?.stop();
    });

    test('kid-only and bare-jwk tokens verify against the bundle keys', async () => {
      // A repository that does not exist: 404 means the token passed, 401 that it did not.
      const access = [{ type: 'repository', name: 'nothing/here', actions: ['pull'] }];
      const status = async (o: IssueOptions): Promise<number> =>
        (await httpRequest(`${reg.url}/v2/nothing/here/manifests/x`, { headers: { authorization: `Bearer ${ts.issue({ access, ...o })}` } }))
          .status;
      assert.equal(await status({ keyRef: 'kid' }), 404);
      assert.equal(await status({ keyRef: 'jwk' }), 404);
      assert.equal(await status({ keyRef: 'x5c+kid' }), 404);
      assert.equal(await status({ signer: 'untrusted', keyRef: 'kid' }), 401);
      assert.equal(await status({ keyRef: 'kid', signer: 'none' }), 401);
    });
  });
}
