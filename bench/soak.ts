// Soak (issue 11): many clients for minutes over TLS against the real edge in front of
// the counting shim and a real docker-registry, on content that becomes wanted a slice at
// a time (so misses keep coming next to hits). Every answer is checked; every 30 s one
// line gives the edge's RSS and descriptors and the blob bytes it took from the upstream.
// Fails (exit 1) on any failed request, on upstream blob bytes off the unique content by
// more than 1%, or on a cache blob that does not hash to its name. Not in CI:
//
//   npm run soak                                  (bench/soak.sh: peers, build, this)
//   SOAK_SECONDS=60 SOAK_CLIENTS=100 node dist/bench/soak.js
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { cacheProblems, descriptors, type Descriptors } from '../test/helpers/cache-invariants.js';
import { startEdge } from '../test/helpers/edge.js';
import { waitFor } from '../test/helpers/proc.js';
import { startRegistry, toYaml } from '../test/helpers/registry.js';
import { startShim } from '../test/helpers/shim.js';
import { isMain, MiB, withWork } from './ab.js';
import { makeCerts } from './certs.js';
import { cpuSeconds, openFilesSoftLimit, rssBytes } from './procfs.js';
import { seedCatalogue, slices, type SoakBlob } from './soak-content.js';
import { percentile, type LoadReport } from './soak-load.js';
import { ClientThreads } from './soak-threads.js';

/** Report and growth period: one line, and one more slice of the content wanted, each. */
const PERIOD_S = 30;
/** upstream.connections' default: keep-alive connections to the shim the edge may keep after the load. */
const UPSTREAM_KEEPALIVE = 64;

export interface SoakOptions {
  readonly clients: number;
  /** Worker threads the client loops are spread over. */
  readonly clientThreads: number;
  readonly seconds: number;
  /** Samples before this are the warm-up, left out of the min/max. */
  readonly warmupSeconds: number;
  readonly repos: number;
  readonly blobs: number;
  readonly tagsPerRepo: number;
  readonly minBytes: number;
  readonly maxBytes: number;
  readonly drainSeconds: number;
  readonly requestTimeoutSeconds: number;
}

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${raw ?? ''}`);
  return n;
}

export function soakOptionsFromEnv(): SoakOptions {
  return {
    clients: envNumber('SOAK_CLIENTS', 500),
    clientThreads: envNumber('SOAK_CLIENT_THREADS', 1),
    seconds: envNumber('SOAK_SECONDS', 600),
    warmupSeconds: envNumber('SOAK_WARMUP_SECONDS', 60),
    repos: envNumber('SOAK_REPOS', 24),
    blobs: envNumber('SOAK_BLOBS', 288),
    tagsPerRepo: envNumber('SOAK_TAGS', 4),
    minBytes: envNumber('SOAK_MIN_KIB', 4) * 1024,
    maxBytes: envNumber('SOAK_MAX_MIB', 8) * MiB,
    drainSeconds: envNumber('SOAK_DRAIN_SECONDS', 30),
    requestTimeoutSeconds: envNumber('SOAK_REQUEST_TIMEOUT_SECONDS', 60),
  };
}

interface Sample {
  readonly seconds: number;
  readonly rss: number;
  readonly fds: Descriptors;
}

const mib = (bytes: number): string => (bytes / MiB).toFixed(1);
const sized = (bytes: number): string => (bytes < MiB ? `${(bytes / 1024).toFixed(0)} KiB` : `${mib(bytes)} MiB`);

const GONE: Descriptors = { total: 0, sockets: 0, files: 0, keptBlobs: 0 };

/** Descriptors of `pid`, none once it has exited (a sample must not end the soak before it reports). */
function descriptorsOf(pid: number): Descriptors {
  try {
    return descriptors(pid);
  } catch {
    return GONE;
  }
}

function describeFds(d: Descriptors): string {
  return `${d.total} descriptors (${d.sockets} sockets, ${d.files} files)`;
}

/** The edge's warn, error and fatal lines; the log (an access line per request) is read line by line. */
async function complaints(logFile: string): Promise<string[]> {
  const out: string[] = [];
  for await (const line of readline.createInterface({ input: fs.createReadStream(logFile), crlfDelay: Infinity })) {
    if (/"level":(40|50|60)[,}]/.test(line)) out.push(line);
  }
  return out;
}

/** Runs the soak; resolves to the exit code (0 pass, 1 fail, 130 interrupted). */
export function soak(o: SoakOptions, signal: AbortSignal, log: (line: string) => void): Promise<number> {
  return withWork('re-soak-', async (work, stops) => {
    const certs = await makeCerts(path.join(work, 'certs'));
    const registry = await startRegistry({ logLevel: 'error' });
    stops.push(() => registry.dispose());
    const shim = await startShim(registry.url);
    stops.push(() => shim.stop());

    const seedStart = Date.now();
    const items = await seedCatalogue(registry.url, work, o, signal);
    const blobs = items.filter((i): i is SoakBlob => i.kind === 'blob');
    const contentBytes = blobs.reduce((a, b) => a + b.size, 0);
    log(`seeded ${blobs.length} blobs (${mib(contentBytes)} MiB, ${sized(o.minBytes)} to ${sized(o.maxBytes)} each) and ${items.length - blobs.length} tags ` +
      `in ${o.repos} repositories in ${((Date.now() - seedStart) / 1000).toFixed(1)} s`);

    const edgeDir = path.join(work, 'edge');
    fs.mkdirSync(edgeDir);
    const edge = await startEdge({
      workDir: edgeDir,
      upstreams: [shim.url],
      // The default log level (info) on purpose: an access line per request, as in production.
      configYaml: toYaml({ http: { tls: { certificate: certs.cert, key: certs.key } } }),
    });
    stops.push(() => edge.stop());
    const pid = edge.proc.pid;
    const before = descriptors(pid);
    log(`edge ${edge.url} pid ${pid}: RSS ${mib(rssBytes(pid) ?? 0)} MiB, ${describeFds(before)}, descriptor soft limit ${openFilesSoftLimit(pid) ?? 'unlimited'}`);

    const wantedSlices = slices(items, Math.max(1, Math.ceil(o.seconds / PERIOD_S)));
    const startedAt = Date.now();
    const load = new ClientThreads({
      origin: edge.url,
      ca: fs.readFileSync(certs.caCert, 'utf8'),
      clients: o.clients,
      threads: o.clientThreads,
      deadline: startedAt + o.seconds * 1000,
      drainMs: o.drainSeconds * 1000,
      requestTimeoutMs: o.requestTimeoutSeconds * 1000,
      wanted: wantedSlices[0] ?? [],
      signal,
    });
    log(`${o.clients} clients (${o.clientThreads} thread(s)) for ${o.seconds} s; ${load.wantedCount} of ${items.length} items wanted, a slice more every ${PERIOD_S} s`);

    const samples: Sample[] = [];
    let last = { done: 0, at: startedAt, edgeCpu: cpuSeconds([pid]), ownCpu: cpuSeconds([process.pid]) };
    let tick = 0;
    const ticker = setInterval(() => {
      tick++;
      const counts = load.counts();
      const now = { done: counts.done, at: Date.now(), edgeCpu: cpuSeconds([pid]), ownCpu: cpuSeconds([process.pid]) };
      const wall = (now.at - last.at) / 1000;
      const share = (cpu: number): string => `${((cpu / wall) * 100).toFixed(0)}%`;
      let edgeNow = 'edge exited';
      if (edge.proc.running()) {
        const s: Sample = { seconds: (now.at - startedAt) / 1000, rss: rssBytes(pid) ?? 0, fds: descriptorsOf(pid) };
        samples.push(s);
        edgeNow = `edge RSS ${mib(s.rss)} MiB, ${describeFds(s.fds)}, CPU ${share(now.edgeCpu - last.edgeCpu)}`;
      }
      // The clients and the shim are this process: its CPU says whether they, not the edge, set the pace.
      log(`${String(tick * PERIOD_S).padStart(4)} s: ${now.done} requests (${((now.done - last.done) / wall).toFixed(0)}/s), ${counts.failed} failed; ` +
        `${edgeNow} (clients and shim ${share(now.ownCpu - last.ownCpu)}); ` +
        `upstream blob bytes ${mib(shim.stats.blobBodyBytes)} MiB; wanted ${load.wantedCount}/${items.length}`);
      last = now;
      load.want(wantedSlices[tick] ?? []);
    }, PERIOD_S * 1000);
    let report: LoadReport;
    try {
      report = await load.run();
    } finally {
      clearInterval(ticker);
    }
    if (signal.aborted) {
      log('interrupted: stopping everything');
      return 130;
    }
    const loadSeconds = (Date.now() - startedAt) / 1000;

    // Fills still running upstream would be counted short.
    const quiet = await waitFor(() => shim.stats.requests.every((r) => r.done || r.error !== undefined), { timeoutMs: 30_000, what: 'the upstream to be quiet' })
      .catch(() => false);
    const upstreamBytes = shim.stats.blobBodyBytes;
    const uniqueBytes = report.requestedBlobs.reduce((a, [, size]) => a + size, 0);
    const ratio = uniqueBytes === 0 ? 1 : upstreamBytes / uniqueBytes;
    const afterClose = await waitFor(() => {
      const d = descriptorsOf(pid);
      return d.sockets <= before.sockets + UPSTREAM_KEEPALIVE ? d : undefined;
    }, { timeoutMs: 15_000, what: 'the client sockets to close' }).catch(() => descriptorsOf(pid));
    const problems = await cacheProblems(edge.cacheDir);
    const edgeComplaints = await complaints(edge.proc.logFile);

    const settled = samples.filter((s) => s.seconds >= o.warmupSeconds);
    log(`requests: ${report.done} in ${loadSeconds.toFixed(0)} s (${(report.done / loadSeconds).toFixed(0)}/s), ${report.failed} failed`);
    for (const [kind, n] of report.failures) log(`  failed ${n}x ${kind}`);
    for (const e of report.examples) log(`  e.g. ${e}`);
    const lat = (xs: readonly number[]): string => `p50 ${percentile(xs, 0.5).toFixed(1)} ms, p99 ${percentile(xs, 0.99).toFixed(1)} ms (${xs.length})`;
    log(`latency (answered and checked): all ${lat(report.latencyMs.flatMap(([, xs]) => xs))}; ` +
      report.latencyMs.map(([kind, xs]) => `${kind} ${lat(xs)}`).join('; '));
    const range = (f: (s: Sample) => number, unit: (x: number) => string = String): string => {
      const xs = settled.map(f);
      return `${unit(Math.min(...xs))}-${unit(Math.max(...xs))}`;
    };
    log(settled.length === 0 ? `after warm-up (>= ${o.warmupSeconds} s): no samples`
      : `after warm-up (>= ${o.warmupSeconds} s, ${settled.length} samples): edge RSS ${range((s) => s.rss, mib)} MiB, ` +
        `descriptors ${range((s) => s.fds.total)} (sockets ${range((s) => s.fds.sockets)}, files ${range((s) => s.fds.files)})`);
    log(`edge descriptors: before the load ${describeFds(before)}; after the clients closed ${describeFds(afterClose)}`);
    log(`upstream: ${upstreamBytes} bytes of blob GET bodies for ${uniqueBytes} bytes of unique blob content requested ` +
      `(${report.requestedBlobs.length} blobs): ratio ${ratio.toFixed(4)}${quiet ? '' : ' (upstream still busy after 30 s)'}`);
    log(`cache: ${problems.wrongBlobs.length} blobs not hashing to their name, ${problems.tempFiles.length} temp files left`);
    log(`edge log: ${edgeComplaints.length} warn/error lines${edgeComplaints.slice(0, 8).map((l) => `\n  ${l.slice(0, 400)}`).join('')}`);

    const reasons = [
      ...(edge.proc.running() ? [] : [`the edge exited (code ${String(await edge.proc.exited)})`]),
      ...(report.failed > 0 ? [`${report.failed} failed requests`] : []),
      ...(Math.abs(ratio - 1) > 0.01 ? [`upstream blob bytes ${ratio.toFixed(4)}x the unique content`] : []),
      ...(problems.wrongBlobs.length + problems.tempFiles.length > 0 ? ['cache problems'] : []),
    ];
    log(reasons.length === 0 ? 'soak PASSED' : `soak FAILED: ${reasons.join(', ')}`);
    return reasons.length === 0 ? 0 : 1;
  });
}

if (isMain(import.meta.url)) {
  const interrupt = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      console.log(interrupt.signal.aborted ? `${sig}: already stopping` : `${sig}: stopping the clients, then every process`);
      interrupt.abort();
    });
  }
  soak(soakOptionsFromEnv(), interrupt.signal, (line) => console.log(line))
    .catch((err: unknown) => {
      if (interrupt.signal.aborted) return 130;
      console.error(err);
      return 1;
    })
    // Exiting runs test/helpers/proc.ts's exit hook, which kills any child a failed start left running.
    .then((code) => process.exit(code));
}
