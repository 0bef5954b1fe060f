/**
 * Images as `registry-edge prefetch` names them: `[host/]name[:tag|@digest]`, where
 * `host` is one of the configured origins (as an image reference names its registry);
 * without one, the default origin. No tag: `latest`, as every client assumes.
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
  if (slash > 0 && hosts.has(rest.slice(0, slash))) {
    host = rest.slice(0, slash);
    rest = rest.slice(slash + 1);
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
  if (!isValidName(rest)) {
    const first = rest.split('/')[0] ?? '';
    const hint = /[.:]/.test(first) && hosts.size > 0 ? ` (${first} is not one of the origins: ${[...hosts].join(', ')})` : '';
    return `${text}: ${rest} is not a repository name${hint}`;
  }
  return { host, name: rest, reference };
}
