// The soak's clients: N loops over one keep-alive HTTPS pool, each sending one request
// at a time picked from the content wanted so far, and checking every answer: a blob's
// sha256 and length, a Range's bytes, a HEAD's headers, a manifest's digest.
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { Pool } from 'undici';
import { MEDIA_TYPES } from '../test/helpers/image.js';
import { errorMessage } from '../test/helpers/proc.js';
import { BlobBytesCheck, pick, type SoakBlob, type SoakItem, type SoakTag } from './soak-content.js';

export type RequestKind = 'manifest' | 'blob' | 'range' | 'head';
export const REQUEST_KINDS: readonly RequestKind[] = ['manifest', 'blob', 'range', 'head'];

export interface LoadOptions {
  readonly origin: string;
  /** PEM of the CA the edge's certificate chains to. */
  readonly ca: string;
  readonly clients: number;
  /** The loops send no new request after this (Date.now()). */
  readonly deadline: number;
  /** How long requests in flight at the deadline may take to finish before they are cut. */
  readonly drainMs: number;
  /** Headers and body timeouts of one request. */
  readonly requestTimeoutMs: number;
  /** The interrupt: loops stop at once and requests in flight are cut, uncounted. */
  readonly signal: AbortSignal;
}

const ACCEPT_MANIFEST = `${MEDIA_TYPES.ociManifest}, ${MEDIA_TYPES.dockerManifest}`;
const MAX_RANGE = 1024 * 1024;
const EXAMPLES = 10;

type Headers = Record<string, string | string[] | undefined>;
function readBody(body: Readable, onChunk: (c: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    body.on('data', onChunk);
    body.once('end', resolve);
    body.once('error', reject);
  });
}

function sha256Of(): { update(c: Buffer): void; digest(): string } {
  const h = createHash('sha256');
  return { update: (c) => h.update(c), digest: () => `sha256:${h.digest('hex')}` };
}

/** What a run of the loops found, in a form that crosses threads (structured clone). */
export interface LoadReport {
  readonly done: number;
  readonly failed: number;
  /** Failures by kind ("blob: status 502"), with their counts. */
  readonly failures: ReadonlyArray<readonly [string, number]>;
  /** The first few failures, with what was asked for and when. */
  readonly examples: readonly string[];
  /** Milliseconds of every answered and checked request, by kind. */
  readonly latencyMs: ReadonlyArray<readonly [RequestKind, number[]]>;
  /** Digest and size of each blob asked for by GET (whole or a range) at least once: what the edge had to fetch. */
  readonly requestedBlobs: ReadonlyArray<readonly [string, number]>;
}

/** The reports of several threads as one. */
export function mergeReports(reports: readonly LoadReport[]): LoadReport {
  const failures = new Map<string, number>();
  const latency = new Map<RequestKind, number[]>(REQUEST_KINDS.map((k) => [k, []]));
  for (const r of reports) {
    for (const [k, n] of r.failures) failures.set(k, (failures.get(k) ?? 0) + n);
    // Not push(...xs): a run of 10 minutes has more samples than a call takes arguments.
    for (const [k, xs] of r.latencyMs) {
      const all = latency.get(k);
      if (all) for (const x of xs) all.push(x);
    }
  }
  return {
    done: reports.reduce((a, r) => a + r.done, 0),
    failed: reports.reduce((a, r) => a + r.failed, 0),
    failures: [...failures],
    examples: reports.flatMap((r) => r.examples).slice(0, EXAMPLES),
    latencyMs: [...latency],
    requestedBlobs: [...new Map(reports.flatMap((r) => r.requestedBlobs))],
  };
}

/** Value at quantile `q` (0..1) of `xs`, nearest rank; 0 for none. */
export function percentile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return 0;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? 0;
}

export class SoakLoad {
  private readonly o: LoadOptions;
  private readonly pool: Pool;
  private readonly wanted: SoakItem[] = [];
  /** Cuts requests still in flight once the drain time is over (or on the interrupt). */
  private readonly cut = new AbortController();
  private cutAtDrain = false;
  done = 0;
  failed = 0;
  private readonly failures = new Map<string, number>();
  private readonly examples: string[] = [];
  private readonly latencyMs = new Map<RequestKind, number[]>(REQUEST_KINDS.map((k) => [k, []]));
  private readonly requestedBlobs = new Map<string, number>();

  constructor(o: LoadOptions) {
    this.o = o;
    this.pool = new Pool(o.origin, {
      connections: o.clients,
      pipelining: 1,
      headersTimeout: o.requestTimeoutMs,
      bodyTimeout: o.requestTimeoutMs,
      connect: { ca: o.ca },
    });
    // One listener per request in flight on each signal.
    setMaxListeners(o.clients * 2, this.cut.signal, o.signal);
    o.signal.addEventListener('abort', () => this.cut.abort(), { once: true });
  }

  /** Makes more content wanted: from now on the loops also pick from `items`. */
  want(items: readonly SoakItem[]): void {
    this.wanted.push(...items);
  }

  /** Runs the loops to the deadline, lets requests in flight finish within the drain time, and closes the pool. */
  async run(): Promise<LoadReport> {
    const loops = Promise.all(Array.from({ length: this.o.clients }, () => this.loop()));
    const untilDeadline = Math.max(0, this.o.deadline - Date.now());
    const timer = setTimeout(() => {
      this.cutAtDrain = true;
      this.cut.abort();
    }, untilDeadline + this.o.drainMs);
    try {
      await loops;
    } finally {
      clearTimeout(timer);
      await this.pool.destroy();
    }
    return {
      done: this.done,
      failed: this.failed,
      failures: [...this.failures],
      examples: this.examples,
      latencyMs: [...this.latencyMs],
      requestedBlobs: [...this.requestedBlobs],
    };
  }

  private stopped(): boolean {
    return Date.now() >= this.o.deadline || this.o.signal.aborted;
  }

  private async loop(): Promise<void> {
    while (!this.stopped()) {
      const item = pick(this.wanted);
      const kind: RequestKind = item.kind === 'tag' ? 'manifest' : this.blobKind();
      const started = performance.now();
      let problem: string | undefined;
      try {
        problem = item.kind === 'tag' ? await this.manifest(item) : await this.blob(item, kind);
      } catch (err) {
        if (this.o.signal.aborted) return;
        const code = (err as { code?: unknown }).code;
        problem = this.cutAtDrain ? 'unfinished when the drain time ran out' : typeof code === 'string' ? `${code} (${errorMessage(err)})` : errorMessage(err);
      }
      this.done++;
      if (problem === undefined) this.latencyMs.get(kind)?.push(performance.now() - started);
      else this.fail(kind, problem, `${item.repo} ${item.kind === 'tag' ? item.tag : item.digest}`);
    }
  }

  /** Whole GETs most, then a Range or a HEAD. */
  private blobKind(): RequestKind {
    const r = Math.random();
    return r < 0.6 ? 'blob' : r < 0.8 ? 'range' : 'head';
  }

  private fail(kind: RequestKind, problem: string, what: string): void {
    this.failed++;
    const key = `${kind}: ${problem}`;
    this.failures.set(key, (this.failures.get(key) ?? 0) + 1);
    if (this.examples.length < EXAMPLES) this.examples.push(`${key} (${what}, at ${new Date().toISOString()})`);
  }

  private request(method: 'GET' | 'HEAD', path: string, headers: Record<string, string>): ReturnType<Pool['request']> {
    return this.pool.request({ method, path, headers, signal: this.cut.signal });
  }

  private async manifest(t: SoakTag): Promise<string | undefined> {
    const res = await this.request('GET', `/v2/${t.repo}/manifests/${t.tag}`, { accept: ACCEPT_MANIFEST });
    const hash = sha256Of();
    await readBody(res.body, (c) => hash.update(c));
    return res.statusCode !== 200 ? `status ${res.statusCode}`
      : res.headers['docker-content-digest'] !== t.digest ? 'wrong Docker-Content-Digest'
      : res.headers['content-type'] !== MEDIA_TYPES.ociManifest ? 'wrong Content-Type'
      : hash.digest() !== t.digest ? 'body does not hash to the digest'
      : undefined;
  }

  private async blob(b: SoakBlob, kind: RequestKind): Promise<string | undefined> {
    const path = `/v2/${b.repo}/blobs/${b.digest}`;
    if (kind === 'head') {
      const res = await this.request('HEAD', path, {});
      let bytes = 0;
      await readBody(res.body, (c) => (bytes += c.length));
      return res.statusCode !== 200 ? `status ${res.statusCode}` : this.headerProblem(res.headers, b, b.size) ?? (bytes > 0 ? 'a body' : undefined);
    }
    this.requestedBlobs.set(b.digest, b.size);
    if (kind === 'range') {
      const start = Math.floor(Math.random() * b.size);
      const end = start + Math.floor(Math.random() * Math.min(MAX_RANGE, b.size - start));
      const res = await this.request('GET', path, { range: `bytes=${start}-${end}` });
      const check = new BlobBytesCheck(b.key, start);
      await readBody(res.body, (c) => check.update(c));
      return res.statusCode !== 206 ? `status ${res.statusCode}`
        : res.headers['content-range'] !== `bytes ${start}-${end}/${b.size}` ? 'wrong Content-Range'
        : this.headerProblem(res.headers, b, end - start + 1)
          ?? (check.bytes !== end - start + 1 ? 'wrong length' : check.firstMismatch >= 0 ? 'wrong bytes' : undefined);
    }
    const res = await this.request('GET', path, {});
    const hash = sha256Of();
    let bytes = 0;
    await readBody(res.body, (c) => {
      bytes += c.length;
      hash.update(c);
    });
    return res.statusCode !== 200 ? `status ${res.statusCode}`
      : this.headerProblem(res.headers, b, b.size)
        ?? (bytes !== b.size ? 'wrong length' : hash.digest() !== b.digest ? 'body does not hash to the digest' : undefined);
  }

  private headerProblem(h: Headers, b: SoakBlob, length: number): string | undefined {
    return h['docker-content-digest'] !== b.digest ? 'wrong Docker-Content-Digest'
      : h['content-length'] !== String(length) ? 'wrong Content-Length'
      : undefined;
  }
}
