// TokenVerifier against tokens minted by the test token service (the same
// tokens a real registry:2 accepts or refuses), plus hand-made ones for what
// the fixture cannot mint: intermediate CAs, ES384, EdDSA, DER-encoded ECDSA
// signatures and RFC 7638 thumbprint kids. The clock is injected everywhere.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import {
  TokenVerifier,
  jwkThumbprint,
  libtrustKeyId,
  parseScope,
  type Access,
  type TokenVerifierOptions,
  type VerifyResult,
} from '../../src/auth/token-verifier.js';
import { removeDir, tempDir } from '../helpers/proc.js';
import { decodeToken, startTokenService, type TokenService } from '../helpers/token-service.js';

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');
const b64json = (v: unknown): string => b64url(JSON.stringify(v));
const sec = (ms: number): number => Math.floor(ms / 1000);

/** Signs a compact JWS with node:crypto (ES* as raw r||s, as JOSE wants). */
function mint(header: Record<string, unknown>, claims: Record<string, unknown>, key: crypto.KeyObject): string {
  const alg = String(header['alg']);
  const input = `${b64json(header)}.${b64json(claims)}`;
  const data = Buffer.from(input);
  let sig: Buffer;
  if (alg === 'EdDSA') sig = crypto.sign(null, data, key);
  else if (alg.startsWith('ES')) sig = crypto.sign(`sha${alg.slice(2)}`, data, { key, dsaEncoding: 'ieee-p1363' });
  else sig = crypto.sign(`sha${alg.slice(2)}`, data, key);
  return `${input}.${b64url(sig)}`;
}

/** Raw r||s to the DER ECDSA-Sig-Value (what X.509 uses, and what JOSE forbids). */
function p1363ToDer(sig: Buffer): Buffer {
  const half = sig.length / 2;
  const int = (b: Buffer): Buffer => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    let v = b.subarray(i);
    if ((v[0] ?? 0) & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
    return Buffer.concat([Buffer.from([0x02, v.length]), v]);
  };
  const body = Buffer.concat([int(sig.subarray(0, half)), int(sig.subarray(half))]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

function certKey(pem: string): crypto.KeyObject {
  return new crypto.X509Certificate(pem).publicKey;
}

function certB64(pem: string): string {
  return new crypto.X509Certificate(pem).raw.toString('base64');
}

function assertOk(r: VerifyResult): Extract<VerifyResult, { ok: true }> {
  assert.ok(r.ok, `expected ok, got: ${r.ok ? '' : r.reason}`);
  return r;
}

function assertFail(r: VerifyResult, reason: RegExp): void {
  assert.equal(r.ok, false, 'expected the token to be refused');
  if (!r.ok) assert.match(r.reason, reason);
}

// ---------------------------------------------------------------------------

describe('key identifiers', () => {
  test('RFC 7638 section 3.1 example thumbprint', () => {
    const key = crypto.createPublicKey({
      format: 'jwk',
      key: {
        kty: 'RSA',
        e: 'AQAB',
        n:
          '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64t' +
          'Z_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91Cb' +
          'OpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
      },
    });
    assert.equal(jwkThumbprint(key), 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
  });

  test('libtrust key ID: 12 groups of 4 base32 characters', () => {
    const { publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    assert.match(libtrustKeyId(publicKey), /^[A-Z2-7]{4}(?::[A-Z2-7]{4}){11}$/);
  });
});

describe('parseScope and allows', () => {
  test('parses single, multiple, port-bearing and class-bearing scopes', () => {
    assert.deepEqual(parseScope('repository:team-a/app:pull,push'), [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] }]);
    assert.deepEqual(parseScope('repository:localhost:5000/x/y:pull'), [{ type: 'repository', name: 'localhost:5000/x/y', actions: ['pull'] }]);
    assert.deepEqual(parseScope('repository(plugin):vieux/sshfs:pull'), [{ type: 'repository', name: 'vieux/sshfs', actions: ['pull'] }]);
    assert.deepEqual(parseScope('  repository:a:pull   registry:catalog:*  repository:b:pull,pull,,push '), [
      { type: 'repository', name: 'a', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
      { type: 'repository', name: 'b', actions: ['pull', 'push'] },
    ]);
    assert.deepEqual(parseScope('repository:only-name'), []);
    assert.deepEqual(parseScope(':x:pull repository::pull garbage'), []);
    assert.deepEqual(parseScope(''), []);
    assert.deepEqual(parseScope('repository:a:'), [{ type: 'repository', name: 'a', actions: [] }]);
  });

  test('allows: exact repository name, the action or *', () => {
    const access: Access[] = [
      { type: 'repository', name: 'team-a/app', actions: ['pull'] },
      { type: 'repository', name: 'team-a/upload', actions: ['push'] },
      { type: 'repository', name: 'team-a/all', actions: ['*'] },
      { type: 'registry', name: 'team-a/reg', actions: ['pull', '*'] },
    ];
    assert.equal(TokenVerifier.allows(access, 'team-a/app', 'pull'), true);
    assert.equal(TokenVerifier.allows(access, 'team-a/app', 'push'), false);
    assert.equal(TokenVerifier.allows(access, 'team-a/other', 'pull'), false, 'other repository');
    assert.equal(TokenVerifier.allows(access, 'team-a', 'pull'), false, 'prefix is not a match');
    assert.equal(TokenVerifier.allows(access, 'team-a/app/sub', 'pull'), false, 'no implicit children');
    assert.equal(TokenVerifier.allows(access, 'team-a/upload', 'pull'), false, 'push-only does not grant pull');
    assert.equal(TokenVerifier.allows(access, 'team-a/upload', 'push'), true);
    assert.equal(TokenVerifier.allows(access, 'team-a/all', 'pull'), true, 'wildcard action');
    assert.equal(TokenVerifier.allows(access, 'team-a/all', 'delete'), true, 'wildcard action');
    assert.equal(TokenVerifier.allows(access, 'team-a/reg', 'pull'), false, 'not a repository entry');
    assert.equal(TokenVerifier.allows([], 'team-a/app', 'pull'), false);
  });
});

// ---------------------------------------------------------------------------

for (const keyType of ['RS256', 'ES256'] as const) {
  describe(`TokenVerifier with ${keyType} tokens from the token service`, () => {
    let ts: TokenService;
    /** A second service: its CA is not in ts's bundle. */
    let foreign: TokenService;
    let clock = 0;
    const now = (): number => clock;
    const make = (over: Partial<TokenVerifierOptions> = {}): TokenVerifier =>
      new TokenVerifier({ issuer: ts.issuer, service: ts.service, rootCertBundlePem: ts.rootCertPem, now, ...over });
    const withLeafInBundle = (): TokenVerifier => make({ rootCertBundlePem: ts.rootCertPem + ts.signingCertPem });
    const pushPull = [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] }];

    before(async () => {
      ts = await startTokenService({ keyType });
      foreign = await startTokenService({ keyType });
    });
    after(async () => {
      await Promise.all([ts.stop(), foreign.stop()]);
    });
    beforeEach(() => {
      clock = Date.now();
    });

    test('valid token with x5c (+kid) verifies', () => {
      const token = ts.issue({ subject: 'alice', access: pushPull });
      const r = assertOk(make().verify(token));
      assert.equal(r.subject, 'alice');
      assert.deepEqual(r.access, pushPull);
      assert.equal(r.expiresAt, Number(decodeToken(token).claims['exp']) * 1000);
      assert.equal(TokenVerifier.allows(r.access, 'team-a/app', 'push'), true);
    });

    test('x5c only, and the full chain including the root, verify', () => {
      const v = make();
      assertOk(v.verify(ts.issue({ keyRef: 'x5c' })));
      assertOk(v.verify(ts.issue({ keyRef: 'x5c-full' })));
    });

    test('a token signed by the bundle root itself (x5c = [root]) verifies', () => {
      assertOk(make().verify(ts.issue({ signer: 'root', keyRef: 'x5c' })));
    });

    test('kid only: libtrust fingerprint (registry 2.8) of a bundle certificate', () => {
      assert.equal(libtrustKeyId(certKey(ts.signingCertPem)), ts.signingKeyId, 'same ID as the fixture computes');
      const token = ts.issue({ keyRef: 'kid' });
      assert.equal(decodeToken(token).header['kid'], ts.signingKeyId);
      assertOk(withLeafInBundle().verify(token));
      assertFail(make().verify(token), /^unknown key/);
    });

    test('kid only: RFC 7638 JWK thumbprint (registry 3) of a bundle certificate', () => {
      const thumb = jwkThumbprint(certKey(ts.signingCertPem));
      assert.ok(thumb !== undefined);
      const token = ts.issue({ keyRef: 'kid', header: { kid: thumb } });
      assertOk(withLeafInBundle().verify(token));
      assertFail(make().verify(token), /^unknown key/);
      assertFail(withLeafInBundle().verify(ts.issue({ keyRef: 'kid', header: { kid: 'AAAA:BBBB' } })), /^unknown key/);
    });

    test('kid of the root key works for a root-signed token', () => {
      assertOk(make().verify(ts.issue({ signer: 'root', keyRef: 'kid' })));
    });

    test('jwk header: with its own x5c, or a key of the bundle', () => {
      assertOk(make().verify(ts.issue({ keyRef: 'jwk+x5c' })));
      assertFail(make().verify(ts.issue({ keyRef: 'jwk' })), /^unknown key/);
      assertOk(withLeafInBundle().verify(ts.issue({ keyRef: 'jwk' })));
      assertFail(make().verify(ts.issue({ signer: 'untrusted', keyRef: 'jwk+x5c' })), /^x5c chain not trusted/);
    });

    test('jwk header whose key is not the key of its x5c leaf is refused', () => {
      const untrustedJwk = decodeToken(ts.issue({ signer: 'untrusted', keyRef: 'jwk' })).header['jwk'];
      assert.ok(untrustedJwk !== null && typeof untrustedJwk === 'object');
      const jwk = { ...untrustedJwk, x5c: [certB64(ts.signingCertPem)] };
      assertFail(make().verify(ts.issue({ signer: 'untrusted', keyRef: 'jwk', header: { jwk } })), /^unknown key: jwk is not the key/);
    });

    test('no key reference at all is refused', () => {
      assertFail(withLeafInBundle().verify(ts.issue({ keyRef: 'none' })), /^unknown key/);
    });

    test('exp: beyond the leeway refused, within it accepted; exp is required', () => {
      const v = make();
      assertFail(v.verify(ts.issue({ claims: { exp: sec(clock) - 61, nbf: sec(clock) - 300 } })), /^expired/);
      assertOk(v.verify(ts.issue({ claims: { exp: sec(clock) - 59, nbf: sec(clock) - 300 } })));
      assertFail(v.verify(ts.issue({ claims: { exp: undefined } })), /^malformed: exp/);
      assertFail(v.verify(ts.issue({ claims: { exp: 'soon' } })), /^malformed: exp/);
      const strict = make({ leewaySeconds: 0 });
      assertFail(strict.verify(ts.issue({ claims: { exp: sec(clock) - 1 } })), /^expired/);
    });

    test('nbf: in the future beyond the leeway refused, within it accepted', () => {
      const v = make();
      assertFail(v.verify(ts.issue({ claims: { nbf: sec(clock) + 61 } })), /^not yet valid/);
      assertOk(v.verify(ts.issue({ claims: { nbf: sec(clock) + 59 } })));
      assertOk(v.verify(ts.issue({ claims: { nbf: undefined } }))); // nbf is optional
      assertFail(v.verify(ts.issue({ claims: { nbf: '0' } })), /^malformed: nbf/);
    });

    test('iss must equal the issuer', () => {
      assertFail(make().verify(ts.issue({ claims: { iss: 'someone-else' } })), /^bad issuer/);
      assertFail(make().verify(ts.issue({ claims: { iss: undefined } })), /^bad issuer/);
    });

    test('aud: string or array containing the service', () => {
      const v = make();
      assertFail(v.verify(ts.issue({ claims: { aud: 'other-registry' } })), /^bad audience/);
      assertFail(v.verify(ts.issue({ claims: { aud: undefined } })), /^bad audience/);
      assertFail(v.verify(ts.issue({ claims: { aud: ['a', 'b'] } })), /^bad audience/);
      assertOk(v.verify(ts.issue({ claims: { aud: ['other', ts.service] } })));
      assertFail(v.verify(ts.issue({ claims: { aud: 42 } })), /^malformed: aud/);
    });

    test('alg none is refused', () => {
      const token = ts.issue({ signer: 'none' });
      assert.equal(decodeToken(token).header['alg'], 'none');
      assertFail(make().verify(token), /^alg not allowed/);
    });

    test('HS256 with the public key as the HMAC secret is refused', () => {
      const token = ts.issue({ signer: 'hs256-public-key' });
      assert.equal(decodeToken(token).header['alg'], 'HS256');
      assertFail(make().verify(token), /^alg not allowed/);
      assertFail(withLeafInBundle().verify(ts.issue({ signer: 'hs256-public-key', keyRef: 'kid' })), /^alg not allowed/);
    });

    test('alg that does not fit the key type is refused', () => {
      const other = keyType === 'RS256' ? 'ES256' : 'RS256';
      assertFail(make().verify(ts.issue({ header: { alg: other } })), /^alg not allowed/);
      const sameFamily = keyType === 'RS256' ? 'RS512' : 'ES384';
      const r = make().verify(ts.issue({ header: { alg: sameFamily } }));
      assertFail(r, keyType === 'RS256' ? /^bad signature/ : /^alg not allowed/);
    });

    test('key not in the bundle: a self-signed x5c of another CA', () => {
      const token = foreign.issue({ signer: 'root', keyRef: 'x5c' });
      assertFail(make().verify(token), /^x5c chain not trusted/);
    });

    test('x5c leaf signed by an untrusted CA (with and without that CA in x5c)', () => {
      assertFail(make().verify(ts.issue({ signer: 'untrusted', keyRef: 'x5c' })), /^x5c chain not trusted/);
      assertFail(make().verify(ts.issue({ signer: 'untrusted', keyRef: 'x5c-full' })), /^x5c chain not trusted/);
    });

    test('an untrusted x5c does not fall back to a trusted kid', () => {
      const token = ts.issue({ signer: 'untrusted', keyRef: 'x5c+kid', header: { kid: ts.signingKeyId } });
      assertFail(withLeafInBundle().verify(token), /^x5c chain not trusted/);
    });

    test('x5c naming a trusted certificate but signed by another key', () => {
      // Header claims ts's signing cert; the signature comes from the untrusted signer.
      const token = ts.issue({ signer: 'untrusted', keyRef: 'x5c', header: { x5c: [certB64(ts.signingCertPem)] } });
      assertFail(make().verify(token), /^bad signature/);
    });

    test('tampered payload (a valid signature of another payload) and flipped signature', () => {
      assertFail(make().verify(ts.issue({ access: pushPull, tamper: 'claims' })), /^bad signature/);
      assertFail(make().verify(ts.issue({ tamper: 'signature' })), /^bad signature/);
      assertFail(make().verify(ts.issue({ tamper: 'strip-signature' })), /^bad signature/);
    });

    test('x5c certificates past their validity are refused; kid-only keys ignore dates as registry:2 does', () => {
      clock += 400 * 86_400_000; // the fixture's certificates last 365 days
      const claims = { exp: sec(clock) + 300, nbf: sec(clock) };
      assertFail(make().verify(ts.issue({ claims })), /^x5c chain not trusted: .*expired/);
      assertOk(withLeafInBundle().verify(ts.issue({ keyRef: 'kid', claims })));
      clock = Date.now() - 2 * 3_600_000; // before the certificates' notBefore (now - 1 h)
      const early = { exp: sec(clock) + 300, nbf: sec(clock) };
      assertFail(make().verify(ts.issue({ claims: early })), /^x5c chain not trusted: .*not yet valid/);
    });

    test('malformed tokens never throw and are refused', () => {
      const v = withLeafInBundle();
      const good = ts.issue();
      const [h = '', c = '', s = ''] = good.split('.');
      const cases: unknown[] = [
        '',
        '.',
        '..',
        '...',
        ts.issue({ tamper: 'two-parts' }),
        `${good}.extra`,
        `${h}!.${c}.${s}`,
        `${h}.${c}.${s}*`,
        `${h}.${c}x.${s}`, // length % 4 == 1
        `${b64url('not json')}.${c}.${s}`,
        `${h}.${b64url('{"exp":')}.${s}`,
        `${b64json([1, 2])}.${c}.${s}`,
        `${h}.${b64json('string')}.${s}`,
        `${b64json(null)}.${b64json(null)}.${s}`,
        `${b64json({ typ: 'JWT' })}.${c}.${s}`, // no alg
        `${b64json({ alg: 42 })}.${c}.${s}`,
        `${b64json({ alg: 'RS256', x5c: 'abc' })}.${c}.${s}`,
        `${b64json({ alg: 'RS256', x5c: [42] })}.${c}.${s}`,
        `${b64json({ alg: 'RS256', x5c: ['!!!'] })}.${c}.${s}`,
        `${b64json({ alg: 'RS256', x5c: ['AAAA'] })}.${c}.${s}`,
        `${b64json({ alg: 'RS256', x5c: Array(20).fill('AAAA') })}.${c}.${s}`,
        `${b64json({ alg: 'RS256', jwk: { kty: 'RSA' } })}.${c}.${s}`,
        `${b64json({ alg: 'RS256', jwk: 'x' })}.${c}.${s}`,
        `${b64json({ alg: 'RS256', kid: 7 })}.${c}.${s}`,
        `${b64json({ alg: '__proto__' })}.${c}.${s}`,
        `${b64json({ alg: 'constructor' })}.${c}.${s}`,
        'a'.repeat(200_000),
        `${h}.${c}.${'A'.repeat(100_000)}`,
        'Bearer ' + good,
        null,
        undefined,
        42,
        {},
      ];
      for (const tok of cases) {
        let r: VerifyResult | undefined;
        assert.doesNotThrow(() => {
          r = v.verify(tok as string);
        }, `verify(${String(tok).slice(0, 60)}) threw`);
        assert.equal(r?.ok, false, `accepted: ${String(tok).slice(0, 60)}`);
      }
      // Well-signed tokens with ill-typed claims.
      for (const claims of [{ access: 'all' }, { access: [{ type: 'repository', name: 'x', actions: 'pull' }] }, { access: [null] }, { sub: 7 }, { iss: 7 }]) {
        assertFail(v.verify(ts.issue({ claims })), /^(malformed|bad issuer)/);
      }
      // And the good one still passes.
      assertOk(v.verify(good));
    });

    test('access claim: missing or null is empty; actions default to none', () => {
      const v = make();
      assert.deepEqual(assertOk(v.verify(ts.issue({ claims: { access: undefined } }))).access, []);
      assert.deepEqual(assertOk(v.verify(ts.issue({ claims: { access: null } }))).access, []);
      const r = assertOk(v.verify(ts.issue({ claims: { access: [{ type: 'repository', name: 'a' }] } })));
      assert.deepEqual(r.access, [{ type: 'repository', name: 'a', actions: [] }]);
      assert.equal(TokenVerifier.allows(r.access, 'a', 'pull'), false);
    });

    test('results are cached until exp + leeway; the cache is bounded', () => {
      const v = make({ cacheSize: 3 });
      const token = ts.issue({ access: pushPull, claims: { exp: sec(clock) + 10 } });
      const first = assertOk(v.verify(token));
      assert.equal(v.verify(token), first, 'second verify is served from the cache');
      assert.ok(Object.isFrozen(first) && Object.isFrozen(first.access), 'cached results cannot be altered');
      clock += 69_000;
      assert.equal(v.verify(token), first, 'still within exp + leeway');
      clock += 2_000;
      assertFail(v.verify(token), /^expired/);
      assert.equal(v.cachedTokens, 0, 'the expired entry is dropped');
      clock = Date.now();
      for (let i = 0; i < 10; i++) assertOk(v.verify(ts.issue()));
      assert.equal(v.cachedTokens, 3);
      assertFail(v.verify(ts.issue({ tamper: 'claims' })), /^bad signature/);
      assert.equal(v.cachedTokens, 3, 'failures are not cached');
    });

    test('a cached result is not served outside its validity window (clock moved back before nbf)', () => {
      const v = make();
      const token = ts.issue({ claims: { nbf: sec(clock) } });
      assertOk(v.verify(token));
      clock -= 120_000;
      assertFail(v.verify(token), /^not yet valid/);
    });

    test('a cached result ends when a certificate of its x5c chain expires', () => {
      const v = make();
      clock += 364 * 86_400_000;
      const token = ts.issue({ claims: { exp: sec(clock) + 3 * 86_400, nbf: sec(clock) } });
      assertOk(v.verify(token));
      clock += 2 * 86_400_000; // past the leaf's notAfter (365 days), before the token's exp
      assertFail(v.verify(token), /^x5c chain not trusted: .*expired/);
    });

    test('the cache is per token string: a tampered copy of a cached token is still refused', () => {
      const v = make();
      const token = ts.issue({ access: pushPull });
      assertOk(v.verify(token));
      const [h = '', , s = ''] = token.split('.');
      const claims = decodeToken(token).claims;
      const forged = `${h}.${b64json({ ...claims, access: [{ type: 'repository', name: '*', actions: ['*'] }] })}.${s}`;
      assertFail(v.verify(forged), /^bad signature/);
    });

    test('constructor rejects a bundle without certificates', () => {
      assert.throws(() => make({ rootCertBundlePem: '' }), /no CERTIFICATE/);
      assert.throws(() => make({ rootCertBundlePem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }), /does not parse/);
    });

    test(`cost per verify (${keyType})`, (t) => {
      const cold = Array.from({ length: 100 }, () => ts.issue({ access: pushPull }));
      // First verify with a new verifier: parses and verifies the x5c chain too.
      const firstStart = process.hrtime.bigint();
      const fresh = make();
      assertOk(fresh.verify(cold[0] as string));
      const firstUs = Number(process.hrtime.bigint() - firstStart) / 1000;
      // Cold: distinct tokens (signature + JSON + claims; the chain is cached).
      let start = process.hrtime.bigint();
      for (const tok of cold.slice(1)) assertOk(fresh.verify(tok));
      const coldUs = Number(process.hrtime.bigint() - start) / 1000 / (cold.length - 1);
      // Cached, as in a server: every request brings a new string (its hash is
      // not yet computed), made here beforehand from bytes like a header value.
      const n = 20_000;
      const token = cold[1] as string;
      const copies = Array.from({ length: n }, () => Buffer.from(token, 'latin1').toString('latin1'));
      let okCount = 0;
      start = process.hrtime.bigint();
      for (const copy of copies) if (fresh.verify(copy).ok) okCount++;
      const cachedUs = Number(process.hrtime.bigint() - start) / 1000 / n;
      // The same string object again and again (hash already computed).
      start = process.hrtime.bigint();
      for (let i = 0; i < n; i++) if (fresh.verify(token).ok) okCount++;
      const sameUs = Number(process.hrtime.bigint() - start) / 1000 / n;
      assert.equal(okCount, 2 * n);
      t.diagnostic(
        `${keyType} verify (token ${token.length} chars): first with a new verifier (bundle parse + x5c chain) ${firstUs.toFixed(0)} µs; ` +
          `cold ${coldUs.toFixed(1)} µs/token; cached ${cachedUs.toFixed(2)} µs/token (new string each time), ` +
          `${sameUs.toFixed(3)} µs (same string)`,
      );
    });
  });
}

// ---------------------------------------------------------------------------
// Chains and algorithms the fixture cannot make: built with openssl.

describe('TokenVerifier with openssl-made chains (intermediate CA, ES384, EdDSA)', () => {
  let dir = '';
  let clock = 0;
  const now = (): number => clock;
  const pem = (name: string): string => fs.readFileSync(path.join(dir, `${name}.pem`), 'utf8');
  const key = (name: string): crypto.KeyObject => crypto.createPrivateKey(fs.readFileSync(path.join(dir, `${name}.key`)));
  const claims = (): Record<string, unknown> => ({
    iss: 'iss',
    aud: 'svc',
    sub: 'bob',
    exp: sec(clock) + 300,
    nbf: sec(clock),
    access: [{ type: 'repository', name: 'x/y', actions: ['pull'] }],
  });
  const verifier = (bundle: string): TokenVerifier => new TokenVerifier({ issuer: 'iss', service: 'svc', rootCertBundlePem: bundle, now });

  before(() => {
    dir = tempDir('re-auth-');
    const cnf = path.join(dir, 'openssl.cnf');
    fs.writeFileSync(
      cnf,
      [
        '[req]',
        'distinguished_name = dn',
        'prompt = no',
        '[dn]',
        'CN = placeholder',
        '[ca]',
        'basicConstraints = critical,CA:TRUE',
        'keyUsage = critical,keyCertSign,cRLSign',
        'subjectKeyIdentifier = hash',
        '[leaf]',
        'basicConstraints = critical,CA:FALSE',
        'keyUsage = critical,digitalSignature',
        'subjectKeyIdentifier = hash',
        '[noca]',
        'basicConstraints = critical,CA:FALSE',
        '',
      ].join('\n'),
    );
    const ossl = (...args: string[]): void => {
      execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    };
    const selfSigned = (name: string, ext: string, keyArgs: string[]): void =>
      ossl('req', '-x509', '-config', cnf, '-extensions', ext, ...keyArgs, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '30', '-subj', `/CN=${name}`);
    const signed = (name: string, ext: string, keyArgs: string[], ca: string): void => {
      ossl('req', '-new', '-config', cnf, ...keyArgs, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
      ossl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-set_serial', String(crypto.randomInt(1, 2 ** 47)), '-days', '30', '-extfile', cnf, '-extensions', ext, '-out', `${name}.pem`);
    };
    const p384 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'];
    const p256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
    selfSigned('root', 'ca', p384);
    signed('int', 'ca', p384, 'root');
    signed('leaf', 'leaf', p384, 'int');
    signed('notca', 'noca', p256, 'root'); // a non-CA certificate (no keyUsage limits) used as an issuer
    signed('badleaf', 'leaf', p256, 'notca');
    selfSigned('ed', 'ca', ['-newkey', 'ed25519']);
    signed('edleaf', 'leaf', ['-newkey', 'ed25519'], 'root');
    clock = Date.now() + 1000; // after the certificates' notBefore (openssl: now, second precision)
  });
  after(() => removeDir(dir));

  test('ES384 leaf -> intermediate -> root in bundle', () => {
    const chain = [certB64(pem('leaf')), certB64(pem('int'))];
    const token = mint({ alg: 'ES384', typ: 'JWT', x5c: chain }, claims(), key('leaf'));
    const r = assertOk(verifier(pem('root')).verify(token));
    assert.equal(r.subject, 'bob');
    assert.equal(TokenVerifier.allows(r.access, 'x/y', 'pull'), true);
    // Without the intermediate the leaf does not chain to the root.
    assertFail(verifier(pem('root')).verify(mint({ alg: 'ES384', x5c: [chain[0]] }, claims(), key('leaf'))), /^x5c chain not trusted/);
    // With the intermediate itself in the bundle, the leaf alone suffices.
    assertOk(verifier(pem('int')).verify(mint({ alg: 'ES384', x5c: [chain[0]] }, claims(), key('leaf'))));
    // A CA in x5c[1] that did not sign x5c[0] (the root, skipping the intermediate).
    assertFail(verifier(pem('root')).verify(mint({ alg: 'ES384', x5c: [chain[0], certB64(pem('root'))] }, claims(), key('leaf'))), /^x5c chain not trusted: x5c\[0\] is not signed/);
    // Chain in the wrong order.
    assertFail(verifier(pem('root')).verify(mint({ alg: 'ES384', x5c: [chain[1], chain[0]] }, claims(), key('leaf'))), /^x5c chain not trusted/);
    // ES256 header on a P-384 key.
    assertFail(verifier(pem('root')).verify(mint({ alg: 'ES384', x5c: chain }, claims(), key('leaf')).replace(/^[^.]+/, b64json({ alg: 'ES256', x5c: chain }))), /^alg not allowed/);
  });

  test('a non-CA certificate cannot act as an intermediate', () => {
    const chain = [certB64(pem('badleaf')), certB64(pem('notca'))];
    assertFail(verifier(pem('root')).verify(mint({ alg: 'ES256', x5c: chain }, claims(), key('badleaf'))), /^x5c chain not trusted: .*not a CA/);
  });

  test('ECDSA signatures must be raw r||s, not DER', () => {
    const chain = [certB64(pem('leaf')), certB64(pem('int'))];
    const token = mint({ alg: 'ES384', x5c: chain }, claims(), key('leaf'));
    const [h = '', c = '', s = ''] = token.split('.');
    const der = p1363ToDer(Buffer.from(s, 'base64url'));
    // Sanity: the DER form is a valid signature for a DER-accepting verifier.
    assert.ok(crypto.verify('sha384', Buffer.from(`${h}.${c}`), { key: certKey(pem('leaf')), dsaEncoding: 'der' }, der));
    assertFail(verifier(pem('root')).verify(`${h}.${c}.${b64url(der)}`), /^bad signature/);
  });

  test('EdDSA (Ed25519): kid as libtrust ID and as JWK thumbprint, and x5c', () => {
    const edKey = certKey(pem('ed'));
    const v = verifier(pem('root') + pem('ed'));
    assertOk(v.verify(mint({ alg: 'EdDSA', kid: libtrustKeyId(edKey) }, claims(), key('ed'))));
    assertOk(v.verify(mint({ alg: 'EdDSA', kid: jwkThumbprint(edKey) }, claims(), key('ed'))));
    assertOk(v.verify(mint({ alg: 'EdDSA', x5c: [certB64(pem('edleaf'))] }, claims(), key('edleaf'))));
    // An Ed25519 key cannot sign as ES256, nor an EC key as EdDSA.
    assertFail(v.verify(mint({ alg: 'EdDSA', kid: libtrustKeyId(edKey) }, claims(), key('ed')).replace(/^[^.]+/, b64json({ alg: 'ES256', kid: libtrustKeyId(edKey) }))), /^alg not allowed/);
    assertFail(verifier(pem('int')).verify(mint({ alg: 'ES384', x5c: [certB64(pem('leaf'))] }, claims(), key('leaf')).replace(/^[^.]+/, b64json({ alg: 'EdDSA', x5c: [certB64(pem('leaf'))] }))), /^alg not allowed/);
  });

  test('the root bundle may mix key types and non-certificate PEM blocks', () => {
    const bundle = `${pem('root')}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n${pem('ed')}`;
    const v = verifier(bundle);
    assertOk(v.verify(mint({ alg: 'EdDSA', kid: libtrustKeyId(certKey(pem('ed'))) }, claims(), key('ed'))));
    assertOk(v.verify(mint({ alg: 'ES384', x5c: [certB64(pem('leaf')), certB64(pem('int'))] }, claims(), key('leaf'))));
  });
});
