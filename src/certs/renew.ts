/**
 * `certs renew`: a new server key and certificate signed by the CA `certs init` made, so
 * clients that trust ca.crt keep trusting the edge (`init --force` would make them trust a
 * new CA). The running edge picks the new pair up by itself (src/http/tls.ts).
 */
import { readFile } from 'node:fs/promises';
import forge from 'node-forge';
import { DEFAULT_DAYS, DEFAULT_KEY_BITS, CERT_MODE, KEY_MODE, createServerCert, newKeyPair, outputPaths, validateHosts, writeOutput, type InitResult } from './issue.js';
import { describeCertificate } from './show.js';

export interface RenewOptions {
  readonly outDir: string;
  /** Default: the SANs of the current server certificate, its CN first. */
  readonly hosts?: readonly string[];
  readonly days?: number;
}

export interface RenewResult extends InitResult {
  readonly hosts: readonly string[];
  readonly notAfter: Date;
}

const DAY_MS = 86_400_000;

async function readPem(path: string, what: string): Promise<string> {
  return readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot read ${what} ${path}: ${err.code === 'ENOENT' ? 'no such file (make one with certs init)' : err.message}`);
  });
}

/** The names the current certificate is for, its CN first (it becomes the new CN). */
async function currentHosts(certFile: string): Promise<string[]> {
  const [leaf] = describeCertificate(await readPem(certFile, 'the server certificate'));
  if (!leaf) return [];
  const sans = [...leaf.dnsNames, ...leaf.ipAddresses];
  const cn = /^CN=([^,]+)/.exec(leaf.subject)?.[1];
  return cn !== undefined && sans.includes(cn) ? [cn, ...sans.filter((h) => h !== cn)] : sans;
}

export async function renewServerCertificate(opts: RenewOptions): Promise<RenewResult> {
  const paths = outputPaths(opts.outDir);
  const caPem = await readPem(paths.caCert, 'the CA certificate');
  const ca = forge.pki.certificateFromPem(caPem);
  const caKey = forge.pki.privateKeyFromPem(await readPem(paths.caKey, 'the CA key')) as forge.pki.rsa.PrivateKey;
  const caPublic = ca.publicKey as forge.pki.rsa.PublicKey;
  // A certificate signed by another key would verify against nothing the clients trust.
  if (caPublic.n.compareTo(caKey.n) !== 0) throw new Error(`${paths.caKey} is not the key of ${paths.caCert}`);
  const hosts = opts.hosts ? [...opts.hosts] : await currentHosts(paths.cert);
  validateHosts(hosts);
  const days = opts.days ?? DEFAULT_DAYS;
  const now = new Date();
  const caLeft = Math.floor((ca.validity.notAfter.getTime() - now.getTime()) / DAY_MS);
  if (days > caLeft) {
    throw new Error(`the CA in ${paths.caCert} expires in ${caLeft} days, before the ${days} asked: renew with --days ${caLeft} or less, or make a new CA with certs init --force`);
  }
  const key = await newKeyPair(DEFAULT_KEY_BITS);
  const cert = createServerCert(key, hosts, ca, caKey, now, days);
  // The key first: until the certificate follows, the edge refuses the mismatched pair and keeps serving the old one.
  await writeOutput(paths.key, key.pem, KEY_MODE, true);
  await writeOutput(paths.cert, forge.pki.certificateToPem(cert) + caPem, CERT_MODE, true);
  return { ...paths, hosts, notAfter: cert.validity.notAfter };
}
