// The soak's client loops run in worker threads, so their TLS and hashing never delay the
// counting shim, which runs on the main thread and answers the edge's fills and health
// checks (a health check late by seconds would mark the upstream down and fail requests
// the edge is not to blame for). This module is both the launcher and the threads' entry.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { SoakItem } from './soak-content.js';
import { mergeReports, SoakLoad, type LoadOptions, type LoadReport } from './soak-load.js';

type ThreadOptions = Omit<LoadOptions, 'signal'>;

interface ThreadData {
  readonly soakClients: ThreadOptions;
  readonly wanted: readonly SoakItem[];
}

type ToThread = { readonly type: 'want'; readonly items: readonly SoakItem[] } | { readonly type: 'stop' };
type FromThread =
  | { readonly type: 'progress'; readonly done: number; readonly failed: number }
  | { readonly type: 'report'; readonly report: LoadReport };

const PROGRESS_MS = 500;

export interface ClientThreadsOptions extends ThreadOptions {
  readonly threads: number;
  /** Content wanted from the start. */
  readonly wanted: readonly SoakItem[];
  /** The interrupt: every thread stops at once. */
  readonly signal: AbortSignal;
}

/** `o.clients` loops spread over `o.threads` worker threads. */
export class ClientThreads {
  private readonly workers: Worker[];
  private readonly progress: Array<{ done: number; failed: number }>;
  private readonly reports: Array<Promise<LoadReport>>;
  private wanted: number;

  constructor(o: ClientThreadsOptions) {
    const threads = Math.max(1, Math.min(o.threads, o.clients));
    this.wanted = o.wanted.length;
    this.progress = Array.from({ length: threads }, () => ({ done: 0, failed: 0 }));
    this.workers = Array.from({ length: threads }, (_v, i) => {
      const clients = Math.floor(o.clients / threads) + (i < o.clients % threads ? 1 : 0);
      const { threads: _t, wanted, signal: _s, ...rest } = o;
      const data: ThreadData = { soakClients: { ...rest, clients }, wanted };
      return new Worker(new URL(import.meta.url), { workerData: data });
    });
    this.reports = this.workers.map(
      (w, i) =>
        new Promise<LoadReport>((resolve, reject) => {
          w.on('message', (m: FromThread) => {
            if (m.type === 'progress') this.progress[i] = { done: m.done, failed: m.failed };
            else resolve(m.report);
          });
          w.once('error', reject);
          w.once('exit', (code) => reject(new Error(`client thread ${i} exited (code ${code}) without a report`)));
        }),
    );
    o.signal.addEventListener('abort', () => this.post({ type: 'stop' }), { once: true });
  }

  private post(m: ToThread): void {
    for (const w of this.workers) w.postMessage(m);
  }

  /** Makes more content wanted: from now on the loops also pick from `items`. */
  want(items: readonly SoakItem[]): void {
    if (items.length === 0) return;
    this.wanted += items.length;
    this.post({ type: 'want', items });
  }

  get wantedCount(): number {
    return this.wanted;
  }

  /** Requests done and failed so far (each thread's count is at most half a second old). */
  counts(): { done: number; failed: number } {
    return this.progress.reduce((a, p) => ({ done: a.done + p.done, failed: a.failed + p.failed }), { done: 0, failed: 0 });
  }

  /** Resolves with every thread's report merged once all have run out their time; the threads are gone then. */
  async run(): Promise<LoadReport> {
    try {
      return mergeReports(await Promise.all(this.reports));
    } finally {
      await Promise.all(this.workers.map((w) => w.terminate()));
    }
  }
}

function isThreadData(x: unknown): x is ThreadData {
  return typeof x === 'object' && x !== null && 'soakClients' in x;
}

if (!isMainThread && parentPort && isThreadData(workerData)) {
  const port = parentPort;
  const stop = new AbortController();
  const load = new SoakLoad({ ...workerData.soakClients, signal: stop.signal });
  load.want(workerData.wanted);
  port.on('message', (m: ToThread) => {
    if (m.type === 'want') load.want(m.items);
    else stop.abort();
  });
  const ticker = setInterval(() => port.postMessage({ type: 'progress', done: load.done, failed: load.failed } satisfies FromThread), PROGRESS_MS);
  void load.run().then((report) => {
    clearInterval(ticker);
    port.postMessage({ type: 'report', report } satisfies FromThread);
  });
}
