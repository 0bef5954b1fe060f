/**
 * The distribution grammar for repository names, tags and digests.
 * Pure functions, no I/O: every value from the network passes through here before use.
 */

// One path component: lowercase alphanumerics joined by '.', '_', '__' or runs of '-'.
const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const MAX_NAME_LENGTH = 255;

export type DigestAlgorithm = 'sha256' | 'sha512';

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
const HEX_RE = /^[a-f0-9]+$/;

export interface Digest {
  readonly algorithm: DigestAlgorithm;
  readonly hex: string;
  /** `algorithm:hex`, the canonical form. */
  readonly value: string;
}

export function isValidName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME_RE.test(name);
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

/** Parses `sha256:<64 hex>` or `sha512:<128 hex>`; anything else is undefined. */
export function parseDigest(text: string): Digest | undefined {
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  const algorithm = text.slice(0, colon);
  const hex = text.slice(colon + 1);
  if (!isDigestHex(algorithm, hex)) return undefined;
  return { algorithm, hex, value: text };
}

/** Whether `hex` is the hex part of a digest of `algorithm` (without building the digest). */
export function isDigestHex(algorithm: string, hex: string): algorithm is DigestAlgorithm {
  if (algorithm !== 'sha256' && algorithm !== 'sha512') return false;
  return hex.length === HEX_LENGTH[algorithm] && HEX_RE.test(hex);
}

/** True for strings shaped like a digest (`alg:...`), valid or not, so they are not mistaken for tags. */
export function looksLikeDigest(text: string): boolean {
  return text.includes(':');
}
