/**
 * Manifests by digest (exact bytes and media type, kept forever: a digest never goes
 * stale) and the last known tag -> digest mapping with the time it was last confirmed.
 * Recent manifests and tags are also held in memory, bounded by bytes and count. When
 * the disk cannot take a write, what was to be written stays in memory only and the
 * cache is marked unwritable: a full or read-only disk never fails a request here.
 * Manifest files count against the cache budget (charged); tag files are small metadata.
 */
import { mkdir, readFile, readdir, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LRUCache } from 'lru-cache';
import { parseDigest, type Digest } from '../oci/grammar.js';
import { writeFileAtomic } from './atomic-file.js';
import type { CacheLayout } from './layout.js';
import { originKey } from './membership.js';
import type { Writability } from './writability.js';

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

/** What the manifest service needs of the store: manifests by digest (shared) and one origin's tags. */
export type ManifestStoreView = Pick<ManifestStore, 'get' | 'put' | 'getTag' | 'putTag' | 'deleteTag'>;

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
  private readonly writability: Writability;
  private readonly charge: (bytes: number) => void;
  /** Digests whose manifest file is on disk (written once: the bytes of a digest never change). */
  private readonly onDisk = new Set<string>();

  /** `charge` counts the bytes of each manifest file written against the cache budget. */
  constructor(layout: CacheLayout, fsync: boolean, writability: Writability, charge: (bytes: number) => void) {
    this.layout = layout;
    this.fsync = fsync;
    this.writability = writability;
    this.charge = charge;
  }

  /** Creates the directories and charges the manifests on disk; files that are no manifest's are removed. */
  async init(): Promise<void> {
    await mkdir(this.layout.manifests, { recursive: true });
    await mkdir(this.layout.tags, { recursive: true });
    let bytes = 0;
    for (const algorithm of await readdir(this.layout.manifests)) {
      const prefixes = await readdir(join(this.layout.manifests, algorithm)).catch(() => undefined);
      if (!prefixes) await rm(join(this.layout.manifests, algorithm), { force: true });
      for (const prefix of prefixes ?? []) {
        const prefixDir = join(this.layout.manifests, algorithm, prefix);
        for (const hex of await readdir(prefixDir).catch(() => [])) {
          const digest = parseDigest(`${algorithm}:${hex}`);
          const path = join(prefixDir, hex);
          const st = digest && this.layout.manifestPath(digest) === path ? await stat(path).catch(() => undefined) : undefined;
          if (digest && st?.isFile()) {
            this.onDisk.add(digest.value);
            bytes += st.size;
          } else {
            await rm(path, { recursive: true, force: true });
          }
        }
      }
    }
    this.charge(bytes);
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

  /** Stores a manifest whose bytes the caller has verified against `digest` (in memory only while the disk takes no writes). */
  async put(digest: Digest, mediaType: string, bytes: Buffer): Promise<StoredManifest> {
    const stored = { digest: digest.value, mediaType, bytes };
    this.manifests.set(digest.value, stored);
    if (this.onDisk.has(digest.value) || !this.writability.writable) return stored;
    const path = this.layout.manifestPath(digest);
    const file = Buffer.concat([Buffer.from(`${mediaType}\n`), bytes]);
    try {
      await mkdir(dirname(path), { recursive: true });
      await writeFileAtomic(this.layout.tempPath('manifest'), path, file, this.fsync);
    } catch (err) {
      this.writability.failed(err as Error);
      return stored;
    }
    if (!this.onDisk.has(digest.value)) {
      this.onDisk.add(digest.value);
      this.charge(file.length);
    }
    return stored;
  }

  /**
   * The view of one origin: its tags keyed as membership keys its repositories (so a
   * tag of ghcr.io is never one of docker.io), manifests by digest shared by all.
   */
  of(host: string): ManifestStoreView {
    if (!host) return this;
    return {
      get: (digest) => this.get(digest),
      put: (digest, mediaType, bytes) => this.put(digest, mediaType, bytes),
      getTag: (name, tag) => this.getTag(originKey(host, name), tag),
      putTag: (name, tag, mapping) => this.putTag(originKey(host, name), tag, mapping),
      deleteTag: (name, tag) => this.deleteTag(originKey(host, name), tag),
    };
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
    if (!this.writability.writable) return;
    await writeFileAtomic(this.layout.tempPath('tag'), this.layout.tagPath(name, tag), JSON.stringify({ name, tag, ...mapping }), false).catch((err: Error) =>
      this.writability.failed(err),
    );
  }

  async deleteTag(name: string, tag: string): Promise<void> {
    this.tags.delete(`${name}:${tag}`);
    await unlink(this.layout.tagPath(name, tag)).catch(() => undefined);
  }
}
