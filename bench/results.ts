// The shape of a run's results (bench/results/*.json), the table printed from them,
// and the registry-edge targets of issue 5 checked against the peers of the same run.

import type { ColdPullAbKind } from './cold-pull-ab.js';
import type { WarmAbResult } from './warm-ab.js';

export const EDGE_NAMES = ['direct', 'nginx-proxy', 'nginx-cache', 'registry-proxy', 'registry-edge'] as const;
export type EdgeName = (typeof EDGE_NAMES)[number];

export const IMAGE_NAMES = ['big', 'many', 'small'] as const;
export type ImageName = (typeof IMAGE_NAMES)[number];

export interface Failed {
  error: string;
}
export type Outcome<T> = T | Failed;

export function failed<T extends object>(o: Outcome<T> | undefined): o is Failed | undefined {
  return o === undefined || 'error' in o;
}

export interface PullMeasure {
  seconds: number;
  bytesFromCentre: number;
  /** bytesFromCentre / the image's bytes (manifest + config + layers). */
  ratio: number;
  /** Share of all cores busy during the pull (every process on the machine): near 1, the pull was bound by CPU. */
  machineBusy?: number;
}

export interface GetMeasure {
  streams: number;
  seconds: number;
  /** Of the median run. */
  mibPerSecond: number;
  client: string;
  /** MiB/s of every run. */
  runs: number[];
}

export interface HerdMeasure {
  clients: number;
  seconds: number;
  bytesFromCentre: number;
  /** bytesFromCentre / the blob size. */
  ratio: number;
  /** Clients that got status 200, the whole body and the right digest. */
  correct: number;
  /** Seconds from the start to the first body byte, slowest client. */
  slowestFirstByteSeconds: number;
  /** CPU seconds the client processes used (TLS, sha256 of every body, process start-up). */
  clientCpuSeconds: number;
  /** CPU seconds the serving processes used during the herd; undefined for direct. */
  servingCpuSeconds?: number;
}

export interface ManifestMeasure {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  requests: number;
  errors: number;
}

/** The interleaved A/B measurements run after the sequential contenders (bench/warm-ab.ts, bench/cold-pull-ab.ts). */
export interface Interleaved {
  warmRounds: number;
  coldRounds: number;
  warm?: Outcome<WarmAbResult>;
  cold?: Outcome<{ kinds: ColdPullAbKind[] }>;
}

export interface EdgeResult {
  name: EdgeName;
  /** What serves the clients, e.g. "nginx 1.22.1 (proxy_cache)". */
  label: string;
  transport: 'http' | 'https';
  transportNote?: string;
  coldPull: Partial<Record<ImageName, Outcome<PullMeasure>>>;
  warmPull: Partial<Record<ImageName, Outcome<PullMeasure>>>;
  blobOne?: Outcome<GetMeasure>;
  blobMany?: Outcome<GetMeasure>;
  herd?: Outcome<HerdMeasure>;
  manifest?: Outcome<ManifestMeasure>;
  /** Sum of VmHWM over the serving processes (nginx: master + workers); undefined for direct. */
  peakRssBytes?: number;
  processes: number;
  seconds: number;
  error?: string;
}

export interface Machine {
  nproc: number;
  cpu: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  peers: Record<string, string>;
  /** os.loadavg() when the run started and ended: anything else running skews the numbers. */
  loadAtStart: number[];
  loadAtEnd?: number[];
}

export interface TargetCheck {
  target: string;
  measured: string;
  met: boolean | null;
}

export interface RunResults {
  date: string;
  quick: boolean;
  machine: Machine;
  settings: Record<string, string | number | boolean>;
  images: Record<ImageName, { layers: number[]; bytes: number }>;
  herdBlobBytes: number;
  warmBlobBytes: number;
  edges: EdgeResult[];
  interleaved?: Interleaved;
  targets: TargetCheck[];
  seconds: number;
}

const MiB = 1024 * 1024;

function cell<T extends object>(o: Outcome<T> | undefined, f: (v: T) => string): string {
  if (o === undefined) return '–';
  if ('error' in o) return 'ERROR';
  return f(o);
}

const s = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const ratio = (x: number): string => `${x.toFixed(2)}x`;

export function pullCell(o: Outcome<PullMeasure> | undefined): string {
  return cell(o, (v) => `${s(v.seconds)} s, ${ratio(v.ratio)}`);
}

const streamsLabel = (n: number): string => (n === 1 ? 'one stream' : `${n} streams`);

/** Markdown lines for the interleaved measurements (none when they did not run). */
export function interleavedLines(r: RunResults): string[] {
  const i = r.interleaved;
  if (i === undefined) return [];
  const out = ['Interleaved, after the table (contenders side by side, rounds alternating between them, so noise hits both alike):', ''];
  if (i.warm !== undefined) {
    if (failed(i.warm)) out.push(`- warm blob and pulls: ERROR ${i.warm.error}`);
    else {
      for (const k of i.warm.cases) {
        const [e, n, f] = [k.registryEdge, k.nginxCache, k.nodeFloor];
        out.push(
          `- warm ${Math.round(r.warmBlobBytes / MiB)} MiB blob over TLS, ${streamsLabel(k.streams)}, median of ${i.warmRounds}: registry-edge ${e.mibPerSecond.toFixed(0)} MiB/s ` +
            `(CPU s per GiB: ${e.cpuPerGiB.toFixed(2)} server, ${e.clientCpuPerGiB.toFixed(2)} curl), nginx-cache ${n.mibPerSecond.toFixed(0)} MiB/s ` +
            `(${n.cpuPerGiB.toFixed(2)}, ${n.clientCpuPerGiB.toFixed(2)}): ${ratio(e.mibPerSecond / n.mibPerSecond)}` +
            (f ? `; node-floor ${f.mibPerSecond.toFixed(0)} MiB/s (${f.cpuPerGiB.toFixed(2)}, ${f.clientCpuPerGiB.toFixed(2)}): ${ratio(f.mibPerSecond / n.mibPerSecond)}` : ''),
        );
      }
      for (const p of i.warm.pulls) {
        out.push(
          `- warm pull ${p.name} (skopeo), median of ${i.warmRounds}: registry-edge ${s(p.registryEdge.seconds)} s, nginx-cache ${s(p.nginxCache.seconds)} s: ` +
            `${ratio(p.registryEdge.seconds / p.nginxCache.seconds)} the time` +
            (p.nodeFloor ? `; node-floor ${s(p.nodeFloor.seconds)} s: ${ratio(p.nodeFloor.seconds / p.nginxCache.seconds)}` : ''),
        );
      }
    }
  }
  if (i.cold !== undefined) {
    if (failed(i.cold)) out.push(`- cold pull big: ERROR ${i.cold.error}`);
    else {
      const direct = i.cold.kinds.find((k) => k.kind === 'direct')?.seconds ?? 0;
      const parts = i.cold.kinds.map(
        (k) =>
          `${k.kind} ${s(k.seconds)} s${k.kind !== 'direct' && direct > 0 ? ` (${ratio(k.seconds / direct)})` : ''}, ` +
          `${k.kind === 'direct' ? '' : `${s(k.cpuSeconds)} CPU s, `}machine ${(k.machineBusy * 100).toFixed(0)}% busy`,
      );
      out.push(`- cold pull of the big image through the link, a warm-up pull first, median of ${i.coldRounds}: ${parts.join('; ')}`);
    }
  }
  out.push('');
  return out;
}

/** Rows of metrics, one column per edge. */
export function tableRows(r: RunResults): string[][] {
  const e = r.edges;
  const rows: string[][] = [['', ...e.map((x) => x.name)]];
  rows.push(['serving', ...e.map((x) => x.label)]);
  rows.push(['transport', ...e.map((x) => x.transport + (x.transportNote ? ` (${x.transportNote})` : ''))]);
  for (const img of IMAGE_NAMES) {
    rows.push([`cold pull ${img} (s, x image from centre)`, ...e.map((x) => pullCell(x.coldPull[img]))]);
  }
  rows.push(['cold pull big: machine CPU busy', ...e.map((x) => cell(x.coldPull.big, (v) => (v.machineBusy === undefined ? '–' : `${(v.machineBusy * 100).toFixed(0)}%`)))]);
  for (const img of IMAGE_NAMES) {
    rows.push([`warm pull ${img} (s, x image from centre)`, ...e.map((x) => pullCell(x.warmPull[img]))]);
  }
  const blobMiB = Math.round(r.warmBlobBytes / MiB);
  const one = e.find((x) => !failed(x.blobOne))?.blobOne;
  const many = e.find((x) => !failed(x.blobMany))?.blobMany;
  const oneStreams = failed(one) ? 1 : one.streams;
  const manyStreams = failed(many) ? 8 : many.streams;
  rows.push([`warm ${blobMiB} MiB blob, ${oneStreams} stream (MiB/s)`, ...e.map((x) => cell(x.blobOne, (v) => v.mibPerSecond.toFixed(0)))]);
  rows.push([`warm ${blobMiB} MiB blob, ${manyStreams} streams (MiB/s)`, ...e.map((x) => cell(x.blobMany, (v) => v.mibPerSecond.toFixed(0)))]);
  const herd = e.find((x) => !failed(x.herd))?.herd;
  const clients = failed(herd) ? 16 : herd.clients;
  const herdMiB = Math.round(r.herdBlobBytes / MiB);
  rows.push([`${clients} clients, cold ${herdMiB} MiB blob: wall (s)`, ...e.map((x) => cell(x.herd, (v) => s(v.seconds)))]);
  rows.push([`${clients} clients: from centre (x blob)`, ...e.map((x) => cell(x.herd, (v) => ratio(v.ratio)))]);
  rows.push([`${clients} clients: slowest first byte (s)`, ...e.map((x) => cell(x.herd, (v) => s(v.slowestFirstByteSeconds)))]);
  rows.push([`${clients} clients: correct digests`, ...e.map((x) => cell(x.herd, (v) => `${v.correct}/${v.clients}`))]);
  rows.push([`${clients} clients: CPU s of clients / of server`, ...e.map((x) => cell(x.herd, (v) => `${s(v.clientCpuSeconds)} / ${v.servingCpuSeconds === undefined ? '–' : s(v.servingCpuSeconds)}`))]);
  rows.push(['manifest by tag (req/s)', ...e.map((x) => cell(x.manifest, (v) => v.requestsPerSecond.toFixed(0) + (v.errors > 0 ? ` (${v.errors} errors)` : '')))]);
  rows.push(['manifest by tag p99 (ms)', ...e.map((x) => cell(x.manifest, (v) => v.p99Ms.toFixed(1)))]);
  rows.push(['peak RSS (MiB)', ...e.map((x) => (x.peakRssBytes === undefined ? '–' : `${(x.peakRssBytes / MiB).toFixed(0)}${x.processes > 1 ? ` (${x.processes} procs)` : ''}`))]);
  rows.push(['time for this contender (s)', ...e.map((x) => x.seconds.toFixed(0))]);
  return rows;
}

export function markdownTable(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 3, c.length)));
  const line = (row: string[]): string => `| ${row.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  const [head, ...body] = rows;
  if (head === undefined) return '';
  return [line(head), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...body.map(line)].join('\n');
}

export function targetsTable(checks: TargetCheck[]): string {
  const rows = [['target (registry-edge, same run)', 'measured', 'met'], ...checks.map((c) => [c.target, c.measured, c.met === null ? 'n/a' : c.met ? 'yes' : '**no**'])];
  return markdownTable(rows);
}

function edge(r: RunResults, name: EdgeName): EdgeResult | undefined {
  return r.edges.find((x) => x.name === name);
}

/** The targets of issue 5, as ratios against the peers measured in the same run. */
/** How the targets table names node-floor (bench/node-proxy.ts --blobs) beside a warm ratio. */
const FLOOR = 'node-floor (bare Node.js https, the same file pump)';

export function checkTargets(r: RunResults): TargetCheck[] {
  const me = edge(r, 'registry-edge');
  const cache = edge(r, 'nginx-cache');
  const direct = edge(r, 'direct');
  const out: TargetCheck[] = [];
  const add = (target: string, measured: string, met: boolean | null): void => {
    out.push({ target, measured, met });
  };
  if (me === undefined) return out;
  const tlsNote = me.transport === 'https' ? '' : ' [edge over plain HTTP, nginx over TLS]';

  for (const [key, label] of [['blobOne', 'one stream'], ['blobMany', 'many streams']] as const) {
    const a = me[key];
    const b = cache?.[key];
    if (failed(a) || failed(b)) add(`warm blob ${label} >= nginx-cache`, 'not measured', null);
    else add(`warm blob ${label} (${a.streams}) >= nginx-cache${tlsNote}`, `${a.mibPerSecond.toFixed(0)} vs ${b.mibPerSecond.toFixed(0)} MiB/s`, a.mibPerSecond >= b.mibPerSecond);
  }
  const warm = r.interleaved?.warm;
  if (!failed(warm)) {
    for (const k of warm.cases) {
      const [e, n] = [k.registryEdge.mibPerSecond, k.nginxCache.mibPerSecond];
      const floor = k.nodeFloor ? `; ${FLOOR} ${ratio(k.nodeFloor.mibPerSecond / n)}` : '';
      add(`warm blob ${streamsLabel(k.streams)} >= nginx-cache, interleaved (median of ${r.interleaved?.warmRounds})`, `${e.toFixed(0)} vs ${n.toFixed(0)} MiB/s (${ratio(e / n)})${floor}`, e >= n);
    }
  }

  const h = me.herd;
  const hc = cache?.herd;
  if (failed(h)) add('herd: <= 1.05x blob from centre, all correct, <= 0.5x nginx-cache wall', 'not measured', null);
  else {
    add('herd: from centre <= 1.05x the blob', ratio(h.ratio), h.ratio <= 1.05);
    add('herd: all clients correct', `${h.correct}/${h.clients}`, h.correct === h.clients);
    if (failed(hc)) add('herd: wall <= 0.5x nginx-cache', 'nginx-cache not measured', null);
    else {
      // The clients share the machine's cores with the server: their CPU time plus the least any
      // server here spent serving the same bytes (nginx-cache's), spread over every core, is a
      // wall time no server as frugal as nginx can beat on this machine.
      const cheapest = Math.min(hc.servingCpuSeconds ?? Infinity, h.servingCpuSeconds ?? Infinity);
      const floorNote = Number.isFinite(cheapest)
        ? `; the clients used ${s(h.clientCpuSeconds)} CPU s, with the least server CPU of the run (${s(cheapest)} s) ` +
          `${s((h.clientCpuSeconds + cheapest) / r.machine.nproc)} s on ${r.machine.nproc} cores`
        : `; the clients alone used ${s(h.clientCpuSeconds)} CPU s, ${s(h.clientCpuSeconds / r.machine.nproc)} s on ${r.machine.nproc} cores`;
      add('herd: wall <= 0.5x nginx-cache', `${s(h.seconds)} s vs ${s(hc.seconds)} s (${(h.seconds / hc.seconds).toFixed(2)}x)${floorNote}`, h.seconds <= 0.5 * hc.seconds);
    }
  }

  const cb = me.coldPull.big;
  const db = direct?.coldPull.big;
  if (failed(cb) || failed(db)) add('cold pull big <= 1.10x direct', 'not measured', null);
  else {
    // direct is plain HTTP: nginx-proxy (TLS, one proxy hop, no cache) shows what TLS alone costs.
    const pb = edge(r, 'nginx-proxy')?.coldPull.big;
    const proxyNote = failed(pb) ? '' : `; nginx-proxy (TLS, no cache) ${s(pb.seconds)} s (${(pb.seconds / db.seconds).toFixed(2)}x)`;
    add('cold pull big <= 1.10x direct', `${s(cb.seconds)} s vs ${s(db.seconds)} s (${(cb.seconds / db.seconds).toFixed(2)}x), ${ratio(cb.ratio)} from centre${proxyNote}`, cb.seconds <= 1.1 * db.seconds);
  }
  const cold = r.interleaved?.cold;
  if (!failed(cold)) {
    const of = (kind: ColdPullAbKind['kind']): number | undefined => cold.kinds.find((k) => k.kind === kind)?.seconds;
    const [d, e, h, p, n] = [of('direct'), of('registry-edge'), of('registry-edge-http'), of('nginx-proxy'), of('node-proxy')];
    if (d !== undefined && e !== undefined) {
      const x = (v: number | undefined, what: string): string => (v === undefined ? '' : `; ${what} ${ratio(v / d)}`);
      const parts = `${x(h, 'the edge over HTTP')}${x(p, 'nginx-proxy')}${x(n, 'node-proxy (bare Node.js TLS + undici)')}`;
      add(`cold pull big <= 1.10x direct, interleaved (median of ${r.interleaved?.coldRounds})`, `${s(e)} s vs ${s(d)} s (${ratio(e / d)})${parts}`, e <= 1.1 * d);
    }
  }
  for (const img of IMAGE_NAMES) {
    const w = me.warmPull[img];
    const wc = cache?.warmPull[img];
    if (failed(w)) {
      add(`warm pull ${img}: <= 1% from centre, <= nginx-cache time`, 'not measured', null);
      continue;
    }
    add(`warm pull ${img}: <= 1% of the image from centre`, `${(w.ratio * 100).toFixed(2)}%`, w.ratio <= 0.01);
    if (failed(wc)) add(`warm pull ${img}: <= nginx-cache time`, 'nginx-cache not measured', null);
    else add(`warm pull ${img}: <= nginx-cache time`, `${s(w.seconds)} s vs ${s(wc.seconds)} s`, w.seconds <= wc.seconds);
    const wi = failed(warm) ? undefined : warm.pulls.find((p) => p.name === img);
    if (wi !== undefined) {
      const [e, n] = [wi.registryEdge.seconds, wi.nginxCache.seconds];
      const floor = wi.nodeFloor ? `; ${FLOOR} ${ratio(wi.nodeFloor.seconds / n)}` : '';
      add(`warm pull ${img}: <= nginx-cache time, interleaved (median of ${r.interleaved?.warmRounds})`, `${s(e)} s vs ${s(n)} s (${ratio(e / n)})${floor}`, e <= n);
    }
  }

  const m = me.manifest;
  const mc = cache?.manifest;
  if (failed(m)) add('manifest by tag: >= 5x nginx-cache req/s, p99 <= 20 ms', 'not measured', null);
  else {
    if (failed(mc)) add('manifest by tag: >= 5x nginx-cache req/s', 'nginx-cache not measured', null);
    else add(`manifest by tag: >= 5x nginx-cache req/s${tlsNote}`, `${m.requestsPerSecond.toFixed(0)} vs ${mc.requestsPerSecond.toFixed(0)} (${(m.requestsPerSecond / mc.requestsPerSecond).toFixed(1)}x)`, m.requestsPerSecond >= 5 * mc.requestsPerSecond && m.errors === 0);
    add('manifest by tag: p99 <= 20 ms', `${m.p99Ms.toFixed(1)} ms`, m.p99Ms <= 20);
  }
  if (me.peakRssBytes === undefined) add('peak RSS <= 150 MiB', 'not measured', null);
  else add('peak RSS <= 150 MiB', `${(me.peakRssBytes / MiB).toFixed(0)} MiB`, me.peakRssBytes <= 150 * MiB);
  return out;
}
