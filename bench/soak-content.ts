// The soak's content: blobs whose bytes are the AES-128-CTR keystream of a key of their
// own (random-looking, and any byte range can be recomputed, so a Range answer is checked
// byte for byte without keeping a blob in memory), and tagged manifests that reference
// them, pushed straight to the registry's API.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MEDIA_TYPES, pushBlob, sha256Digest } from '../test/helpers/image.js';
import { httpRequest } from '../test/helpers/proc.js';

export interface SoakBlob {
  readonly kind: 'blob';
  readonly repo: string;
  readonly digest: string;
  readonly size: number;
  /** Uint8Array, not Buffer: the catalogue is copied to the client threads, and a copied Buffer is one. */
  readonly key: Uint8Array;
}

export interface SoakTag {
  readonly kind: 'tag';
  readonly repo: string;
  readonly tag: string;
  /** Digest of the manifest the tag names. */
  readonly digest: string;
}

export type SoakItem = SoakBlob | SoakTag;

export interface CatalogueOptions {
  readonly repos: number;
  readonly blobs: number;
  readonly tagsPerRepo: number;
  readonly minBytes: number;
  readonly maxBytes: number;
}

const BLOCK = 16;
const ZEROS = Buffer.alloc(256 * 1024);

/** Keystream of `key` from byte `start` on: the counter block is the block number, big-endian. */
function keystreamAt(key: Uint8Array, start: number): crypto.Cipher {
  const iv = Buffer.alloc(BLOCK);
  iv.writeBigUInt64BE(BigInt(Math.floor(start / BLOCK)), 8);
  const cipher = crypto.createCipheriv('aes-128-ctr', key, iv);
  cipher.update(ZEROS.subarray(0, start % BLOCK));
  return cipher;
}

/** Compares a body, chunk by chunk as it arrives, with a blob's bytes from `start` on. */
export class BlobBytesCheck {
  private readonly cipher: crypto.Cipher;
  /** Bytes compared so far. */
  bytes = 0;
  /** First offset (from `start`) where the body differed, or -1. */
  firstMismatch = -1;

  constructor(key: Uint8Array, start: number) {
    this.cipher = keystreamAt(key, start);
  }

  update(chunk: Buffer): void {
    for (let at = 0; at < chunk.length; at += ZEROS.length) {
      const part = chunk.subarray(at, at + ZEROS.length);
      const want = this.cipher.update(ZEROS.subarray(0, part.length));
      if (this.firstMismatch < 0 && !want.equals(part)) this.firstMismatch = this.bytes + at;
    }
    this.bytes += chunk.length;
  }
}

function* blobChunks(key: Uint8Array, size: number): Generator<Buffer> {
  const cipher = keystreamAt(key, 0);
  for (let left = size; left > 0; left -= ZEROS.length) yield cipher.update(ZEROS.subarray(0, Math.min(ZEROS.length, left)));
}

/** Log-uniform between the bounds: as many blobs of 4-8 KiB as of 4-8 MiB. */
function mixedSize(min: number, max: number): number {
  return Math.round(min * (max / min) ** Math.random());
}

export function pick<T>(xs: readonly T[]): T {
  const x = xs[Math.floor(Math.random() * xs.length)];
  if (x === undefined) throw new Error('pick from an empty list');
  return x;
}

/** Runs `job` on every item with at most `parallel` at once; stops starting new ones once `signal` aborts. */
async function eachLimited<T>(items: readonly T[], parallel: number, signal: AbortSignal, job: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      signal.throwIfAborted();
      const item = items[next++];
      if (item !== undefined) await job(item);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

async function putManifest(registryUrl: string, repo: string, tag: string, body: Buffer): Promise<string> {
  const res = await httpRequest(`${registryUrl}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'content-type': MEDIA_TYPES.ociManifest },
    body,
  });
  const digest = sha256Digest(body);
  if (res.status !== 201 || res.headers['docker-content-digest'] !== digest) {
    throw new Error(`PUT manifest ${repo}:${tag} answered ${res.status} ${String(res.headers['docker-content-digest'])}: ${res.body.toString('utf8')}`);
  }
  return digest;
}

/**
 * Pushes `o.blobs` blobs spread over `o.repos` repositories, and `o.tagsPerRepo` tags
 * in each whose manifests reference one to three of the repository's blobs as layers and
 * one as config (the registry only checks that they exist; nothing here unpacks an image).
 */
export async function seedCatalogue(registryUrl: string, work: string, o: CatalogueOptions, signal: AbortSignal): Promise<SoakItem[]> {
  const repos = Array.from({ length: o.repos }, (_v, i) => `soak/r${String(i).padStart(2, '0')}`);
  const planned = Array.from({ length: o.blobs }, (_v, i) => ({
    repo: repos[i % repos.length] ?? '',
    size: mixedSize(o.minBytes, o.maxBytes),
    key: crypto.randomBytes(BLOCK),
    file: path.join(work, `seed-${i}.bin`),
  }));
  const blobs: SoakBlob[] = [];
  await eachLimited(planned, 4, signal, async (p) => {
    await pipeline(Readable.from(blobChunks(p.key, p.size)), fs.createWriteStream(p.file));
    try {
      const { digest } = await pushBlob(registryUrl, p.repo, p.file);
      blobs.push({ kind: 'blob', repo: p.repo, digest, size: p.size, key: p.key });
    } finally {
      fs.rmSync(p.file, { force: true });
    }
  });
  const tags: SoakTag[] = [];
  for (const repo of repos) {
    const mine = blobs.filter((b) => b.repo === repo);
    if (mine.length === 0) continue;
    for (let t = 0; t < o.tagsPerRepo; t++) {
      signal.throwIfAborted();
      const layers = shuffled(mine).slice(0, 1 + Math.floor(Math.random() * 3));
      const config = pick(mine);
      const manifest = {
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.ociManifest,
        config: { mediaType: MEDIA_TYPES.ociConfig, digest: config.digest, size: config.size },
        layers: layers.map((l) => ({ mediaType: MEDIA_TYPES.ociLayerGzip, digest: l.digest, size: l.size })),
      };
      const tag = `v${t}`;
      tags.push({ kind: 'tag', repo, tag, digest: await putManifest(registryUrl, repo, tag, Buffer.from(JSON.stringify(manifest))) });
    }
  }
  return [...blobs, ...tags];
}

function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** The items in a random order, cut into `n` slices of (nearly) equal length. */
export function slices<T>(items: readonly T[], n: number): T[][] {
  const all = shuffled(items);
  return Array.from({ length: n }, (_v, k) => all.slice(Math.floor((k * all.length) / n), Math.floor(((k + 1) * all.length) / n)));
}
