/**
 * Images as `registry-edge prefetch` names them: `[host/]name[:tag|@digest]`, where
 * `host` is one of the configured origins (as an image reference names its registry);
 * without one, the default origin. With origins, a first component that looks like a
 * host (a dot or a port) and is none of them is refused rather than taken as part of a
 * name: the user meant a registry the edge does not front. No tag: `latest`.
 */
import { isValidName, isValidTag, parseDigest } from '../oci/grammar.js';
import type { Reference } from '../oci/request.js';

export interface ImageRef {
  /** The origin's host, '' for the default origin. */
  readonly host: string;
  readonly name: string;
  readonly reference: Reference;
}

/** The image, or a string saying what is wrong with it. `hosts`: the configured origins' hosts. */
export function parseImageRef(text: string, hosts: ReadonlySet<string>): ImageRef | string {
  let rest = text;
  let host = '';
  const slash = rest.indexOf('/');
  const first = slash > 0 ? rest.slice(0, slash) : '';
  if (hosts.has(first)) {
    host = first;
    rest = rest.slice(slash + 1);
  } else if (hosts.size > 0 && /[.:]/.test(first)) {
    // As clients read a reference: a first component with a dot or a port names a registry.
    return `${text}: ${first} is not one of the origins (${[...hosts].join(', ')})`;
  }
  let reference: Reference = { kind: 'tag', tag: 'latest' };
  const at = rest.indexOf('@');
  if (at >= 0) {
    const digest = parseDigest(rest.slice(at + 1));
    if (!digest) return `${text}: ${rest.slice(at + 1)} is not a digest (sha256:<64 hex>)`;
    reference = { kind: 'digest', digest };
    rest = rest.slice(0, at);
  } else {
    // A colon after the last slash starts the tag; one before it is a host's port.
    const colon = rest.lastIndexOf(':');
    if (colon > rest.lastIndexOf('/')) {
      const tag = rest.slice(colon + 1);
      if (!isValidTag(tag)) return `${text}: ${tag} is not a tag`;
      reference = { kind: 'tag', tag };
      rest = rest.slice(0, colon);
    }
  }
  if (!isValidName(rest)) return `${text}: ${rest} is not a repository name`;
  return { host, name: rest, reference };
}
