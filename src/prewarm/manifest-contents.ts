/**
 * What a manifest points at, for a prefetch: an index's manifests (with their
 * platforms), or an image's config and layers. Only descriptors with a valid digest
 * are taken; anything else in the document is not the prefetch's business.
 */
import { parseDigest, type Digest } from '../oci/grammar.js';
import { MEDIA_TYPES } from '../oci/media-types.js';
import type { Platform } from './platforms.js';

export interface BlobRef {
  readonly digest: Digest;
  /** The size the manifest declares. */
  readonly size: number;
}

export interface IndexEntry {
  readonly digest: Digest;
  readonly platform: Platform | undefined;
}

export type ManifestContents =
  | { readonly kind: 'index'; readonly manifests: readonly IndexEntry[] }
  | { readonly kind: 'image'; readonly blobs: readonly BlobRef[] };

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): Json[] => (Array.isArray(v) ? v.filter(isObject) : []);

const INDEX_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList]);

/** The manifest's references, or undefined when its bytes are not a JSON object. */
export function manifestContents(mediaType: string, bytes: Buffer): ManifestContents | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isObject(doc)) return undefined;
  if (INDEX_TYPES.has(mediaType)) {
    const manifests: IndexEntry[] = [];
    for (const entry of list(doc.manifests)) {
      const digest = parseDigest(typeof entry.digest === 'string' ? entry.digest : '');
      if (digest) manifests.push({ digest, platform: platformOf(entry.platform) });
    }
    return { kind: 'index', manifests };
  }
  const blobs: BlobRef[] = [];
  for (const d of [...(isObject(doc.config) ? [doc.config] : []), ...list(doc.layers)]) {
    const digest = parseDigest(typeof d.digest === 'string' ? d.digest : '');
    if (digest && typeof d.size === 'number' && Number.isSafeInteger(d.size) && d.size >= 0) blobs.push({ digest, size: d.size });
  }
  return { kind: 'image', blobs };
}

function platformOf(value: unknown): Platform | undefined {
  if (!isObject(value) || typeof value.os !== 'string' || typeof value.architecture !== 'string') return undefined;
  return { os: value.os, architecture: value.architecture, variant: typeof value.variant === 'string' ? value.variant : undefined };
}
