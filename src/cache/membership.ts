/**
 * Which repositories each digest has been seen in (from a successful upstream answer
 * under that repository, or from a manifest of that repository naming it). A digest
 * cached for one repository is served under another only after the upstream confirms
 * it is there. Kept in memory and in an append-only log, replayed at start, so the
 * knowledge survives a restart while the centre is down. A repository forgets a digest
 * when the upstream accepted its DELETE there; the removal is logged too, so it holds
 * across a restart.
 *
 * Log format, one line per fact: `<digest> <repository>\n`, or `- <digest> <repository>\n`
 * for a removal (both validated before they get here); replayed in order. A repository
 * of an origin other than the default one is written `<host>/<name>` (originKey), so a
 * digest confirmed under one origin's repository is never taken as held by another's,
 * and the default origin's plain names stay those of caches written before origins.
 */
import { createReadStream } from 'node:fs';
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { isValidName, parseDigest } from '../oci/grammar.js';

const REMOVAL = '- ';

/** What the services need of membership: the facts of one origin's repositories. */
export type RepositoryMembership = Pick<Membership, 'has' | 'wasRemoved' | 'add' | 'remove'>;

/** How a repository of origin `host` is keyed in membership and tag files ('' is the default origin: the plain name). */
export function originKey(host: string, name: string): string {
  return host ? `${host}/${name}` : name;
}

/** A key originKey made: a plain name, or a host (with a dot or a port) and a name. */
function isRepositoryKey(key: string): boolean {
  if (isValidName(key)) return true;
  const slash = key.indexOf('/');
  return slash > 0 && /^[a-z0-9.-]+(:\d{1,5})?$/.test(key.slice(0, slash)) && isValidName(key.slice(slash + 1));
}

export class Membership {
  private readonly file: string;
  private readonly repos = new Map<string, Set<string>>();
  /** `<digest> <repo>` pairs whose removal is the last fact known (a DELETE the upstream accepted). */
  private readonly removed = new Set<string>();
  private pending: Promise<void> = Promise.resolve();

  constructor(file: string) {
    this.file = file;
  }

  async init(): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true });
    try {
      const lines = createInterface({ input: createReadStream(this.file), crlfDelay: Infinity });
      for await (const line of lines) {
        const removal = line.startsWith(REMOVAL);
        const [digest, repo] = (removal ? line.slice(REMOVAL.length) : line).split(' ');
        // A torn last line (crash mid-append) fails the grammar and is skipped.
        if (!digest || !repo || !parseDigest(digest) || !isRepositoryKey(repo)) continue;
        if (removal) this.forget(digest, repo);
        else this.remember(digest, repo);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /** The view of one origin's repositories (host '' is the default origin, keyed by plain names). */
  of(host: string): RepositoryMembership {
    if (!host) return this;
    return {
      has: (digest, repo) => this.has(digest, originKey(host, repo)),
      wasRemoved: (digest, repo) => this.wasRemoved(digest, originKey(host, repo)),
      add: (repo, digests) => this.add(originKey(host, repo), digests),
      remove: (repo, digests) => this.remove(originKey(host, repo), digests),
    };
  }

  has(digest: string, repo: string): boolean {
    return this.repos.get(digest)?.has(repo) === true;
  }

  /** Every digest with the repositories known to hold it (for `registry-edge cache ls`). */
  entries(): IterableIterator<[string, ReadonlySet<string>]> {
    return this.repos.entries();
  }

  /** Whether the last fact known of `repo` and `digest` is that the upstream deleted it there (not merely never seen). */
  wasRemoved(digest: string, repo: string): boolean {
    return this.removed.has(`${digest} ${repo}`);
  }

  /** Records that `repo` holds each of `digests`; resolves once new facts are on disk. */
  add(repo: string, digests: Iterable<string>): Promise<void> {
    let lines = '';
    for (const digest of digests) {
      if (this.remember(digest, repo)) lines += `${digest} ${repo}\n`;
    }
    return this.append(lines);
  }

  /** Records that `repo` no longer holds each of `digests`; resolves once the removals are on disk. */
  remove(repo: string, digests: Iterable<string>): Promise<void> {
    let lines = '';
    for (const digest of digests) {
      if (this.forget(digest, repo)) lines += `${REMOVAL}${digest} ${repo}\n`;
    }
    return this.append(lines);
  }

  private append(lines: string): Promise<void> {
    if (!lines) return this.pending;
    // Appends are chained so lines never interleave.
    this.pending = this.pending.then(() => appendFile(this.file, lines)).catch(() => undefined);
    return this.pending;
  }

  private forget(digest: string, repo: string): boolean {
    const set = this.repos.get(digest);
    if (!set?.delete(repo)) return false;
    if (set.size === 0) this.repos.delete(digest);
    this.removed.add(`${digest} ${repo}`);
    return true;
  }

  private remember(digest: string, repo: string): boolean {
    let set = this.repos.get(digest);
    if (!set) this.repos.set(digest, (set = new Set()));
    if (set.has(repo)) return false;
    set.add(repo);
    this.removed.delete(`${digest} ${repo}`);
    return true;
  }
}

/** Digests a manifest or index names: its config, layers, child manifests and subject. */
export function referencedDigests(manifest: Buffer): string[] {
  let doc: unknown;
  try {
    doc = JSON.parse(manifest.toString('utf8'));
  } catch {
    return [];
  }
  const out: string[] = [];
  const take = (d: unknown): void => {
    const digest = (d as { digest?: unknown } | null)?.digest;
    if (typeof digest === 'string' && parseDigest(digest)) out.push(digest);
  };
  const m = doc as { config?: unknown; layers?: unknown; manifests?: unknown; subject?: unknown; blobs?: unknown };
  take(m.config);
  take(m.subject);
  for (const list of [m.layers, m.manifests, m.blobs]) if (Array.isArray(list)) list.forEach(take);
  return out;
}
