/**
 * The cache as a RegistryReader: committed blobs and manifests, and the tag mappings of
 * one origin. Content-addressed: which repository may see a digest is membership's
 * question, asked by the caller, not here.
 */
import { RegistryError } from '../oci/errors.js';
import type { Digest } from '../oci/grammar.js';
import type { ByteRange, RegistryReader } from '../reads/registry-reader.js';
import type { Writable } from 'node:stream';
import type { BlobStore } from './blob-store.js';
import type { ManifestStoreView, StoredManifest, TagMapping } from './manifest-store.js';

/** An open committed blob, bound to the bytes asked for. */
export interface LocalBlob {
  readonly size: number;
  /** Writes the bytes to `dest`, ends it and lets the file go; call once. */
  send(dest: Writable, done: (err: Error | undefined) => void): void;
}

const blobUnknown = (digest: Digest): RegistryError => new RegistryError('BLOB_UNKNOWN', 'blob unknown to the cache', { digest: digest.value });

export class LocalRegistry implements RegistryReader<LocalBlob> {
  private readonly blobs: BlobStore;
  private readonly manifests: ManifestStoreView;

  constructor(blobs: BlobStore, manifests: ManifestStoreView) {
    this.blobs = blobs;
    this.manifests = manifests;
  }

  async statBlob(_name: string, digest: Digest): Promise<number> {
    const size = this.blobs.sizeOf(digest);
    if (size === undefined) throw blobUnknown(digest);
    return size;
  }

  /** A range past the blob's end rejects RANGE_INVALID. */
  async openBlob(_name: string, digest: Digest, _authorization: string | undefined, range?: ByteRange): Promise<LocalBlob> {
    const blob = await this.blobs.open(digest);
    if (!blob) throw blobUnknown(digest);
    const { start, end } = range ?? { start: 0, end: blob.size };
    if (start > end || end > blob.size) {
      blob.close();
      throw new RegistryError('RANGE_INVALID', 'requested range not satisfiable', { size: blob.size });
    }
    return {
      size: blob.size,
      send: (dest, done) =>
        blob.sendTo(dest, start, end, (err) => {
          blob.close();
          done(err);
        }),
    };
  }

  /** The mapping as last confirmed (with when), whatever its age: freshness is the caller's policy. */
  async resolveTag(name: string, tag: string): Promise<TagMapping> {
    const mapping = await this.manifests.getTag(name, tag);
    if (!mapping) throw new RegistryError('MANIFEST_UNKNOWN', 'tag unknown to the cache', { tag });
    return mapping;
  }

  async getManifest(_name: string, digest: Digest): Promise<StoredManifest> {
    const stored = await this.manifests.get(digest);
    if (!stored) throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown to the cache', { digest: digest.value });
    return stored;
  }
}
