/**
 * Manifests by digest (exact bytes and media type, kept forever: a digest never goes
 * stale) and the last known tag -> digest mapping with the time it was last confirmed.
 * Recent manifests and tags are also held in memory, bounded by bytes and count.
 */
import { mkdir, readFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { LRUCache } from 'lru-cache';
import { parseDigest, type Digest } from '../oci/grammar.js';
import { writeFileAtomic } from './atomic-file.js';
import type { CacheLayout } from './layout.js';

export interface StoredManifest {
  readonly digest: string;
  readonly mediaType: string;
  readonly bytes: Buffer;
}

export interface TagMapping {
  readonly digest: string;
  readonly mediaType: string;
  /** ms since epoch when the upstream last confirmed this mapping. */
  readonly confirmedAt: number;
}

const MEMORY_BYTES = 64 * 1024 * 1024;
const MEMORY_TAGS = 100_000;

export class ManifestStore {
  private readonly layout: CacheLayout;
  private readonly fsync: boolean;
  private readonly manifests = new LRUCache<string, StoredManifest>({
    maxSize: MEMORY_BYTES,
    sizeCalculation: (m) => m.bytes.length + m.mediaType.length + 64,
  });
  private readonly tags = new LRUCache<string, TagMapping>({ max: MEMORY_TAGS });

  constructor(layout: CacheLayout, fsync: boolean) {
    this.layout = layout;
    this.fsync = fsync;
  }

  async init(): Promise<void> {
    await mkdir(this.layout.manifests, { recursive: true });
    await mkdir(this.layout.tags, { recursive: true });
  }

  async get(digest: Digest): Promise<StoredManifest | undefined> {
    const cached = this.manifests.get(digest.value);
    if (cached) return cached;
    let data: Buffer;
    try {
      data = await readFile(this.layout.manifestPath(digest));
    } catch {
      return undefined;
    }
    const newline = data.indexOf(0x0a);
    if (newline < 0) return undefined;
    const stored = { digest: digest.value, mediaType: data.subarray(0, newline).toString('utf8'), bytes: data.subarray(newline + 1) };
    this.manifests.set(digest.value, stored);
    return stored;
  }

  /** Stores a manifest whose bytes the caller has verified against `digest`. */
  async put(digest: Digest, mediaType: string, bytes: Buffer): Promise<StoredManifest> {
    const stored = { digest: digest.value, mediaType, bytes };
    const path = this.layout.manifestPath(digest);
    await mkdir(dirname(path), { recursive: true });
    await writeFileAtomic(this.layout.tempPath('manifest'), path, Buffer.concat([Buffer.from(`${mediaType}\n`), bytes]), this.fsync);
    this.manifests.set(digest.value, stored);
    return stored;
  }

  async getTag(name: string, tag: string): Promise<TagMapping | undefined> {
    const key = `${name}:${tag}`;
    const cached = this.tags.get(key);
    if (cached) return cached;
    try {
      const doc = JSON.parse(await readFile(this.layout.tagPath(name, tag), 'utf8')) as Partial<TagMapping> & { name?: string; tag?: string };
      // The file name is a hash: check the content really is this tag's.
      if (doc.name !== name || doc.tag !== tag || typeof doc.digest !== 'string' || !parseDigest(doc.digest)) return undefined;
      if (typeof doc.mediaType !== 'string' || typeof doc.confirmedAt !== 'number') return undefined;
      const mapping = { digest: doc.digest, mediaType: doc.mediaType, confirmedAt: doc.confirmedAt };
      this.tags.set(key, mapping);
      return mapping;
    } catch {
      return undefined;
    }
  }

  async putTag(name: string, tag: string, mapping: TagMapping): Promise<void> {
    this.tags.set(`${name}:${tag}`, mapping);
    await writeFileAtomic(this.layout.tempPath('tag'), this.layout.tagPath(name, tag), JSON.stringify({ name, tag, ...mapping }), false);
  }

  async deleteTag(name: string, tag: string): Promise<void> {
    this.tags.delete(`${name}:${tag}`);
    await unlink(this.layout.tagPath(name, tag)).catch(() => undefined);
  }
}
