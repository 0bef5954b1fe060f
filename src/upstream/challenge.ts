/** `WWW-Authenticate` challenges, as registries send them (RFC 7235 auth-params). */
export interface Challenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

/** Parses the first challenge of a header like `Bearer realm="...",service="...",scope="..."`. */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const entries: Array<[string, string]> = [];
  const re = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/gy;
  const rest = m[2] ?? '';
  for (let p = re.exec(rest); p; p = re.exec(rest)) {
    entries.push([(p[1] ?? '').toLowerCase(), p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '')]);
  }
  // fromEntries defines own properties: a parameter named __proto__ is kept, not swallowed by the prototype setter.
  return { scheme: (m[1] ?? '').toLowerCase(), params: Object.fromEntries(entries) };
}

/** Serializes a challenge back, e.g. after its realm was rewritten. */
export function formatChallenge(challenge: Challenge): string {
  const scheme = challenge.scheme.charAt(0).toUpperCase() + challenge.scheme.slice(1);
  const params = Object.entries(challenge.params).map(([k, v]) => `${k}="${v.replace(/["\\]/g, '\\$&')}"`);
  return params.length ? `${scheme} ${params.join(',')}` : scheme;
}
