/**
 * The cache directory, drawn once:
 *
 *   <dir>/blobs/<alg>/<first 2 hex>/<hex>       committed blobs, named by their verified digest
 *   <dir>/manifests/<alg>/<first 2 hex>/<hex>   "<media type>\n" then the manifest's exact bytes
 *   <dir>/tags/<sha256(name:tag)>.json          last known tag -> digest mapping
 *   <dir>/index/snapshot                        every committed blob's digest and size, least recently used first
 *   <dir>/index/snapshot.<random>               a snapshot being written (removed at start)
 *   <dir>/tmp/                                  fills and writes in progress (same filesystem, so rename is atomic)
 *   <dir>/tmp/<n>/                              those of worker n, when several share the directory (workers: N)
 *
 * Every name below <dir> is built from a validated digest or a hash, never from raw request text.
 */
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Digest } from '../oci/grammar.js';

export class CacheLayout {
  readonly root: string;
  readonly blobs: string;
  readonly manifests: string;
  readonly tags: string;
  readonly tmp: string;
  readonly index: string;
  readonly indexSnapshot: string;

  /** `worker`: the tmp/ subdirectory of one of several workers sharing the directory. */
  constructor(root: string, worker?: number) {
    this.root = root;
    this.blobs = join(root, 'blobs');
    this.manifests = join(root, 'manifests');
    this.tags = join(root, 'tags');
    this.tmp = worker === undefined ? join(root, 'tmp') : join(root, 'tmp', String(worker));
    this.index = join(root, 'index');
    this.indexSnapshot = join(this.index, 'snapshot');
  }

  blobPath(digest: Digest): string {
    return join(this.blobs, digest.algorithm, digest.hex.slice(0, 2), digest.hex);
  }

  manifestPath(digest: Digest): string {
    return join(this.manifests, digest.algorithm, digest.hex.slice(0, 2), digest.hex);
  }

  tagPath(name: string, tag: string): string {
    return join(this.tags, createHash('sha256').update(`${name}:${tag}`).digest('hex') + '.json');
  }

  tempPath(label: string): string {
    return join(this.tmp, `${label}.${randomBytes(6).toString('hex')}`);
  }

  /** Next to the snapshot, not in tmp/: tmp/ holds fills only, and what they hold counts against the budget. */
  indexTempPath(): string {
    return `${this.indexSnapshot}.${randomBytes(6).toString('hex')}`;
  }
}
