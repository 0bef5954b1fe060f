/**
 * An upstream answer the edge passes back to its client as it is (a 401 with its
 * challenge, a 403, a 404 with the registry's error JSON, a 429 with Retry-After).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { UpstreamResponse } from './client.js';

const MAX_ERROR_BODY = 64 * 1024;
const KEPT_HEADERS = ['content-type', 'www-authenticate', 'retry-after', 'docker-distribution-api-version'] as const;

export class UpstreamAnswer extends Error {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;

  constructor(status: number, headers: Record<string, string>, body: Buffer) {
    super(`upstream answered ${status}`);
    this.name = 'UpstreamAnswer';
    this.status = status;
    this.headers = headers;
    this.body = body;
  }

  /** Reads at most 64 KiB of the upstream's body (error bodies are small JSON). */
  static async from(res: UpstreamResponse): Promise<UpstreamAnswer> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      if (size >= MAX_ERROR_BODY) continue;
      chunks.push(chunk.subarray(0, MAX_ERROR_BODY - size));
      size += Math.min(chunk.length, MAX_ERROR_BODY - size);
    }
    return new UpstreamAnswer(res.status, pickHeaders(res.headers), Buffer.concat(chunks));
  }
}

/**
 * The refusal of a HEAD the edge made for a GET: HEAD answers have no body, so the
 * client gets the OCI error JSON the same status would carry on a GET.
 */
export async function refusalOfHead(res: UpstreamResponse, unknown: 'BLOB_UNKNOWN' | 'MANIFEST_UNKNOWN'): Promise<UpstreamAnswer> {
  const answer = await UpstreamAnswer.from(res);
  if (answer.body.length > 0) return answer;
  const code = res.status === 401 ? 'UNAUTHORIZED' : res.status === 403 ? 'DENIED' : res.status === 404 ? unknown : 'UNAVAILABLE';
  const message = code === 'UNAVAILABLE' ? `upstream answered ${res.status}` : code.toLowerCase().replace('_', ' ');
  const body = Buffer.from(JSON.stringify({ errors: [{ code, message }] }));
  return new UpstreamAnswer(res.status, { ...answer.headers, 'content-type': 'application/json; charset=utf-8' }, body);
}

function pickHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of KEPT_HEADERS) {
    const value = headers[name];
    if (typeof value === 'string') out[name] = value;
    else if (Array.isArray(value) && value[0] !== undefined) out[name] = value[0];
  }
  return out;
}
