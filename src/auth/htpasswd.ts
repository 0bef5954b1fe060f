/**
 * An htpasswd file (bcrypt entries, as `htpasswd -B` and registry:2's htpasswd auth
 * write them) for clients of the edge itself in public mode. bcrypt is slow on purpose,
 * so a verified Authorization header is remembered (under its SHA-256, never in clear)
 * for a short time; failures are never remembered.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import { LRUCache } from 'lru-cache';

const BCRYPT = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;
const MAX_REMEMBERED = 10_000;

export class Htpasswd {
  private readonly users: ReadonlyMap<string, string>;
  /** Hash of a verified Authorization -> its user. */
  private readonly verified: LRUCache<string, string>;

  private constructor(users: Map<string, string>, rememberMs: number) {
    this.users = users;
    this.verified = new LRUCache<string, string>({ max: MAX_REMEMBERED, ttl: Math.max(1, rememberMs) });
  }

  /** Reads the file; throws naming the line of any entry that is not user:bcrypt-hash. */
  static async load(path: string, rememberMs: number): Promise<Htpasswd> {
    const users = new Map<string, string>();
    const lines = (await readFile(path, 'utf8')).split('\n');
    lines.forEach((raw, i) => {
      const line = raw.trim();
      if (!line || line.startsWith('#')) return;
      const colon = line.indexOf(':');
      const hash = line.slice(colon + 1);
      if (colon <= 0 || !BCRYPT.test(hash)) throw new Error(`${path}:${i + 1}: expected user:<bcrypt hash> (htpasswd -B)`);
      users.set(line.slice(0, colon), hash);
    });
    return new Htpasswd(users, rememberMs);
  }

  /** The user, when the header carries Basic credentials of a user in the file; undefined otherwise. */
  async verify(authorization: string | undefined): Promise<string | undefined> {
    const m = authorization ? /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(authorization) : null;
    if (!m?.[1]) return undefined;
    const key = createHash('sha256').update(m[1]).digest('base64url');
    const known = this.verified.get(key);
    if (known !== undefined) return known;
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user = decoded.slice(0, colon);
    const hash = colon > 0 ? this.users.get(user) : undefined;
    if (!hash || !(await bcrypt.compare(decoded.slice(colon + 1), hash))) return undefined;
    this.verified.set(key, user);
    return user;
  }
}
