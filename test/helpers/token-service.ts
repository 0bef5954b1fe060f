// A real Docker "token auth" service (distribution's spec/auth/token.md and
// spec/auth/oauth.md) for end-to-end tests: it signs JWTs the way registry:2
// (distribution 2.8) verifies them, and can also mint arbitrary, malformed or
// adversarial tokens so tests can prove a registry (or the edge) rejects them.
//
// Keys and certificates are made with node:crypto; the X.509 certificates are
// assembled by a small DER encoder below (node:crypto cannot create
// certificates and node-forge cannot hold EC keys), so RS256 and ES256 work
// the same way and no external tool is needed.
//
// What distribution 2.8 checks (registry/auth/token/token.go), for reference:
//   iss must equal auth.token.issuer; aud must be a JSON *string* equal to
//   auth.token.service; exp/nbf are checked with 60 s leeway; the signing key
//   comes from x5c (chain verified to rootcertbundle) if present, else from a
//   `jwk` header, else from `kid` looked up among the *public keys of the
//   certificates in rootcertbundle* (so kid-only tokens need the signing
//   certificate itself in the bundle: see `trust`).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { removeDir, tempDir } from './proc.js';

export type TokenKeyType = 'RS256' | 'ES256';

/** One rule: `repo` is a glob ('*' = any run of chars except '/', '**' = anything). */
export interface AccessRule {
  repo: string;
  actions: string[];
  /** Resource type; default 'repository' ('registry' with repo 'catalog' for the catalog). */
  type?: string;
}

export interface TokenUser {
  password: string;
  access: AccessRule[];
}

/** An entry of the JWT `access` claim. */
export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenServiceOptions {
  /** `iss` claim and auth.token.issuer. Default 'test-issuer'. */
  issuer?: string;
  /** `aud` claim and auth.token.service. Default 'test-registry'. */
  service?: string;
  /** Signing algorithm (and so the key type of both CA and signing key). Default RS256. */
  keyType?: TokenKeyType;
  users?: Record<string, TokenUser>;
  /** Rights of requests without credentials. Default none (tokens with empty access). */
  anonymous?: AccessRule[];
  /** Lifetime of issued tokens. Default 300. */
  expiresInSeconds?: number;
  /**
   * What rootcertbundle holds: 'root' (default: the CA only, so only x5c
   * tokens verify), 'root+leaf' (also the signing certificate, so kid-only
   * tokens verify too) or 'leaf' (only the signing certificate).
   */
  trust?: 'root' | 'root+leaf' | 'leaf';
  /** Listen port; default: one the kernel picks. */
  port?: number;
}

export interface TokenRequestRecord {
  method: string;
  path: string;
  /** POST only: the grant_type field. */
  grantType: string | undefined;
  service: string | undefined;
  /** Every requested scope, as sent (multiple params and space-separated lists are flattened). */
  scopes: string[];
  account: string | undefined;
  /** Authenticated user; undefined for anonymous requests (and failed logins). */
  user: string | undefined;
  /** The user name a failed login tried. */
  attemptedUser: string | undefined;
  status: number;
  granted: AccessEntry[];
  refreshTokenIssued: boolean;
}

/** Who makes the signature of a minted token. */
export type TokenSigner =
  /** The service's signing key (chains to the root in rootcertbundle). */
  | 'service'
  /** The root CA's own key (its certificate is in rootcertbundle). */
  | 'root'
  /** A key whose certificate chains to a CA that is NOT in rootcertbundle. */
  | 'untrusted'
  /** alg "none", empty signature. */
  | 'none'
  /** HS256 with the service certificate's public key (SPKI PEM) as HMAC secret: key-confusion attack. */
  | 'hs256-public-key';

/** How the JWT header identifies the key (ignored for 'none'). */
export type TokenKeyRef =
  /** x5c = [leaf] plus kid (what the service issues). */
  | 'x5c+kid'
  /** x5c = [leaf] only. */
  | 'x5c'
  /** x5c = [leaf, root-of-that-signer]. */
  | 'x5c-full'
  /** kid only, no x5c (verifies only if the signing cert is in rootcertbundle). */
  | 'kid'
  /** A `jwk` header holding the public key, with `x5c` = [leaf] inside the JWK. */
  | 'jwk+x5c'
  /** A `jwk` header holding only the public key. */
  | 'jwk'
  /** Neither x5c, jwk nor kid. */
  | 'none';

export type TokenTamper =
  /** Re-encode the payload with one more action after signing. */
  | 'claims'
  /** Flip a bit of the signature. */
  | 'signature'
  /** Drop the signature part ("header.payload."). */
  | 'strip-signature'
  /** Only two dot-separated parts. */
  | 'two-parts';

export interface IssueOptions {
  /** Shorthand for claims.access. */
  access?: AccessEntry[];
  /** Shorthand for claims.sub. */
  subject?: string;
  /**
   * Merged over the default claims {iss, sub, aud, exp, nbf, iat, jti,
   * access}; a key set to undefined is removed. Values are used verbatim, so
   * e.g. `aud: ['x']`, `exp: 'soon'` or `access: 'all'` produce exactly that.
   */
  claims?: Record<string, unknown>;
  /** Merged over the computed header {typ, alg, kid?, x5c?, jwk?}; undefined removes a key. */
  header?: Record<string, unknown>;
  /** Default 'service'. */
  signer?: TokenSigner;
  /** Default 'x5c+kid'. */
  keyRef?: TokenKeyRef;
  tamper?: TokenTamper;
}

export interface DecodedToken {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  signature: Buffer;
}

export interface TokenService {
  /** The realm: http://127.0.0.1:PORT/token */
  readonly url: string;
  readonly port: number;
  readonly issuer: string;
  readonly service: string;
  readonly keyType: TokenKeyType;
  /** PEM of the root CA certificate. */
  readonly rootCertPem: string;
  /** The rootcertbundle file (content depends on `trust`), under a temp dir. */
  readonly rootCertFile: string;
  /** PEM of the signing (leaf) certificate. */
  readonly signingCertPem: string;
  /** libtrust key ID of the signing key (what `kid` carries). */
  readonly signingKeyId: string;
  /** libtrust key ID of the root CA key. */
  readonly rootKeyId: string;
  /** Every request to the service, in order. */
  readonly requests: TokenRequestRecord[];
  /** Mints a token (valid by default; see IssueOptions for broken ones). */
  issue(opts?: IssueOptions): string;
  /** The `auth:` section for startRegistry({config}). */
  registryConfig(): Record<string, unknown>;
  /** Adds or replaces a user at run time. */
  setUser(name: string, user: TokenUser): void;
  removeUser(name: string): void;
  /** While set, every request is answered with this status (simulated outage); null restores service. */
  setFailure(status: number | null): void;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Minimal DER encoder.

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

const derSeq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
const derSet = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
const derNull = (): Buffer => Buffer.from([0x05, 0x00]);
const derBool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0x00]));
const derOctets = (b: Buffer): Buffer => tlv(0x04, b);
const derUtf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
const derExplicit = (n: number, content: Buffer): Buffer => tlv(0xa0 + n, content);

/** INTEGER from unsigned big-endian bytes. */
function derUInt(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  let b = bytes.subarray(i);
  if ((b[0] ?? 0) & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}

function derOid(oid: string): Buffer {
  const parts = oid.split('.').map(Number);
  const [a = 0, b = 0, ...rest] = parts;
  const out: number[] = [40 * a + b];
  for (const p of rest) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

function derTime(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '') + 'Z';
  // RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(digits.slice(2), 'ascii')) : tlv(0x18, Buffer.from(digits, 'ascii'));
}

/** BIT STRING holding named bits (bit 0 = most significant bit of the first byte), DER-minimal. */
function derNamedBits(bits: number[]): Buffer {
  const last = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(last / 8) + 1);
  for (const bit of bits) bytes[bit >> 3] = (bytes[bit >> 3] ?? 0) | (0x80 >> (bit & 7));
  const unused = 7 - (last & 7);
  return tlv(0x03, Buffer.concat([Buffer.from([unused]), bytes]));
}

function derBits(b: Buffer): Buffer {
  return tlv(0x03, Buffer.concat([Buffer.from([0]), b]));
}

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  subjectKeyId: '2.5.29.14',
  authorityKeyId: '2.5.29.35',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
} as const;

function derName(cn: string): Buffer {
  return derSeq(
    derSet(derSeq(derOid(OID.organization), derUtf8('registry-edge tests'))),
    derSet(derSeq(derOid(OID.commonName), derUtf8(cn))),
  );
}

function derExtension(oid: string, critical: boolean, value: Buffer): Buffer {
  return critical ? derSeq(derOid(oid), derBool(true), derOctets(value)) : derSeq(derOid(oid), derOctets(value));
}

// ---------------------------------------------------------------------------
// Keys and certificates.

interface KeyCert {
  privateKey: crypto.KeyObject;
  publicKey: crypto.KeyObject;
  spkiDer: Buffer;
  certDer: Buffer;
  certPem: string;
  keyId: string;
}

interface Chain {
  root: KeyCert;
  leaf: KeyCert;
}

function generateKey(keyType: TokenKeyType): { privateKey: crypto.KeyObject; publicKey: crypto.KeyObject } {
  return keyType === 'RS256'
    ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 })
    : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

function signatureAlgorithm(key: crypto.KeyObject): Buffer {
  return key.asymmetricKeyType === 'rsa' ? derSeq(derOid(OID.sha256WithRSA), derNull()) : derSeq(derOid(OID.ecdsaWithSHA256));
}

function pemOf(der: Buffer, label: string): string {
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}

/**
 * The key ID distribution 2.8 (docker/libtrust) uses for `kid` and for the
 * keys of rootcertbundle: SHA-256 over the DER SubjectPublicKeyInfo, first
 * 240 bits, base32 without padding, in ':'-separated groups of 4.
 */
export function libtrustKeyId(spkiDer: Buffer): string {
  const bytes = crypto.createHash('sha256').update(spkiDer).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return (out.match(/.{1,4}/g) ?? []).join(':');
}

function makeCert(opts: {
  subject: string;
  keys: { privateKey: crypto.KeyObject; publicKey: crypto.KeyObject };
  issuer?: KeyCert & { name: string };
  isCA: boolean;
}): KeyCert {
  const spkiDer = opts.keys.publicKey.export({ type: 'spki', format: 'der' });
  const ski = crypto.createHash('sha1').update(spkiDer).digest();
  const signerKey = opts.issuer?.privateKey ?? opts.keys.privateKey;
  const issuerName = derName(opts.issuer?.name ?? opts.subject);
  const now = Date.now();
  const extensions: Buffer[] = [
    derExtension(OID.basicConstraints, true, opts.isCA ? derSeq(derBool(true)) : derSeq()),
    // CA: keyCertSign(5) + cRLSign(6); leaf: digitalSignature(0).
    derExtension(OID.keyUsage, true, derNamedBits(opts.isCA ? [5, 6] : [0])),
    derExtension(OID.subjectKeyId, false, derOctets(ski)),
  ];
  if (opts.issuer) {
    const aki = crypto.createHash('sha1').update(opts.issuer.spkiDer).digest();
    extensions.push(derExtension(OID.authorityKeyId, false, derSeq(tlv(0x80, aki))));
  }
  const serial = crypto.randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  const sigAlg = signatureAlgorithm(signerKey);
  const tbs = derSeq(
    derExplicit(0, derUInt(Buffer.from([2]))), // v3
    derUInt(serial),
    sigAlg,
    issuerName,
    derSeq(derTime(new Date(now - 3_600_000)), derTime(new Date(now + 365 * 86_400_000))),
    derName(opts.subject),
    spkiDer,
    derExplicit(3, derSeq(...extensions)),
  );
  // RSA: PKCS#1 v1.5; EC: DER-encoded ECDSA signature, as X.509 wants.
  const signature = crypto.sign('sha256', tbs, signerKey);
  const certDer = derSeq(tbs, sigAlg, derBits(signature));
  return {
    privateKey: opts.keys.privateKey,
    publicKey: opts.keys.publicKey,
    spkiDer,
    certDer,
    certPem: pemOf(certDer, 'CERTIFICATE'),
    keyId: libtrustKeyId(spkiDer),
  };
}

function makeChain(keyType: TokenKeyType, label: string): Chain {
  const rootName = `${label} token CA`;
  const root = makeCert({ subject: rootName, keys: generateKey(keyType), isCA: true });
  const leaf = makeCert({
    subject: `${label} token signer`,
    keys: generateKey(keyType),
    issuer: { ...root, name: rootName },
    isCA: false,
  });
  return { root, leaf };
}

// ---------------------------------------------------------------------------
// JWT.

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');
const b64json = (v: unknown): string => b64url(JSON.stringify(v));

function jwsSign(alg: TokenKeyType, key: crypto.KeyObject, data: string): Buffer {
  return alg === 'RS256'
    ? crypto.sign('sha256', Buffer.from(data), key)
    : crypto.sign('sha256', Buffer.from(data), { key, dsaEncoding: 'ieee-p1363' }); // raw r||s, 64 bytes
}

function algOf(key: crypto.KeyObject): TokenKeyType {
  return key.asymmetricKeyType === 'rsa' ? 'RS256' : 'ES256';
}

/** Decodes (without verifying) a compact JWS. Throws on malformed input. */
export function decodeToken(token: string): DecodedToken {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error(`not a JWS: ${parts.length} parts`);
  const [h = '', c = '', s = ''] = parts;
  const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as unknown;
  const claims = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as unknown;
  if (!isRecord(header) || !isRecord(claims)) throw new Error('JWS header/claims are not objects');
  return { header, claims, signature: Buffer.from(s, 'base64url') };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function mergeDefined(base: Record<string, unknown>, over: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  if (!over) return out;
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Scopes and rights.

interface Scope {
  type: string;
  name: string;
  actions: string[];
}

/** `type[(class)]:name:actions`; the name may itself contain ':' (host:port/repo). */
export function parseScope(scope: string): Scope | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  const type = scope.slice(0, first).replace(/\(.*\)$/, '');
  const name = scope.slice(first + 1, last);
  const actions = scope
    .slice(last + 1)
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '');
  if (!name) return undefined;
  return { type, name, actions };
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i] ?? '';
    if (ch === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Grants, per requested scope, the intersection of requested and allowed actions ('*' allowed = all). */
export function grantAccess(rules: AccessRule[], scopes: string[]): AccessEntry[] {
  const granted = new Map<string, AccessEntry>();
  for (const raw of scopes) {
    const scope = parseScope(raw);
    if (!scope) continue;
    const allowed = new Set<string>();
    for (const rule of rules) {
      if ((rule.type ?? 'repository') !== scope.type) continue;
      if (!globToRegExp(rule.repo).test(scope.name)) continue;
      for (const a of rule.actions) allowed.add(a);
    }
    const actions = allowed.has('*') ? scope.actions : scope.actions.filter((a) => allowed.has(a));
    if (actions.length === 0) continue;
    const key = `${scope.type}\u0000${scope.name}`;
    const entry = granted.get(key) ?? { type: scope.type, name: scope.name, actions: [] };
    for (const a of actions) if (!entry.actions.includes(a)) entry.actions.push(a);
    granted.set(key, entry);
  }
  return [...granted.values()];
}

// ---------------------------------------------------------------------------
// The service.

interface Principal {
  user: string | undefined;
  rules: AccessRule[];
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: Record<string, unknown>,
    readonly attemptedUser?: string,
  ) {
    super(message);
  }
}

function readBody(req: http.IncomingMessage, limit = 64 * 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new HttpError(413, 'body too large', { error: 'invalid_request' }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

function splitScopes(values: string[]): string[] {
  return values.flatMap((v) => v.split(' ')).filter((s) => s !== '');
}

export async function startTokenService(opts: TokenServiceOptions = {}): Promise<TokenService> {
  const issuer = opts.issuer ?? 'test-issuer';
  const service = opts.service ?? 'test-registry';
  const keyType = opts.keyType ?? 'RS256';
  const expiresIn = opts.expiresInSeconds ?? 300;
  const users = new Map<string, TokenUser>(Object.entries(opts.users ?? {}));
  const anonymous = opts.anonymous ?? [];
  const requests: TokenRequestRecord[] = [];
  const refreshTokens = new Map<string, string>(); // token -> user
  let failure: number | null = null;

  const chain = makeChain(keyType, 'trusted');
  let untrusted: Chain | undefined;
  const untrustedChain = (): Chain => (untrusted ??= makeChain(keyType, 'untrusted'));

  const dir = tempDir('re-token-');
  const rootCertFile = path.join(dir, 'rootcertbundle.pem');
  const trust = opts.trust ?? 'root';
  const bundle = trust === 'root' ? [chain.root] : trust === 'leaf' ? [chain.leaf] : [chain.root, chain.leaf];
  fs.writeFileSync(rootCertFile, bundle.map((c) => c.certPem).join(''));
  fs.writeFileSync(path.join(dir, 'root.pem'), chain.root.certPem);
  fs.writeFileSync(path.join(dir, 'signer.pem'), chain.leaf.certPem);

  const issue = (o: IssueOptions = {}): string => {
    const now = Math.floor(Date.now() / 1000);
    const signer = o.signer ?? 'service';
    const keyRef = o.keyRef ?? 'x5c+kid';
    const defaults: Record<string, unknown> = {
      iss: issuer,
      sub: o.subject ?? '',
      aud: service,
      exp: now + expiresIn,
      nbf: now,
      iat: now,
      jti: crypto.randomBytes(16).toString('hex'),
      access: o.access ?? [],
    };
    const claims = mergeDefined(defaults, o.claims);

    // The key pair that signs and the chain the header points to.
    const pair: Chain =
      signer === 'untrusted'
        ? untrustedChain()
        : signer === 'root'
          ? { root: chain.root, leaf: chain.root }
          : chain;
    let alg: string;
    if (signer === 'none') alg = 'none';
    else if (signer === 'hs256-public-key') alg = 'HS256';
    else alg = algOf(pair.leaf.privateKey);

    const baseHeader: Record<string, unknown> = { typ: 'JWT', alg };
    if (signer !== 'none') {
      const leafB64 = pair.leaf.certDer.toString('base64');
      const fullChain = pair.leaf === pair.root ? [leafB64] : [leafB64, pair.root.certDer.toString('base64')];
      const jwk = (withX5c: boolean): Record<string, unknown> => {
        const j: Record<string, unknown> = { ...pair.leaf.publicKey.export({ format: 'jwk' }) };
        j['kid'] = pair.leaf.keyId;
        if (withX5c) j['x5c'] = [leafB64];
        return j;
      };
      switch (keyRef) {
        case 'x5c+kid':
          baseHeader['kid'] = pair.leaf.keyId;
          baseHeader['x5c'] = [leafB64];
          break;
        case 'x5c':
          baseHeader['x5c'] = [leafB64];
          break;
        case 'x5c-full':
          baseHeader['x5c'] = fullChain;
          break;
        case 'kid':
          baseHeader['kid'] = pair.leaf.keyId;
          break;
        case 'jwk+x5c':
          baseHeader['jwk'] = jwk(true);
          break;
        case 'jwk':
          baseHeader['jwk'] = jwk(false);
          break;
        case 'none':
          break;
      }
    }
    const header = mergeDefined(baseHeader, o.header);
    const signingInput = `${b64json(header)}.${b64json(claims)}`;
    let signature: Buffer;
    if (signer === 'none') signature = Buffer.alloc(0);
    else if (signer === 'hs256-public-key') {
      const secret = chain.leaf.publicKey.export({ type: 'spki', format: 'pem' });
      signature = crypto.createHmac('sha256', secret).update(signingInput).digest();
    } else signature = jwsSign(algOf(pair.leaf.privateKey), pair.leaf.privateKey, signingInput);

    const h = signingInput.slice(0, signingInput.indexOf('.'));
    let c = signingInput.slice(signingInput.indexOf('.') + 1);
    let sig = b64url(signature);
    switch (o.tamper) {
      case 'claims': {
        const access = Array.isArray(claims['access']) ? [...(claims['access'] as unknown[])] : [];
        access.push({ type: 'repository', name: 'tampered/*', actions: ['pull', 'push'] });
        c = b64json({ ...claims, access });
        break;
      }
      case 'signature': {
        const flipped = Buffer.from(signature);
        if (flipped.length > 0) flipped[flipped.length - 1] = (flipped[flipped.length - 1] ?? 0) ^ 0x01;
        sig = b64url(flipped);
        break;
      }
      case 'strip-signature':
        sig = '';
        break;
      case 'two-parts':
        return `${h}.${c}`;
      case undefined:
        break;
    }
    return `${h}.${c}.${sig}`;
  };

  const authenticate = (req: http.IncomingMessage): Principal => {
    const header = req.headers.authorization;
    if (header === undefined) return { user: undefined, rules: anonymous };
    const m = /^Basic\s+(\S+)$/i.exec(header);
    if (!m?.[1]) throw new HttpError(401, 'unsupported authorization scheme', unauthorizedBody('unsupported authorization'));
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const name = colon < 0 ? decoded : decoded.slice(0, colon);
    const password = colon < 0 ? '' : decoded.slice(colon + 1);
    return login(name, password);
  };

  const login = (name: string, password: string): Principal => {
    const u = users.get(name);
    if (!u || !timingSafeEqualStr(u.password, password)) {
      throw new HttpError(401, `bad credentials for ${name}`, unauthorizedBody('authentication failed'), name);
    }
    return { user: name, rules: u.access };
  };

  const rulesOf = (user: string): AccessRule[] => users.get(user)?.access ?? [];

  const mint = (principal: Principal, scopes: string[]): { token: string; granted: AccessEntry[] } => {
    const granted = grantAccess(principal.rules, scopes);
    return { token: issue({ access: granted, subject: principal.user ?? '' }), granted };
  };

  const newRefreshToken = (user: string): string => {
    const t = crypto.randomBytes(24).toString('base64url');
    refreshTokens.set(t, user);
    return t;
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const record: TokenRequestRecord = {
      method: req.method ?? '',
      path: url.pathname,
      grantType: undefined,
      service: url.searchParams.get('service') ?? undefined,
      scopes: splitScopes(url.searchParams.getAll('scope')),
      account: url.searchParams.get('account') ?? undefined,
      user: undefined,
      attemptedUser: undefined,
      status: 0,
      granted: [],
      refreshTokenIssued: false,
    };
    requests.push(record);
    const send = (status: number, body: Record<string, unknown>, headers: http.OutgoingHttpHeaders = {}): void => {
      record.status = status;
      const data = JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(data),
        'cache-control': 'no-store',
        ...headers,
      });
      res.end(data);
    };
    try {
      if (failure !== null) {
        send(failure, { errors: [{ code: 'UNAVAILABLE', message: 'simulated token service failure' }] });
        return;
      }
      if (url.pathname !== '/token') {
        send(404, { errors: [{ code: 'NOT_FOUND', message: 'not found' }] });
        return;
      }
      const issuedAt = new Date().toISOString();
      if (req.method === 'GET') {
        if (record.service !== undefined && record.service !== service) {
          throw new HttpError(400, 'unknown service', { errors: [{ code: 'DENIED', message: `unknown service ${record.service}` }] });
        }
        const principal = authenticate(req);
        record.user = principal.user;
        const { token, granted } = mint(principal, record.scopes);
        record.granted = granted;
        const body: Record<string, unknown> = { token, access_token: token, expires_in: expiresIn, issued_at: issuedAt };
        if (principal.user !== undefined && url.searchParams.get('offline_token') === 'true') {
          body['refresh_token'] = newRefreshToken(principal.user);
          record.refreshTokenIssued = true;
        }
        send(200, body);
        return;
      }
      if (req.method === 'POST') {
        const ctype = String(req.headers['content-type'] ?? '');
        const raw = await readBody(req);
        if (!/^application\/x-www-form-urlencoded\b/i.test(ctype)) {
          throw new HttpError(400, 'bad content type', { error: 'invalid_request', error_description: 'form body required' });
        }
        const form = new URLSearchParams(raw);
        record.grantType = form.get('grant_type') ?? undefined;
        record.service = form.get('service') ?? undefined;
        record.scopes = splitScopes(form.getAll('scope'));
        record.account = form.get('username') ?? undefined;
        if (record.service !== undefined && record.service !== service) {
          throw new HttpError(400, 'unknown service', { error: 'invalid_request', error_description: 'unknown service' });
        }
        let principal: Principal;
        if (record.grantType === 'password') {
          const name = form.get('username');
          const password = form.get('password');
          if (name === null || password === null) {
            throw new HttpError(400, 'missing username/password', { error: 'invalid_request' });
          }
          try {
            principal = login(name, password);
          } catch (err) {
            if (err instanceof HttpError) {
              throw new HttpError(401, err.message, { error: 'invalid_grant', error_description: 'authentication failed' }, name);
            }
            throw err;
          }
        } else if (record.grantType === 'refresh_token') {
          const rt = form.get('refresh_token') ?? '';
          const user = refreshTokens.get(rt);
          if (user === undefined || !users.has(user)) {
            throw new HttpError(401, 'unknown refresh token', { error: 'invalid_grant', error_description: 'unknown refresh token' });
          }
          principal = { user, rules: rulesOf(user) };
        } else {
          throw new HttpError(400, 'unsupported grant type', { error: 'unsupported_grant_type' });
        }
        record.user = principal.user;
        const { token, granted } = mint(principal, record.scopes);
        record.granted = granted;
        const body: Record<string, unknown> = {
          access_token: token,
          token,
          scope: record.scopes.join(' '),
          expires_in: expiresIn,
          issued_at: issuedAt,
        };
        const offline = form.get('access_type') === 'offline' || form.get('offline_token') === 'true';
        if (principal.user !== undefined && offline && record.grantType === 'password') {
          body['refresh_token'] = newRefreshToken(principal.user);
          record.refreshTokenIssued = true;
        } else if (record.grantType === 'refresh_token') {
          body['refresh_token'] = form.get('refresh_token') ?? '';
        }
        send(200, body);
        return;
      }
      send(405, { errors: [{ code: 'UNSUPPORTED', message: 'method not allowed' }] }, { allow: 'GET, POST' });
    } catch (err) {
      if (err instanceof HttpError) {
        record.attemptedUser = err.attemptedUser;
        const extra: http.OutgoingHttpHeaders =
          err.status === 401 ? { 'www-authenticate': `Basic realm="${service}"` } : {};
        send(err.status, err.body, extra);
        return;
      }
      send(500, { errors: [{ code: 'UNKNOWN', message: err instanceof Error ? err.message : String(err) }] });
    }
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      res.destroy(err instanceof Error ? err : new Error(String(err)));
    });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    removeDir(dir);
    throw err;
  }
  const addr = server.address();
  if (addr === null || typeof addr === 'string') {
    server.close();
    removeDir(dir);
    throw new Error('token service: unexpected listen address');
  }
  const port = addr.port;
  const url = `http://127.0.0.1:${port}/token`;
  let stopping: Promise<void> | undefined;

  return {
    url,
    port,
    issuer,
    service,
    keyType,
    rootCertPem: chain.root.certPem,
    rootCertFile,
    signingCertPem: chain.leaf.certPem,
    signingKeyId: chain.leaf.keyId,
    rootKeyId: chain.root.keyId,
    requests,
    issue,
    registryConfig: () => ({ auth: { token: { realm: url, service, issuer, rootcertbundle: rootCertFile } } }),
    setUser: (name, user) => {
      users.set(name, user);
    },
    removeUser: (name) => {
      users.delete(name);
    },
    setFailure: (status) => {
      failure = status;
    },
    stop: () => {
      stopping ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).finally(() => removeDir(dir));
      return stopping;
    },
  };
}

function unauthorizedBody(message: string): Record<string, unknown> {
  return { errors: [{ code: 'UNAUTHORIZED', message }] };
}

function timingSafeEqualStr(a: string, b: string): boolean {
  const ha = crypto.createHash('sha256').update(a).digest();
  const hb = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(ha, hb);
}
