/**
 * registry:2 notification envelopes (distribution's notifications/event.go):
 * `{"events": [{id, timestamp, action, target: {mediaType, digest, size, repository,
 * url, tag}, request: {id, addr, host, method, useragent}, actor, source}]}`, sent as
 * `application/vnd.docker.distribution.events.v1+json` (registry 2.x) or `.v2+json`
 * (distribution 3). Each event is judged on its own: one malformed event does not
 * refuse the others (the registry would send the whole envelope again, and again).
 */
import { isValidName, isValidTag, parseDigest, type Digest } from '../oci/grammar.js';
import { MEDIA_TYPES } from '../oci/media-types.js';

export const ENVELOPE_MEDIA_TYPES: readonly string[] = ['application/vnd.docker.distribution.events.v1+json', 'application/vnd.docker.distribution.events.v2+json'];

/** Whether a Content-Type header names an envelope (plain application/json too, for hand-made replays). */
export function isEnvelopeType(contentType: string | undefined): boolean {
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  return type === 'application/json' || ENVELOPE_MEDIA_TYPES.includes(type);
}

/** A manifest pushed under a tag: what a prefetch starts from. */
export interface TaggedPush {
  readonly kind: 'push';
  readonly id: string;
  readonly repository: string;
  readonly tag: string;
  readonly digest: Digest;
  /** Hosts the event names (request.host, then target.url's), lower case, to choose the origin by. */
  readonly hosts: readonly string[];
}

export type JudgedEvent =
  | TaggedPush
  /** A pull, a delete, a mount, a blob or a push by digest only: nothing to prefetch. */
  | { readonly kind: 'ignored'; readonly id: string }
  | { readonly kind: 'invalid'; readonly reason: string };

const MANIFEST_TYPES: ReadonlySet<string> = new Set(Object.values(MEDIA_TYPES));

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** The events of an envelope, each judged; a body that is no envelope at all is a string saying why. */
export function parseEnvelope(body: Buffer): JudgedEvent[] | string {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return 'the body is not JSON';
  }
  if (!isObject(doc)) return 'the body is not an envelope ({"events": [...]})';
  // distribution omits an empty list (omitempty).
  if (doc.events === undefined) return [];
  if (!Array.isArray(doc.events)) return 'events is not a list';
  return doc.events.map(judge);
}

function judge(event: unknown): JudgedEvent {
  if (!isObject(event)) return { kind: 'invalid', reason: 'an event is not an object' };
  const id = text(event.id);
  if (id === undefined || id.length > 256) return { kind: 'invalid', reason: 'an event has no id (or one longer than 256 characters)' };
  const target = isObject(event.target) ? event.target : {};
  const mediaType = text(target.mediaType)?.toLowerCase();
  const tag = text(target.tag);
  if (event.action !== 'push' || mediaType === undefined || !MANIFEST_TYPES.has(mediaType) || tag === undefined) return { kind: 'ignored', id };
  const repository = text(target.repository);
  if (repository === undefined || !isValidName(repository)) return { kind: 'invalid', reason: `event ${id}: target.repository is not a repository name` };
  if (!isValidTag(tag)) return { kind: 'invalid', reason: `event ${id}: target.tag is not a tag` };
  const digest = parseDigest(text(target.digest) ?? '');
  if (!digest) return { kind: 'invalid', reason: `event ${id}: target.digest is not a digest` };
  const request = isObject(event.request) ? event.request : {};
  const hosts = [text(request.host), urlHost(text(target.url))].filter((h): h is string => h !== undefined).map((h) => h.toLowerCase());
  return { kind: 'push', id, repository, tag, digest, hosts };
}

function urlHost(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  try {
    return new URL(url).host || undefined;
  } catch {
    return undefined;
  }
}
