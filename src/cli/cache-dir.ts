/**
 * A cache directory read from outside the edge, for `registry-edge cache`: what it holds,
 * re-hashing, and removals that are safe while an edge runs on it. Only committed files
 * under blobs/ and manifests/ are ever removed (an unlink: a reader with the file open
 * keeps reading it, and the edge takes a vanished file as a miss); tmp/ is never touched.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CacheLayout } from '../cache/layout.js';
import { Membership } from '../cache/membership.js';
import { parseDigest, type Digest } from '../oci/grammar.js';

export interface CachedFile {
  readonly digest: Digest;
  readonly path: string;
  readonly size: number;
  /** ms since epoch: the later of atime and mtime (a commit sets mtime; reads set atime where the mount records it). */
  readonly lastAccess: number;
}

export interface TagFile {
  readonly name: string;
  readonly tag: string;
  readonly digest: string;
}

export class CacheDir {
  readonly layout: CacheLayout;

  constructor(root: string) {
    this.layout = new CacheLayout(root);
  }

  /** Committed files under `blobs/` or `manifests/`, as the edge names them (anything else is not its). */
  async files(kind: 'blobs' | 'manifests'): Promise<CachedFile[]> {
    const base = kind === 'blobs' ? this.layout.blobs : this.layout.manifests;
    const out: CachedFile[] = [];
    for (const algorithm of await entries(base)) {
      for (const prefix of await entries(join(base, algorithm))) {
        for (const hex of await entries(join(base, algorithm, prefix))) {
          const digest = parseDigest(`${algorithm}:${hex}`);
          const path = join(base, algorithm, prefix, hex);
          if (!digest || path !== (kind === 'blobs' ? this.layout.blobPath(digest) : this.layout.manifestPath(digest))) continue;
          const st = await lstat(path).catch(() => undefined);
          if (st?.isFile()) out.push({ digest, path, size: st.size, lastAccess: Math.max(st.atimeMs, st.mtimeMs) });
        }
      }
    }
    return out;
  }

  async tags(): Promise<TagFile[]> {
    const out: TagFile[] = [];
    for (const name of await entries(this.layout.tags)) {
      if (!name.endsWith('.json')) continue;
      const text = await readFile(join(this.layout.tags, name), 'utf8').catch(() => undefined);
      try {
        const doc = JSON.parse(text ?? '') as Partial<TagFile>;
        if (typeof doc.name === 'string' && typeof doc.tag === 'string' && typeof doc.digest === 'string') out.push({ name: doc.name, tag: doc.tag, digest: doc.digest });
      } catch {
        // a tag file being replaced, or not the edge's: not a tag
      }
    }
    return out;
  }

  /** Digest -> the repositories membership.log says hold it. */
  async repositories(): Promise<Map<string, ReadonlySet<string>>> {
    const membership = new Membership(join(this.layout.root, 'membership.log'));
    await membership.init();
    return new Map(membership.entries());
  }

  /** Bytes of the fills in progress under tmp/ (read, never touched). */
  async inProgressBytes(): Promise<number> {
    let total = 0;
    for (const name of await entries(this.layout.tmp)) total += (await lstat(join(this.layout.tmp, name)).catch(() => undefined))?.size ?? 0;
    return total;
  }

  /** Whether the file still hashes to its name; a manifest file's first line is its media type, not hashed. */
  async intact(file: CachedFile, kind: 'blobs' | 'manifests'): Promise<boolean> {
    const hash = createHash(file.digest.algorithm);
    if (kind === 'manifests') {
      const bytes = await readFile(file.path);
      const newline = bytes.indexOf(0x0a);
      hash.update(newline < 0 ? Buffer.alloc(0) : bytes.subarray(newline + 1));
      return newline >= 0 && hash.digest('hex') === file.digest.hex;
    }
    for await (const chunk of createReadStream(file.path)) hash.update(chunk as Buffer);
    return hash.digest('hex') === file.digest.hex;
  }

  /** Unlinks a committed file; false when it was gone already (the edge evicted it meanwhile). */
  async remove(file: Pick<CachedFile, 'path'>): Promise<boolean> {
    try {
      await unlink(file.path);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }
}

async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw err;
  }
}
