/**
 * `certs init`: a private CA and a server certificate for the edge's TLS listener, replacing the
 * cfssl steps operators used to follow by hand.
 */
import { generateKeyPair, randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import forge from 'node-forge';
import { ipBytes, isIPHost, registryAddress, validateHosts } from './hosts.js';

export { validateHosts } from './hosts.js';

export interface InitOptions {
  /** DNS names and IP addresses clients use to reach the edge; the first becomes the CN. */
  hosts: string[];
  outDir: string;
  /** Server certificate validity in days (default 825). */
  days?: number;
  /** CA validity in days (default 3650). */
  caDays?: number;
  /** RSA modulus size for both keys (default 2048). */
  keyBits?: number;
  /** Replace existing output files instead of refusing. */
  force?: boolean;
}

export interface InitResult {
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

export interface NextStepsOptions {
  hosts: string[];
  outDir: string;
  /** Port clients put in image references (default 5000, the default `http.addr`). */
  port?: number;
}

// 825 days is the longest server-certificate lifetime macOS/iOS clients accept.
export const DEFAULT_DAYS = 825;
const DEFAULT_CA_DAYS = 3650;
export const DEFAULT_KEY_BITS = 2048;
const DEFAULT_PORT = 5000;
const DAY_MS = 86_400_000;
// Backdating absorbs clock skew between this machine and clients, which would otherwise
// see a certificate that is "not yet valid" for the first minutes.
const BACKDATE_MS = 5 * 60_000;

export const KEY_MODE = 0o600;
export const CERT_MODE = 0o644;

export interface KeyPair {
  pem: string;
  privateKey: forge.pki.rsa.PrivateKey;
  publicKey: forge.pki.rsa.PublicKey;
}

interface Validity {
  notBefore: Date;
  notAfter: Date;
}

type Attributes = forge.pki.CertificateField[];

const generateKeyPairAsync = promisify(generateKeyPair);

// Native key generation: forge's pure-JS prime search takes seconds per 2048-bit key.
export async function newKeyPair(bits: number): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPairAsync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return {
    pem: privateKey,
    privateKey: forge.pki.privateKeyFromPem(privateKey),
    publicKey: forge.pki.publicKeyFromPem(publicKey),
  };
}

/** 16 random bytes as a DER INTEGER that is positive and minimally encoded (OpenSSL rejects padding). */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) || 0x01;
  return bytes.toString('hex');
}

function validity(from: Date, days: number): Validity {
  return { notBefore: new Date(from.getTime() - BACKDATE_MS), notAfter: new Date(from.getTime() + days * DAY_MS) };
}

function newCertificate(subjectKey: KeyPair, subject: Attributes, issuer: Attributes, valid: Validity): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = subjectKey.publicKey;
  cert.serialNumber = randomSerial();
  cert.validity.notBefore = valid.notBefore;
  cert.validity.notAfter = valid.notAfter;
  cert.setSubject(subject);
  cert.setIssuer(issuer);
  return cert;
}

function caCommonName(now: Date): string {
  // Seconds, not just the day: two CAs made the same day stay distinguishable in a trust store.
  return `registry-edge CA ${now.toISOString().replace(/\.\d+Z$/, 'Z')}`;
}

function createCA(key: KeyPair, now: Date, days: number): forge.pki.Certificate {
  const name: Attributes = [{ shortName: 'CN', value: caCommonName(now) }];
  const cert = newCertificate(key, name, name, validity(now, days));
  cert.setExtensions([
    // pathlen 0: this CA only ever signs the edge's own server certificates, never other CAs.
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(key.privateKey, forge.md.sha256.create());
  return cert;
}

function altName(host: string): { type: number; value: string } {
  // type 7 = iPAddress (raw bytes), type 2 = dNSName; forge's own IPv6 parsing misses some spellings.
  return isIPHost(host) ? { type: 7, value: ipBytes(host).toString('binary') } : { type: 2, value: host };
}

export function createServerCert(key: KeyPair, hosts: string[], ca: forge.pki.Certificate, caKey: forge.pki.rsa.PrivateKey, now: Date, days: number): forge.pki.Certificate {
  const subject: Attributes = [{ shortName: 'CN', value: hosts[0] }];
  const cert = newCertificate(key, subject, ca.subject.attributes, validity(now, days));
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: hosts.map(altName) },
    { name: 'subjectKeyIdentifier' },
    // Explicit bytes: forge's `keyIdentifier: true` would use this certificate's own key, not the CA's.
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return cert;
}

function checkPositiveInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`${name} must be a positive whole number, got ${value}`);
}

function checkOptions(hosts: string[], days: number, caDays: number, keyBits: number): void {
  validateHosts(hosts);
  checkPositiveInteger('days', days);
  checkPositiveInteger('caDays', caDays);
  // A server certificate outliving its CA would stop verifying early, silently.
  if (days > caDays) throw new Error(`days (${days}) must not exceed caDays (${caDays})`);
  if (!Number.isSafeInteger(keyBits) || keyBits < 2048 || keyBits > 16384) {
    throw new Error(`keyBits must be a whole number from 2048 to 16384, got ${keyBits}`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

function refusal(path: string): Error {
  return new Error(`refusing to overwrite existing ${path} (use force / --force to replace it)`);
}

// Checked before any key is generated so a refusal costs nothing and leaves nothing half-written.
async function refuseExisting(paths: string[]): Promise<void> {
  for (const path of paths) if (await exists(path)) throw refusal(path);
}

/** Writes `data` with exactly `mode`: chmod because the create mode is filtered by the umask. */
export async function writeOutput(path: string, data: string, mode: number, force: boolean): Promise<void> {
  if (!force) {
    // 'wx' so a file that appeared since refuseExisting is still not clobbered.
    await writeFile(path, data, { flag: 'wx', mode }).catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'EEXIST' ? refusal(path) : err;
    });
    await chmod(path, mode);
    return;
  }
  // A fresh temp file renamed over the old one: an existing 0644 key cannot keep its loose mode,
  // and a failure midway leaves the previous file intact.
  const temp = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(temp, data, { flag: 'wx', mode });
    await chmod(temp, mode);
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
}

export function outputPaths(outDir: string): InitResult {
  const dir = resolve(outDir);
  return {
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    cert: join(dir, 'server.crt'),
    key: join(dir, 'server.key'),
  };
}

/** Creates the CA and the server certificate in `outDir`; resolves with the absolute paths written. */
export async function initCertificates(opts: InitOptions): Promise<InitResult> {
  const { hosts, days = DEFAULT_DAYS, caDays = DEFAULT_CA_DAYS, keyBits = DEFAULT_KEY_BITS, force = false } = opts;
  checkOptions(hosts, days, caDays, keyBits);
  const paths = outputPaths(opts.outDir);
  await mkdir(resolve(opts.outDir), { recursive: true });
  if (!force) await refuseExisting(Object.values(paths));

  const [caKey, serverKey] = await Promise.all([newKeyPair(keyBits), newKeyPair(keyBits)]);
  const now = new Date();
  const ca = createCA(caKey, now, caDays);
  const server = createServerCert(serverKey, hosts, ca, caKey.privateKey, now, days);
  const caPem = forge.pki.certificateToPem(ca);

  await writeOutput(paths.caKey, caKey.pem, KEY_MODE, force);
  await writeOutput(paths.caCert, caPem, CERT_MODE, force);
  await writeOutput(paths.key, serverKey.pem, KEY_MODE, force);
  // The chain, so clients that only trust the CA can build the path from what the edge sends.
  await writeOutput(paths.cert, forge.pki.certificateToPem(server) + caPem, CERT_MODE, force);
  return paths;
}

function addressList(hosts: string[], port: number): { addresses: string[]; wildcards: string[] } {
  const addresses = hosts.filter((h) => !h.startsWith('*.')).map((h) => registryAddress(h, port));
  return { addresses, wildcards: hosts.filter((h) => h.startsWith('*.')) };
}

function edgeSteps(dir: string): string[] {
  return [
    'registry-edge: serve TLS with the chain and key (config keys http.tls.certificate, http.tls.key):',
    `  http.tls.certificate: ${dir}/server.crt`,
    `  http.tls.key: ${dir}/server.key`,
    '  in YAML:',
    '    http:',
    '      tls:',
    `        certificate: ${dir}/server.crt`,
    `        key: ${dir}/server.key`,
  ];
}

function dockerSteps(dir: string, addresses: string[]): string[] {
  const first = addresses[0] ?? '<host:port>';
  return [
    'Docker: copy ca.crt into a directory named after each address (no daemon restart needed):',
    ...addresses.map((a) => `  /etc/docker/certs.d/${a}/ca.crt`),
    '  for example:',
    `    sudo install -D -m 0644 ${dir}/ca.crt /etc/docker/certs.d/${first}/ca.crt`,
  ];
}

function hostsToml(dir: string, address: string): string[] {
  return [
    `server = "https://${address}"`,
    '',
    `[host."https://${address}"]`,
    '  capabilities = ["pull", "resolve"]',
    `  ca = "${dir}/ca.crt"`,
  ];
}

function containerdSteps(dir: string, addresses: string[]): string[] {
  const first = addresses[0] ?? '<host:port>';
  return [
    'containerd: one hosts.toml per address; the CRI registry config must set',
    '  config_path = "/etc/containerd/certs.d" (ctr needs --hosts-dir /etc/containerd/certs.d):',
    ...addresses.map((a) => `  /etc/containerd/certs.d/${a}/hosts.toml`),
    `  for example, /etc/containerd/certs.d/${first}/hosts.toml:`,
    ...hostsToml(dir, first).map((line) => (line === '' ? '' : `    ${line}`)),
    `  (ca is read on the client: copy ${dir}/ca.crt there and adjust the path if it differs)`,
  ];
}

function containersSteps(dir: string, addresses: string[]): string[] {
  const first = addresses[0] ?? '<host:port>';
  return [
    'skopeo / podman / buildah: system-wide, copy ca.crt to',
    ...addresses.map((a) => `  /etc/containers/certs.d/${a}/ca.crt`),
    // containers/image fails on a *.key without a matching *.cert, so --cert-dir cannot be
    // pointed at the output directory (it holds ca.key and server.key).
    '  or per command with --cert-dir and a directory holding only ca.crt:',
    `    mkdir -p ~/.registry-edge-ca && cp ${dir}/ca.crt ~/.registry-edge-ca/`,
    `    skopeo inspect --cert-dir ~/.registry-edge-ca docker://${first}/library/alpine:latest`,
    `    podman pull --cert-dir ~/.registry-edge-ca ${first}/library/alpine:latest`,
  ];
}

/** What the operator does next, per client kind, for the certificates `initCertificates` wrote. */
export function nextSteps(opts: NextStepsOptions): string {
  const dir = resolve(opts.outDir);
  const { addresses, wildcards } = addressList(opts.hosts, opts.port ?? DEFAULT_PORT);
  const header = [
    `Clients must trust ${dir}/ca.crt. Keep ${dir}/ca.key on this machine: it can sign certificates for any name.`,
    `Registry addresses: ${addresses.join(', ') || '(none besides wildcards)'}`,
    ...wildcards.map((w) => `  ${w}: repeat the per-address steps for each concrete name under it that clients use`),
  ];
  const sections = [
    header,
    edgeSteps(dir),
    dockerSteps(dir, addresses),
    containerdSteps(dir, addresses),
    containersSteps(dir, addresses),
  ];
  return sections.map((lines) => lines.join('\n')).join('\n\n') + '\n';
}
