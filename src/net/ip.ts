/**
 * IP addresses as text, parsed and normalised: IPv4 dotted quad without leading zeros,
 * IPv6 in the RFC 5952 form (lower case, longest zero run compressed), IPv4-mapped IPv6
 * (`::ffff:1.2.3.4`) as plain IPv4, zone ids (`%eth0`) dropped. Nothing here throws on
 * client input. Shared by the HTTP layer (client addresses) and the balancer (ip_hash).
 */
/** Parsed address: family and canonical text. */
export interface ParsedIp {
  readonly family: 'ipv4' | 'ipv6';
  readonly address: string;
}

const DEC_OCTET = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseIPv4(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const part of parts) {
    if (!DEC_OCTET.test(part)) return undefined;
    out.push(Number(part));
  }
  return out;
}

/** Eight 16-bit groups, or undefined. Accepts `::` compression and a trailing dotted IPv4. */
function parseIPv6(text: string): number[] | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parseGroups = (part: string, allowV4Tail: boolean): number[] | undefined => {
    if (part === '') return [];
    const groups = part.split(':');
    const out: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i] as string;
      if (allowV4Tail && i === groups.length - 1 && g.includes('.')) {
        const v4 = parseIPv4(g);
        if (!v4) return undefined;
        out.push(((v4[0] as number) << 8) | (v4[1] as number), ((v4[2] as number) << 8) | (v4[3] as number));
      } else {
        if (!HEX_GROUP.test(g)) return undefined;
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  if (halves.length === 1) {
    const groups = parseGroups(text, true);
    return groups && groups.length === 8 ? groups : undefined;
  }
  const head = parseGroups(halves[0] as string, false);
  const tail = parseGroups(halves[1] as string, true);
  if (!head || !tail || head.length + tail.length > 7) return undefined;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/** RFC 5952 text of eight groups. */
function formatIPv6(groups: readonly number[]): string {
  let bestStart = -1;
  let bestLen = 1; // a single zero group is not compressed
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/**
 * Parses one IP address: IPv4, IPv6 (optionally in brackets, with a zone id, which is
 * dropped). IPv4-mapped IPv6 comes back as IPv4. undefined when it is not an address.
 */
export function parseIp(text: string): ParsedIp | undefined {
  let s = text.trim();
  if (s.length === 0 || s.length > 64) return undefined;
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  if (!s.includes(':')) {
    const v4 = parseIPv4(s);
    return v4 ? { family: 'ipv4', address: v4.join('.') } : undefined;
  }
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  const g = parseIPv6(s);
  if (!g) return undefined;
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    const hi = g[6] as number;
    const lo = g[7] as number;
    return { family: 'ipv4', address: `${hi >>> 8}.${hi & 0xff}.${lo >>> 8}.${lo & 0xff}` };
  }
  return { family: 'ipv6', address: formatIPv6(g) };
}

/** Canonical text of an IP address (see parseIp), or undefined when it is not one. */
export function normalizeIp(text: string): string | undefined {
  return parseIp(text)?.address;
}
