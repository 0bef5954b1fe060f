/**
 * The client's address as nginx's realip module would see it: X-Forwarded-For (walked
 * from the right, skipping trusted proxies, like `real_ip_recursive on`) or X-Real-IP,
 * believed only when the socket peer is itself a trusted proxy. Addresses come out
 * normalised (src/net/ip.ts). Nothing here throws on client input.
 */
import { BlockList } from 'node:net';
import { normalizeIp, parseIp, type ParsedIp } from '../net/ip.js';

/** Set of trusted proxy addresses and networks (`set_real_ip_from`). */
export interface TrustedProxies {
  /** Whether `address` (any accepted spelling, see normalizeIp) is a trusted proxy. */
  has(address: string): boolean;
  /** The entries as given, for logs. */
  readonly entries: readonly string[];
}

/** Headers read by clientAddress (node's IncomingHttpHeaders fits). */
export interface ForwardingHeaders {
  readonly [name: string]: string | string[] | undefined;
  'x-forwarded-for'?: string | string[] | undefined;
  'x-real-ip'?: string | string[] | undefined;
}

/** Longest header value examined, and most X-Forwarded-For hops walked; beyond that the walk stops. */
const MAX_HEADER_CHARS = 8192;
const MAX_HOPS = 64;

/**
 * One X-Forwarded-For entry: an address, possibly with a port (`1.2.3.4:5678`,
 * `[2001:db8::1]:443`) or in quotes, as some proxies write it.
 */
function parseForwardedEntry(entry: string): ParsedIp | undefined {
  let s = entry.trim();
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) s = s.slice(1, -1).trim();
  const direct = parseIp(s);
  if (direct) return direct;
  const bracketPort = /^\[([^\]]+)\]:\d{1,5}$/.exec(s);
  if (bracketPort) return parseIp(bracketPort[1] as string);
  const v4Port = /^([\d.]+):\d{1,5}$/.exec(s);
  if (v4Port) {
    const ip = parseIp(v4Port[1] as string);
    return ip?.family === 'ipv4' ? ip : undefined;
  }
  return undefined;
}

class TrustedProxyList implements TrustedProxies {
  readonly entries: readonly string[];
  readonly #list: BlockList;
  readonly #empty: boolean;

  constructor(entries: readonly string[], list: BlockList) {
    this.entries = entries;
    this.#list = list;
    this.#empty = entries.length === 0;
  }

  has(address: string): boolean {
    if (this.#empty) return false;
    const ip = parseIp(address);
    if (!ip) return false;
    try {
      return this.#list.check(ip.address, ip.family);
    } catch {
      return false;
    }
  }
}

/**
 * Trusted proxies from IPs and CIDRs, IPv4 and IPv6 (`10.0.0.0/8`, `192.168.1.7`,
 * `fd00::/8`, `::1`). Throws an Error naming the first invalid entry.
 */
export function parseTrustedProxies(list: readonly string[]): TrustedProxies {
  const blocks = new BlockList();
  for (const raw of list) {
    const bad = (why: string): Error => new Error(`invalid trusted proxy ${JSON.stringify(raw)}: ${why}`);
    if (typeof raw !== 'string') throw bad('expected an IP address or CIDR string');
    const entry = raw.trim();
    const slash = entry.indexOf('/');
    const addrText = slash >= 0 ? entry.slice(0, slash) : entry;
    // A bracketed or zoned entry is no network spelling nginx accepts either.
    if (addrText.includes('[') || addrText.includes('%')) throw bad('expected an IP address or CIDR');
    const ip = parseIp(addrText);
    if (!ip) throw bad('not an IP address');
    const mapped = ip.family === 'ipv4' && addrText.includes(':');
    const maxPrefix = ip.family === 'ipv4' && !mapped ? 32 : 128;
    let prefix = maxPrefix;
    if (slash >= 0) {
      const prefixText = entry.slice(slash + 1);
      if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > maxPrefix) {
        throw bad(`prefix length must be 0..${maxPrefix}`);
      }
      prefix = Number(prefixText);
    }
    if (mapped) {
      // ::ffff:a.b.c.d/n: mapped addresses are normalised to IPv4, so the rule is too.
      if (prefix < 96) throw bad('an IPv4-mapped network needs a prefix of at least 96');
      prefix -= 96;
    }
    blocks.addSubnet(ip.address, prefix, ip.family);
  }
  return new TrustedProxyList([...list], blocks);
}

/** Values of one header as a list of comma-separated entries, capped in size. */
function headerEntries(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const text = typeof value === 'string' ? value : Array.isArray(value) ? value.filter((v) => typeof v === 'string').join(',') : '';
  if (text.length === 0) return [];
  // Keep the right end: that is the part written by our own proxies.
  const tail = text.length > MAX_HEADER_CHARS ? text.slice(text.length - MAX_HEADER_CHARS) : text;
  const entries = tail.split(',');
  if (tail !== text) entries.shift(); // the first piece may be a cut entry
  return entries.map((e) => e.trim()).filter((e) => e.length > 0);
}

/**
 * The client address for a request: the socket peer, unless that peer is a trusted
 * proxy; then the rightmost X-Forwarded-For entry that is not itself trusted (walking
 * from the right; when every entry is trusted, the leftmost), or X-Real-IP when there is
 * no usable X-Forwarded-For. A malformed entry stops the walk at the last address reached
 * (the proxy that passed it on) — as nginx does; a malformed header is ignored. Never throws.
 * Returns the normalised address; '' when the socket address is missing.
 */
export function clientAddress(socketAddress: string | undefined, headers: ForwardingHeaders, trusted: TrustedProxies): string {
  const peerText = typeof socketAddress === 'string' ? socketAddress : '';
  const peer = normalizeIp(peerText) ?? peerText;
  if (peer === '' || !trusted.has(peer)) return peer;

  const xff = headerEntries(headers['x-forwarded-for']);
  let current = peer;
  let usedXff = false;
  for (let i = xff.length - 1, hops = 0; i >= 0 && hops < MAX_HOPS; i--, hops++) {
    const ip = parseForwardedEntry(xff[i] as string);
    if (!ip) break;
    current = ip.address;
    usedXff = true;
    if (!trusted.has(current)) return current;
  }
  if (usedXff) return current;

  const realIp = headerEntries(headers['x-real-ip']);
  const last = realIp[realIp.length - 1];
  if (last !== undefined) {
    const ip = parseForwardedEntry(last);
    if (ip) return ip.address;
  }
  return peer;
}
