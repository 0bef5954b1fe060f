/**
 * Conditional request headers against the entity tag the edge sends (RFC 9110 §13.1):
 * If-None-Match (weak comparison, `*`, lists) and If-Range (strong comparison).
 * The edge sends no Last-Modified, so a date validator never matches.
 */

interface EntityTag {
  readonly weak: boolean;
  readonly opaque: string;
}

// entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text (§8.8.3).
const TAG = '(W/)?"([\\x21\\x23-\\x7e\\x80-\\xff]*)"';
const ONE_TAG = new RegExp(`^[ \\t]*${TAG}[ \\t]*$`);
// #entity-tag: elements separated by commas, empty elements allowed (§5.6.1).
const TAG_LIST = new RegExp(`^[ \\t,]*${TAG}(?:[ \\t]*,[ \\t,]*${TAG})*[ \\t,]*$`);

function parseTag(text: string): EntityTag | undefined {
  const m = ONE_TAG.exec(text);
  return m ? { weak: m[1] !== undefined, opaque: m[2] ?? '' } : undefined;
}

/**
 * Whether an If-None-Match field matches `etag` (the field's condition is false, so a
 * GET or HEAD is answered 304). `*` matches any current representation. A field that is
 * not a list of entity tags matches nothing (it is ignored, as an invalid field may be).
 */
export function ifNoneMatchHits(field: string | undefined, etag: string): boolean {
  if (field === undefined) return false;
  if (field.trim() === '*') return true;
  const ours = parseTag(etag);
  if (!ours || !TAG_LIST.test(field)) return false;
  // Weak comparison: the opaque tags alone. No '"' is inside a tag, so the tags are where the quotes pair up.
  for (const m of field.matchAll(new RegExp(TAG, 'g'))) if (m[2] === ours.opaque) return true;
  return false;
}

/**
 * Whether a Range may be honoured under an If-Range field: when it is absent, or when it
 * is a strong entity tag equal to `etag`. A weak tag, a date or anything else does not
 * match, and the whole representation is sent.
 */
export function ifRangeHolds(field: string | undefined, etag: string): boolean {
  if (field === undefined) return true;
  const theirs = parseTag(field);
  const ours = parseTag(etag);
  return theirs !== undefined && ours !== undefined && !theirs.weak && !ours.weak && theirs.opaque === ours.opaque;
}
