/** Host names and addresses as they appear in certificates and in registry references. */
import { isIP, isIPv4 } from 'node:net';

// RFC 1123 label. Underscores are refused: several TLS stacks reject them in dNSName SANs.
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/** An IP literal usable in a certificate: zone ids (`fe80::1%eth0`) only mean something on one machine. */
export function isIPHost(host: string): boolean {
  return isIP(host) !== 0 && !host.includes('%');
}

function isDnsName(host: string): boolean {
  if (host.length > 253) return false;
  const labels = host.split('.');
  if (!labels.every((label) => LABEL.test(label))) return false;
  // An all-digit last label would make `1.2.3.999` pass as a name rather than fail as an address.
  return !/^\d+$/.test(labels[labels.length - 1] ?? '');
}

/** Whether `host` may go into a SAN: an IP, a DNS name, or `*.` + a name of two or more labels. */
export function isValidHost(host: string): boolean {
  if (isIPHost(host)) return true;
  if (host.startsWith('*.')) {
    const rest = host.slice(2);
    // `*.com` would match a whole TLD; clients refuse such wildcards, so refuse them here first.
    return rest.includes('.') && isDnsName(rest);
  }
  return isDnsName(host);
}

/** Throws naming the first bad host, so the operator sees which entry of a long list to fix. */
export function validateHosts(hosts: readonly string[]): void {
  if (hosts.length === 0) throw new Error('at least one host (DNS name or IP address) is required');
  for (const host of hosts) {
    if (!isValidHost(host)) {
      throw new Error(
        `invalid host ${JSON.stringify(host)}: expected a DNS name (edge.example.com, *.example.com) ` +
          'or an IP address, without scheme, brackets or port',
      );
    }
  }
}

/** The 4 or 16 bytes of an IP literal, as a SAN iPAddress holds them. */
export function ipBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  // The URL parser canonicalises every IPv6 spelling (including an embedded dotted quad) to hex groups.
  const canonical = new URL(`http://[${ip}]`).hostname.slice(1, -1);
  const [head = '', tail] = canonical.split('::');
  const groups = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return Buffer.from(all.map((g) => g.padStart(4, '0')).join(''), 'hex');
}

/** The compressed, canonical spelling of an IP (OpenSSL prints IPv6 SANs as `0:0:0:0:0:0:0:1`). */
export function canonicalIP(ip: string): string {
  return isIPv4(ip) ? ip : new URL(`http://[${ip}]`).hostname.slice(1, -1);
}

/**
 * `host:port` as a client writes it in an image reference, which is also the name Docker,
 * containerd and containers/image look up under their certs.d directories.
 */
export function registryAddress(host: string, port: number): string {
  const name = isIP(host) === 6 ? `[${host}]` : host;
  // References to the default HTTPS port normally leave it out, and the lookup uses the name as written.
  return port === 443 ? name : `${name}:${port}`;
}
