/**
 * `certs show`: what an operator needs to see in a certificate file. Reading goes through
 * node:crypto (OpenSSL), which also understands EC and other certificates forge cannot parse.
 */
import { X509Certificate } from 'node:crypto';
import { canonicalIP } from './hosts.js';

export interface CertificateInfo {
  /** One-line DN, e.g. `CN=edge.example.com, O=Example`. */
  subject: string;
  issuer: string;
  /** Upper-case hex, as OpenSSL prints it. */
  serial: string;
  /** ISO 8601. */
  notBefore: string;
  notAfter: string;
  dnsNames: string[];
  /** Canonical (compressed) spelling, so `::1` rather than `0:0:0:0:0:0:0:1`. */
  ipAddresses: string[];
  isCA: boolean;
  /** Colon-separated upper-case hex. */
  sha256Fingerprint: string;
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const DAY_MS = 86_400_000;

// Node prints one RDN per line with RFC 2253 escaping, so joining with ", " stays unambiguous.
function oneLineName(name: string): string {
  return name.split('\n').filter(Boolean).join(', ');
}

/**
 * Splits Node's `subjectAltName` string (`DNS:a, IP Address:1.2.3.4`). Values containing
 * separators come JSON-quoted (`DNS:"a,b"`), so a plain split on ", " would cut them apart.
 */
export function parseSubjectAltName(text: string): Array<{ type: string; value: string }> {
  const entries: Array<{ type: string; value: string }> = [];
  const entry = /([^:,]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/gy;
  for (let m = entry.exec(text); m !== null && m[0] !== ''; m = entry.exec(text)) {
    const raw = m[2] ?? '';
    entries.push({ type: (m[1] ?? '').trim(), value: raw.startsWith('"') ? (JSON.parse(raw) as string) : raw });
  }
  return entries;
}

function isoDate(opensslDate: string): string {
  // Node 20 only exposes OpenSSL's text form ("Nov 22 21:56:26 2026 GMT"), which Date parses.
  return new Date(opensslDate).toISOString();
}

function describeOne(cert: X509Certificate): CertificateInfo {
  const sans = parseSubjectAltName(cert.subjectAltName ?? '');
  return {
    subject: oneLineName(cert.subject),
    issuer: oneLineName(cert.issuer),
    serial: cert.serialNumber,
    notBefore: isoDate(cert.validFrom),
    notAfter: isoDate(cert.validTo),
    dnsNames: sans.filter((s) => s.type === 'DNS').map((s) => s.value),
    ipAddresses: sans.filter((s) => s.type === 'IP Address').map((s) => canonicalIP(s.value)),
    isCA: cert.ca,
    sha256Fingerprint: cert.fingerprint256,
  };
}

/** Every certificate of a PEM bundle (such as server.crt, which holds the chain), in file order. */
export function describeCertificate(pem: string): CertificateInfo[] {
  const blocks = pem.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) throw new Error('no PEM certificate (-----BEGIN CERTIFICATE-----) found');
  return blocks.map((block) => describeOne(new X509Certificate(block)));
}

function remaining(info: CertificateInfo, now: Date): string {
  const from = Date.parse(info.notBefore);
  const to = Date.parse(info.notAfter);
  if (now.getTime() < from) return `not valid yet, starts in ${Math.ceil((from - now.getTime()) / DAY_MS)} days`;
  if (now.getTime() > to) return `EXPIRED ${Math.floor((now.getTime() - to) / DAY_MS)} days ago`;
  return `expires in ${Math.floor((to - now.getTime()) / DAY_MS)} days`;
}

function sanLine(info: CertificateInfo): string {
  const all = [...info.dnsNames.map((d) => `DNS:${d}`), ...info.ipAddresses.map((ip) => `IP:${ip}`)];
  return all.length > 0 ? all.join(', ') : '(none)';
}

function formatOne(info: CertificateInfo, index: number, count: number, now: Date): string {
  return [
    `certificate ${index + 1} of ${count}${info.isCA ? ' (CA)' : ''}`,
    `subject: ${info.subject}`,
    `issuer: ${info.issuer}`,
    `serial: ${info.serial}`,
    `valid: ${info.notBefore} .. ${info.notAfter} (${remaining(info, now)})`,
    `SANs: ${sanLine(info)}`,
    `CA: ${info.isCA ? 'yes' : 'no'}`,
    `SHA-256: ${info.sha256Fingerprint}`,
  ].join('\n');
}

/** One block per certificate, blank line between blocks; `now` is a parameter for testability. */
export function formatCertificateInfo(info: CertificateInfo[], now: Date = new Date()): string {
  return info.map((one, i) => formatOne(one, i, info.length, now)).join('\n\n') + '\n';
}
