/** Manifest media types and Accept negotiation, as registries and clients use them. */
export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

/** What the edge asks the upstream for when it revalidates on its own behalf. */
export const ALL_MANIFEST_TYPES = Object.values(MEDIA_TYPES).join(', ');

/**
 * The media types a client accepts, from one or more Accept headers.
 * `undefined` means "anything": no Accept header, or a wildcard.
 */
export function parseAccept(header: string | string[] | undefined): Set<string> | undefined {
  if (header === undefined) return undefined;
  const values = Array.isArray(header) ? header : [header];
  const types = new Set<string>();
  for (const value of values) {
    for (const part of value.split(',')) {
      const type = part.split(';')[0]?.trim().toLowerCase();
      if (!type) continue;
      if (type === '*/*' || type === 'application/*') return undefined;
      types.add(type);
    }
  }
  return types.size === 0 ? undefined : types;
}

export function accepts(accepted: Set<string> | undefined, mediaType: string): boolean {
  return accepted === undefined || accepted.has(mediaType.toLowerCase());
}

/** The media type a manifest declares in its own body, when the upstream gave no Content-Type. */
export function sniffMediaType(bytes: Buffer): string | undefined {
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown; layers?: unknown };
    if (typeof doc.mediaType === 'string') return doc.mediaType;
    if (Array.isArray(doc.manifests)) return MEDIA_TYPES.ociIndex;
    if (Array.isArray(doc.layers)) return MEDIA_TYPES.ociManifest;
  } catch {
    // Not JSON: the caller falls back to the upstream's Content-Type.
  }
  return undefined;
}
