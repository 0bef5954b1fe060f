// Verification of Docker registry bearer tokens the way CNCF distribution
// (registry:2, `registry/auth/token`) verifies them, with node:crypto only.
//
// What is checked, in this order (the first failure is the `reason`):
//   1. Shape: JWS compact serialization, three base64url parts, JSON object
//      header and claims ("malformed").
//   2. `alg`: RS256/384/512, ES256/384/512 or EdDSA. `none`, HS* (the key
//      confusion attack) and anything else are refused ("alg not allowed").
//   3. The signing key, in registry order of preference:
//        - `x5c`: base64 DER chain, leaf first; each certificate must be signed
//          by the next (which must be a CA), and the last must equal, or be
//          signed by, a certificate of the root bundle; every certificate used
//          (the bundle one included) must be within its validity dates.
//        - `jwk`: with its own `x5c` (verified as above, and the JWK must be the
//          leaf's key), or else it must be one of the bundle certificates' keys.
//        - `kid`: looked up among the bundle certificates' keys under both the
//          libtrust fingerprint (registry 2.8) and the RFC 7638 JWK thumbprint
//          (registry 3). As in the registry, the certificate dates do not apply.
//      The key type must fit `alg` (RSA for RS*, EC on the right curve for ES*,
//      Ed25519/Ed448 for EdDSA).
//   4. The signature ("bad signature"); ES* signatures are raw r||s.
//   5. Claims: `iss` == issuer, `aud` (string or array) contains the service,
//      `exp` (required) and `nbf` with the leeway, `access` well-formed.
//
// Successful results are cached by token string until the token (or a
// certificate of its chain) expires, so a repeated token costs a hash lookup.
import * as crypto from 'node:crypto';
import { LRUCache } from 'lru-cache';

export interface TokenVerifierOptions {
  /** auth.token.issuer: the `iss` every token must carry. */
  issuer: string;
  /** auth.token.service: the audience (`aud`) every token must name. */
  service: string;
  /** auth.token.rootcertbundle, as PEM text (one or more CERTIFICATE blocks). */
  rootCertBundlePem: string;
  /** Clock skew allowed on exp/nbf. Default 60 (as registry:2). */
  leewaySeconds?: number;
  /** Clock, in ms since the epoch. Default Date.now. */
  now?: () => number;
  /** Most verified tokens remembered. Default 10 000. */
  cacheSize?: number;
}

export interface Access {
  type: string;
  name: string;
  actions: string[];
}

/** What refused a token: the claim (iss, aud, exp, nbf, sub, iat, access), or the signature, its key, its alg, its shape (token), the clock. */
export type TokenCheck = 'token' | 'alg' | 'key' | 'signature' | 'iss' | 'aud' | 'exp' | 'nbf' | 'sub' | 'iat' | 'access' | 'clock';

export type VerifyResult =
  | { ok: true; subject: string; access: Access[]; expiresAt: number /* ms */ }
  | { ok: false; reason: string; check: TokenCheck };

type VerifyOk = Extract<VerifyResult, { ok: true }>;
type VerifyFail = Extract<VerifyResult, { ok: false }>;

// ---------------------------------------------------------------------------
// Key identifiers.

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/**
 * libtrust's key ID (registry 2.8 `kid`): SHA-256 of the DER
 * SubjectPublicKeyInfo, first 240 bits, base32 (RFC 4648, no padding), in
 * groups of four characters joined by ':'.
 */
export function libtrustKeyId(key: crypto.KeyObject): string {
  const spki = key.export({ type: 'spki', format: 'der' });
  const bytes = crypto.createHash('sha256').update(spki).digest().subarray(0, 30);
  let out = '';
  let value = 0;
  let bits = 0;
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  // 240 bits = 48 base32 characters exactly; no remainder.
  return (out.match(/.{1,4}/g) ?? []).join(':');
}

/**
 * RFC 7638 JWK thumbprint (registry 3 `kid`): base64url SHA-256 of the
 * canonical JWK (required members only, sorted, no whitespace). Undefined
 * for key types without a JWK form.
 */
export function jwkThumbprint(key: crypto.KeyObject): string | undefined {
  let jwk: crypto.JsonWebKey;
  try {
    jwk = key.export({ format: 'jwk' });
  } catch {
    return undefined;
  }
  let canonical: string;
  if (jwk.kty === 'RSA' && typeof jwk.e === 'string' && typeof jwk.n === 'string') {
    canonical = JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n });
  } else if (jwk.kty === 'EC' && typeof jwk.crv === 'string' && typeof jwk.x === 'string' && typeof jwk.y === 'string') {
    canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  } else if (jwk.kty === 'OKP' && typeof jwk.crv === 'string' && typeof jwk.x === 'string') {
    canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x });
  } else {
    return undefined;
  }
  return crypto.createHash('sha256').update(canonical).digest('base64url');
}

// ---------------------------------------------------------------------------
// Scopes and access.

/**
 * Parses a `scope` parameter: space-separated `type[(class)]:name:actions`
 * items. The name may itself contain ':' (e.g. `host:5000/repo`): the type
 * ends at the first ':' and the actions start after the last one. A `(class)`
 * suffix of the type is dropped. Items without a type or name are skipped;
 * actions are comma-separated, empty ones dropped, duplicates removed.
 */
export function parseScope(scope: string): Access[] {
  const out: Access[] = [];
  for (const item of scope.split(/\s+/)) {
    if (item === '') continue;
    const first = item.indexOf(':');
    const last = item.lastIndexOf(':');
    if (first <= 0 || last === first) continue;
    const type = item.slice(0, first).replace(/\([^()]*\)$/, '');
    const name = item.slice(first + 1, last);
    if (type === '' || name === '') continue;
    const actions: string[] = [];
    for (const a of item.slice(last + 1).split(',')) {
      if (a !== '' && !actions.includes(a)) actions.push(a);
    }
    out.push({ type, name, actions });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Algorithms.

interface AlgSpec {
  kind: 'rsa' | 'ec' | 'ed';
  /** Digest for crypto.verify; null for EdDSA. */
  hash: string | null;
  /** EC: the OpenSSL curve name the key must be on, and the raw r||s length. */
  curve?: string;
  sigLength?: number;
}

const ALGS = new Map<string, AlgSpec>([
  ['RS256', { kind: 'rsa', hash: 'sha256' }],
  ['RS384', { kind: 'rsa', hash: 'sha384' }],
  ['RS512', { kind: 'rsa', hash: 'sha512' }],
  ['ES256', { kind: 'ec', hash: 'sha256', curve: 'prime256v1', sigLength: 64 }],
  ['ES384', { kind: 'ec', hash: 'sha384', curve: 'secp384r1', sigLength: 96 }],
  ['ES512', { kind: 'ec', hash: 'sha512', curve: 'secp521r1', sigLength: 132 }],
  ['EdDSA', { kind: 'ed', hash: null }],
]);

function keyFits(key: crypto.KeyObject, spec: AlgSpec): boolean {
  switch (spec.kind) {
    case 'rsa':
      return key.asymmetricKeyType === 'rsa';
    case 'ec':
      return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === spec.curve;
    case 'ed':
      return key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448';
  }
}

function describeKey(key: crypto.KeyObject): string {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return curve === undefined ? String(key.asymmetricKeyType) : `${String(key.asymmetricKeyType)} ${curve}`;
}

// ---------------------------------------------------------------------------
// Decoding helpers.

const B64URL = /^[A-Za-z0-9_-]*$/;
const B64STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Far more than any real token (a 3-certificate RSA-4096 x5c is ~8 KiB). */
const MAX_TOKEN_LENGTH = 64 * 1024;
const MAX_CHAIN = 10;
const MAX_CHAIN_CACHE = 1000;

function b64urlDecode(s: string): Buffer | undefined {
  if (s.length % 4 === 1 || !B64URL.test(s)) return undefined;
  return Buffer.from(s, 'base64url');
}

function parseJsonObject(bytes: Buffer): Record<string, unknown> | undefined {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  return isRecord(v) ? v : undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

function fail(reason: string, check: TokenCheck): VerifyFail {
  return { ok: false, reason, check };
}

function deepFreeze(result: VerifyOk): VerifyOk {
  for (const a of result.access) {
    Object.freeze(a.actions);
    Object.freeze(a);
  }
  Object.freeze(result.access);
  return Object.freeze(result);
}

// ---------------------------------------------------------------------------
// Certificates.

interface BundleCert {
  cert: crypto.X509Certificate;
  notBefore: number;
  notAfter: number;
}

interface ChainOk {
  ok: true;
  key: crypto.KeyObject;
  /** Intersection of the validity windows of every certificate used, in ms. */
  notBefore: number;
  notAfter: number;
}

type ChainResult = ChainOk | VerifyFail;

function certDates(cert: crypto.X509Certificate): { notBefore: number; notAfter: number } {
  return { notBefore: Date.parse(cert.validFrom), notAfter: Date.parse(cert.validTo) };
}

function issuedBy(child: crypto.X509Certificate, parent: crypto.X509Certificate): boolean {
  try {
    return child.checkIssued(parent) && child.verify(parent.publicKey);
  } catch {
    return false;
  }
}

/** The PEM CERTIFICATE blocks of a bundle, parsed; other blocks are ignored (as registry:2 does). */
function parseBundle(pem: string): crypto.X509Certificate[] {
  const certs: crypto.X509Certificate[] = [];
  const re = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g;
  for (const m of pem.matchAll(re)) {
    const der = Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64');
    try {
      certs.push(new crypto.X509Certificate(der));
    } catch (err) {
      throw new Error(`token auth root certificate bundle: certificate #${certs.length + 1} does not parse: ${(err as Error).message}`);
    }
  }
  if (certs.length === 0) {
    throw new Error('token auth root certificate bundle holds no CERTIFICATE block: at least one token signing root certificate is required');
  }
  return certs;
}

// ---------------------------------------------------------------------------
// The verifier.

interface CachedResult {
  result: VerifyOk;
  /** Valid while from <= now <= until (ms). */
  from: number;
  until: number;
}

export class TokenVerifier {
  private readonly issuer: string;
  private readonly service: string;
  private readonly leewayMs: number;
  private readonly now: () => number;

  private readonly bundle: BundleCert[] = [];
  /** fingerprint256 -> bundle certificate. */
  private readonly bundleByFingerprint = new Map<string, BundleCert>();
  /** libtrust key ID and JWK thumbprint -> bundle public key. */
  private readonly trustedKeys = new Map<string, crypto.KeyObject>();

  /** Verified (or refused) x5c chains, keyed by the joined x5c strings. */
  private readonly chains = new LRUCache<string, ChainResult>({ max: MAX_CHAIN_CACHE });
  /**
   * Verified tokens, least recently used dropped first; undefined when caching is off.
   * Validity is checked against the verifier's own clock on every hit, not lru-cache's
   * TTL, so a clock that moves back (nbf) is honoured too.
   */
  private readonly results: LRUCache<string, CachedResult> | undefined;

  constructor(opts: TokenVerifierOptions) {
    if (typeof opts.issuer !== 'string' || opts.issuer === '') throw new Error('token verifier: issuer is required');
    if (typeof opts.service !== 'string' || opts.service === '') throw new Error('token verifier: service is required');
    this.issuer = opts.issuer;
    this.service = opts.service;
    const leeway = opts.leewaySeconds ?? 60;
    if (!Number.isFinite(leeway) || leeway < 0) throw new Error('token verifier: leewaySeconds must be a number >= 0');
    this.leewayMs = leeway * 1000;
    this.now = opts.now ?? Date.now;
    const size = opts.cacheSize ?? 10_000;
    if (!Number.isInteger(size) || size < 0) throw new Error('token verifier: cacheSize must be an integer >= 0');
    this.results = size > 0 ? new LRUCache<string, CachedResult>({ max: size }) : undefined;

    for (const cert of parseBundle(opts.rootCertBundlePem)) {
      const entry: BundleCert = { cert, ...certDates(cert) };
      this.bundle.push(entry);
      this.bundleByFingerprint.set(cert.fingerprint256, entry);
      const key = cert.publicKey;
      this.trustedKeys.set(libtrustKeyId(key), key);
      const thumb = jwkThumbprint(key);
      if (thumb !== undefined) this.trustedKeys.set(thumb, key);
    }
  }

  /** Number of verified tokens currently remembered. */
  get cachedTokens(): number {
    return this.results?.size ?? 0;
  }

  /** Verifies a token (the part after "Bearer "). Never throws. */
  verify(token: string): VerifyResult {
    let now: number;
    try {
      now = this.now();
    } catch (err) {
      return fail(`clock failed: ${(err as Error).message}`, 'clock');
    }
    const hit = this.results?.get(token);
    if (hit !== undefined) {
      if (now >= hit.from && now <= hit.until) return hit.result;
      this.results?.delete(token);
    }
    try {
      return this.verifyUncached(token, now);
    } catch (err) {
      // Defensive: nothing above is expected to throw on any input.
      return fail(`malformed: ${err instanceof Error ? err.message : String(err)}`, 'token');
    }
  }

  /** True when `access` grants `action` on repository `name` (exact name; the action `*` grants all). */
  static allows(access: readonly Access[], name: string, action: string): boolean {
    for (const a of access) {
      if (a.type !== 'repository' || a.name !== name) continue;
      if (a.actions.includes(action) || a.actions.includes('*')) return true;
    }
    return false;
  }

  private verifyUncached(token: string, now: number): VerifyResult {
    // 1. Shape.
    if (typeof token !== 'string') return fail('malformed: token is not a string', 'token');
    if (token.length > MAX_TOKEN_LENGTH) return fail('malformed: token too long', 'token');
    const parts = token.split('.');
    if (parts.length !== 3) return fail(`malformed: ${parts.length} parts, want 3`, 'token');
    const [rawHeader = '', rawClaims = '', rawSig = ''] = parts;
    const headerBytes = b64urlDecode(rawHeader);
    const claimsBytes = b64urlDecode(rawClaims);
    const signature = b64urlDecode(rawSig);
    if (headerBytes === undefined) return fail('malformed: header is not base64url', 'token');
    if (claimsBytes === undefined) return fail('malformed: claims are not base64url', 'token');
    if (signature === undefined) return fail('malformed: signature is not base64url', 'token');
    const header = parseJsonObject(headerBytes);
    if (header === undefined) return fail('malformed: header is not a JSON object', 'token');
    const claims = parseJsonObject(claimsBytes);
    if (claims === undefined) return fail('malformed: claims are not a JSON object', 'token');

    // 2. Algorithm.
    const alg = header['alg'];
    if (typeof alg !== 'string') return fail('malformed: header has no alg', 'alg');
    const spec = ALGS.get(alg);
    if (spec === undefined) return fail(`alg not allowed: ${JSON.stringify(alg).slice(0, 40)}`, 'alg');
    if (signature.length === 0) return fail('bad signature: empty', 'signature');

    // 3. Key.
    const keyed = this.signingKey(header, now);
    if (!keyed.ok) return keyed;
    if (!keyFits(keyed.key, spec)) return fail(`alg not allowed: ${alg} with a ${describeKey(keyed.key)} key`, 'alg');

    // 4. Signature.
    const signingInput = Buffer.from(token.slice(0, rawHeader.length + 1 + rawClaims.length), 'ascii');
    if (spec.sigLength !== undefined && signature.length !== spec.sigLength) {
      return fail(`bad signature: ${signature.length} bytes, ${alg} wants ${spec.sigLength} (raw r||s)`, 'signature');
    }
    let valid: boolean;
    try {
      valid =
        spec.kind === 'ec'
          ? crypto.verify(spec.hash, signingInput, { key: keyed.key, dsaEncoding: 'ieee-p1363' }, signature)
          : crypto.verify(spec.hash, signingInput, keyed.key, signature);
    } catch {
      valid = false;
    }
    if (!valid) return fail('bad signature', 'signature');

    // 5. Claims.
    const iss = claims['iss'];
    if (iss !== undefined && iss !== null && typeof iss !== 'string') return fail('malformed: iss is not a string', 'iss');
    if (iss !== this.issuer) return fail(`bad issuer: ${JSON.stringify(iss ?? null).slice(0, 100)}`, 'iss');

    const aud = claims['aud'];
    const audOk = typeof aud === 'string' ? aud === this.service : isStringArray(aud) ? aud.includes(this.service) : false;
    if (!audOk) {
      if (aud !== undefined && aud !== null && typeof aud !== 'string' && !isStringArray(aud)) return fail('malformed: aud is neither a string nor an array of strings', 'aud');
      return fail(`bad audience: ${JSON.stringify(aud ?? null).slice(0, 100)}`, 'aud');
    }

    const exp = claims['exp'];
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return fail('malformed: exp missing or not a number', 'exp');
    const nbf = claims['nbf'] ?? undefined;
    if (nbf !== undefined && (typeof nbf !== 'number' || !Number.isFinite(nbf))) return fail('malformed: nbf is not a number', 'nbf');
    const iat = claims['iat'] ?? undefined;
    if (iat !== undefined && (typeof iat !== 'number' || !Number.isFinite(iat))) return fail('malformed: iat is not a number', 'iat');
    const expLimit = exp * 1000 + this.leewayMs;
    if (now > expLimit) return fail(`expired: exp ${exp}, now ${Math.floor(now / 1000)}`, 'exp');
    const nbfLimit = nbf === undefined ? -Infinity : nbf * 1000 - this.leewayMs;
    if (now < nbfLimit) return fail(`not yet valid: nbf ${nbf ?? ''}, now ${Math.floor(now / 1000)}`, 'nbf');

    const sub = claims['sub'] ?? '';
    if (typeof sub !== 'string') return fail('malformed: sub is not a string', 'sub');
    const access = parseAccessClaim(claims['access']);
    if (access === undefined) return fail('malformed: access is not an array of {type, name, actions}', 'access');

    const result = deepFreeze({ ok: true, subject: sub, access, expiresAt: exp * 1000 });
    this.results?.set(token, {
      result,
      from: Math.max(nbfLimit, keyed.notBefore),
      until: Math.min(expLimit, keyed.notAfter),
    });
    return result;
  }

  /** The signing key named by the header, with the time window in which it may be used. */
  private signingKey(header: Record<string, unknown>, now: number): ChainResult {
    const x5c = header['x5c'];
    if (x5c !== undefined && x5c !== null) {
      if (!isStringArray(x5c)) return fail('malformed: x5c is not an array of strings', 'key');
      if (x5c.length > 0) return this.withinDates(this.chain(x5c), now);
    }
    const jwk = header['jwk'];
    if (jwk !== undefined && jwk !== null) return this.withinDates(this.jwkKey(jwk), now);
    const kid = header['kid'];
    if (typeof kid === 'string' && kid !== '') {
      const key = this.trustedKeys.get(kid);
      if (key === undefined) return fail(`unknown key: kid ${JSON.stringify(kid).slice(0, 80)} is not in the root bundle`, 'key');
      return { ok: true, key, notBefore: -Infinity, notAfter: Infinity };
    }
    if (kid !== undefined && kid !== null && typeof kid !== 'string') return fail('malformed: kid is not a string', 'key');
    return fail('unknown key: no x5c, jwk or kid', 'key');
  }

  private withinDates(r: ChainResult, now: number): ChainResult {
    if (!r.ok) return r;
    if (now < r.notBefore) return fail('x5c chain not trusted: a certificate is not yet valid', 'key');
    if (now > r.notAfter) return fail('x5c chain not trusted: a certificate has expired', 'key');
    return r;
  }

  private jwkKey(jwk: unknown): ChainResult {
    if (!isRecord(jwk)) return fail('malformed: jwk is not an object', 'key');
    let key: crypto.KeyObject;
    try {
      const pub: Record<string, unknown> = { ...jwk };
      for (const k of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'x5c', 'kid', 'use', 'key_ops', 'alg']) delete pub[k];
      key = crypto.createPublicKey({ key: pub as crypto.JsonWebKey, format: 'jwk' });
    } catch {
      return fail('malformed: jwk is not a public key', 'key');
    }
    const x5c = jwk['x5c'];
    if (x5c === undefined || x5c === null) {
      const trusted = this.trustedKeys.get(libtrustKeyId(key));
      if (trusted === undefined) return fail('unknown key: jwk without x5c is not a key of the root bundle', 'key');
      return { ok: true, key: trusted, notBefore: -Infinity, notAfter: Infinity };
    }
    if (!isStringArray(x5c) || x5c.length === 0 || x5c.some((c) => c === '')) return fail('malformed: jwk x5c is not a certificate chain', 'key');
    const chain = this.chain(x5c);
    if (!chain.ok) return chain;
    if (!chain.key.equals(key)) return fail('unknown key: jwk is not the key of its x5c leaf certificate', 'key');
    return chain;
  }

  /** Structural verification of an x5c chain (dates are checked by the caller), cached. */
  private chain(x5c: string[]): ChainResult {
    const cacheKey = x5c.join('.');
    const cached = this.chains.get(cacheKey);
    if (cached !== undefined) return cached;
    const result = this.verifyChain(x5c);
    this.chains.set(cacheKey, result);
    return result;
  }

  private verifyChain(x5c: string[]): ChainResult {
    if (x5c.length > MAX_CHAIN) return fail(`malformed: x5c holds ${x5c.length} certificates (max ${MAX_CHAIN})`, 'key');
    const certs: crypto.X509Certificate[] = [];
    for (const [i, b64] of x5c.entries()) {
      if (b64 === '' || !B64STD.test(b64)) return fail(`malformed: x5c[${i}] is not base64`, 'key');
      try {
        certs.push(new crypto.X509Certificate(Buffer.from(b64, 'base64')));
      } catch {
        return fail(`malformed: x5c[${i}] is not a certificate`, 'key');
      }
    }
    const leaf = certs[0];
    if (leaf === undefined) return fail('malformed: empty x5c', 'key');
    let notBefore = -Infinity;
    let notAfter = Infinity;
    const use = (d: { notBefore: number; notAfter: number }): void => {
      notBefore = Math.max(notBefore, Number.isNaN(d.notBefore) ? Infinity : d.notBefore);
      notAfter = Math.min(notAfter, Number.isNaN(d.notAfter) ? -Infinity : d.notAfter);
    };
    for (let i = 0; i < certs.length; i++) {
      const cert = certs[i] as crypto.X509Certificate;
      // A certificate of the bundle itself ends the chain (it is a trust anchor).
      const anchor = this.bundleByFingerprint.get(cert.fingerprint256);
      if (anchor !== undefined && anchor.cert.raw.equals(cert.raw)) {
        use(anchor);
        return { ok: true, key: leaf.publicKey, notBefore, notAfter };
      }
      use(certDates(cert));
      const next = certs[i + 1];
      if (next === undefined) {
        // The last certificate given: a bundle certificate must have signed it.
        const issuer = this.bundle.find((b) => issuedBy(cert, b.cert));
        if (issuer === undefined) return fail(`x5c chain not trusted: x5c[${i}] (${cert.subject.replace(/\n/g, ', ')}) is not signed by a root bundle certificate`, 'key');
        use(issuer);
        return { ok: true, key: leaf.publicKey, notBefore, notAfter };
      }
      if (!issuedBy(cert, next)) return fail(`x5c chain not trusted: x5c[${i}] is not signed by x5c[${i + 1}]`, 'key');
      const nextIsAnchor = this.bundleByFingerprint.get(next.fingerprint256)?.cert.raw.equals(next.raw) === true;
      if (!nextIsAnchor && !next.ca) return fail(`x5c chain not trusted: x5c[${i + 1}] is not a CA certificate`, 'key');
    }
    return fail('x5c chain not trusted', 'key');
  }
}

/** The `access` claim: missing or null is empty; anything else must be well-formed. */
function parseAccessClaim(v: unknown): Access[] | undefined {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) return undefined;
  const out: Access[] = [];
  for (const e of v) {
    if (!isRecord(e)) return undefined;
    const type = e['type'] ?? '';
    const name = e['name'] ?? '';
    const actions = e['actions'] ?? [];
    if (typeof type !== 'string' || typeof name !== 'string' || !isStringArray(actions)) return undefined;
    out.push({ type, name, actions: [...actions] });
  }
  return out;
}
