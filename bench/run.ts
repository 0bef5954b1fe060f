// The benchmark of issue 5: registry-edge against what zones run today, in one run.
//
//   node dist/bench/run.js            (bench/run.sh installs the peers and builds first)
//   BENCH_QUICK=1 node dist/bench/run.js
//
// Everything runs on 127.0.0.1: a central docker-registry holding generated images, a
// WAN-like link in front of it (bench/link.ts), and one after the other the edges under
// test, each behind its own fresh link and with a cold cache. See bench/README.md.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EDGE_BIN, startEdge } from '../test/helpers/edge.js';
import { makeOciLayout, pullImage, pushBlob, pushImage, randomFile, skopeoBinary, type ImageInfo } from '../test/helpers/image.js';
import { delay, removeDir, run, tempDir, which } from '../test/helpers/proc.js';
import { registryBinary, startRegistry, type Registry } from '../test/helpers/registry.js';
import { median } from './ab.js';
import { COLD_KINDS, coldPullAb, describeColdPullAb } from './cold-pull-ab.js';
import { makeCerts, type BenchCerts } from './certs.js';
import { curlClients, nodeClients } from './clients.js';
import { startLink, type Link } from './link.js';
import { nginxBinary, startNginx } from './nginx.js';
import { cpuSeconds, machineBusyMeter, peakRssBytes } from './procfs.js';
import {
  checkTargets,
  interleavedLines,
  type Interleaved,
  EDGE_NAMES,
  markdownTable,
  tableRows,
  targetsTable,
  type EdgeName,
  type EdgeResult,
  type GetMeasure,
  type HerdMeasure,
  type ImageName,
  type Machine,
  type ManifestMeasure,
  type Outcome,
  type PullMeasure,
  type RunResults,
} from './results.js';
import { describeWarmAb, warmAb } from './warm-ab.js';
import { runWrk, wrkBinary } from './wrk.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The repository root (this file runs as dist/bench/run.js). */
const ROOT = path.resolve(HERE, '../..');
const KiB = 1024;
const MiB = 1024 * KiB;
const MANIFEST_ACCEPT = 'application/vnd.oci.image.manifest.v1+json';

// ---------------------------------------------------------------------------
// Settings: every size, the link and the load are environment variables.

const QUICK = /^(1|true|yes)$/i.test(process.env['BENCH_QUICK'] ?? '');

function envNumber(name: string, full: number, quick: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return QUICK ? quick : full;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name}=${raw}: expected a number >= 0`);
  return v;
}

function envString(name: string, def: string): string {
  const raw = process.env[name];
  return raw === undefined || raw === '' ? def : raw;
}

const settings = {
  quick: QUICK,
  linkLatencyMs: envNumber('BENCH_LINK_LATENCY_MS', 5, 5),
  linkMiBps: envNumber('BENCH_LINK_MIBPS', 200, 200),
  linkWindowKiB: envNumber('BENCH_LINK_WINDOW_KIB', 4096, 4096),
  bigLayerMiB: envNumber('BENCH_BIG_LAYER_MIB', 256, 32),
  bigExtraLayerMiB: envNumber('BENCH_BIG_EXTRA_LAYER_MIB', 32, 4),
  bigExtraLayers: envNumber('BENCH_BIG_EXTRA_LAYERS', 2, 2),
  manyLayers: envNumber('BENCH_MANY_LAYERS', 40, 10),
  manyLayerKiB: envNumber('BENCH_MANY_LAYER_KIB', 256, 64),
  smallLayerKiB: envNumber('BENCH_SMALL_LAYER_KIB', 3072, 512),
  herdMiB: envNumber('BENCH_HERD_MIB', 256, 32),
  herdClients: envNumber('BENCH_HERD_CLIENTS', 16, 16),
  herdProcs: envNumber('BENCH_HERD_PROCS', 2, 2),
  streams: envNumber('BENCH_STREAMS', 8, 8),
  getRepeat: envNumber('BENCH_GET_REPEAT', 3, 1),
  getClient: envString('BENCH_GET_CLIENT', 'curl'),
  wrkSeconds: envNumber('BENCH_WRK_DURATION', 10, 3),
  wrkConnections: envNumber('BENCH_WRK_CONNECTIONS', 64, 64),
  wrkThreads: envNumber('BENCH_WRK_THREADS', 2, 2),
  edges: envString('BENCH_EDGES', EDGE_NAMES.join(',')),
  warmAbRounds: envNumber('BENCH_AB_WARM_ROUNDS', 5, 1),
  coldAbRounds: envNumber('BENCH_AB_COLD_ROUNDS', 3, 1),
  edgeTls: envString('BENCH_EDGE_TLS', 'auto'),
  edgeLogLevel: envString('BENCH_EDGE_LOG_LEVEL', 'info'),
  edgeNodeArgs: envString('BENCH_EDGE_NODE_ARGS', ''),
  results: envString('BENCH_RESULTS', path.join(ROOT, 'bench', 'results', QUICK ? 'quick.json' : 'latest.json')),
  updateReadme: /^(1|true|yes)$/i.test(envString('BENCH_UPDATE_README', QUICK ? '0' : '1')),
};
/** Node.js flags of every registry-edge the run starts (BENCH_EDGE_NODE_ARGS, space-separated). */
const edgeNodeArgs = settings.edgeNodeArgs.split(' ').filter(Boolean);

// ---------------------------------------------------------------------------
// Progress lines and cleanup.

const t0 = Date.now();
function log(msg: string): void {
  const sec = Math.floor((Date.now() - t0) / 1000);
  const stamp = `${String(Math.floor(sec / 60)).padStart(2, '0')}:${String(sec % 60).padStart(2, '0')}`;
  process.stdout.write(`[bench ${stamp}] ${msg}\n`);
}

type Cleanup = () => Promise<void> | void;
/** LIFO stack of cleanups: every process is stopped by its pid, every temp dir removed. */
const cleanups: Cleanup[] = [];
function defer(fn: Cleanup): void {
  cleanups.push(fn);
}
async function unwindTo(mark: number): Promise<void> {
  while (cleanups.length > mark) {
    const fn = cleanups.pop();
    try {
      await fn?.();
    } catch (err) {
      log(`cleanup failed: ${errorText(err)}`);
    }
  }
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: cleaning up`);
    void unwindTo(0).finally(() => process.exit(130));
  });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function attempt<T extends object>(what: string, fn: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return await fn();
  } catch (err) {
    if (interrupted) throw err;
    log(`  ${what} FAILED: ${errorText(err).split('\n').slice(0, 6).join(' | ')}`);
    return { error: errorText(err) };
  }
}

// ---------------------------------------------------------------------------
// The world: central registry, images, certificates.

interface BenchImage {
  name: ImageName;
  repo: string;
  tag: string;
  info: ImageInfo;
  bytes: number;
}

interface World {
  work: string;
  registry: Registry;
  certs: BenchCerts;
  images: BenchImage[];
  /** Pulled once through each contender before its cold pulls; not measured. */
  warmup: Omit<BenchImage, 'name'>;
  warmBlob: { repo: string; digest: string; size: number };
  edgeTls: { enabled: boolean; note?: string };
}

async function machine(): Promise<Machine> {
  const version = async (cmd: string, args: string[]): Promise<string> => {
    try {
      const r = await run(cmd, args, { timeoutMs: 10_000 });
      return (r.stdout + r.stderr).split('\n').find((l) => l.trim() !== '')?.trim() ?? '?';
    } catch {
      return 'missing';
    }
  };
  return {
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
    kernel: os.release(),
    node: process.version,
    loadAtStart: os.loadavg().map((x) => Number(x.toFixed(2))),
    peers: {
      nginx: (await version(nginxBinary(), ['-v'])).replace(/^nginx version: nginx\//, ''),
      'docker-registry': (await version(registryBinary(), ['--version'])).split(' ').at(-1) ?? '?',
      skopeo: (await version(skopeoBinary(), ['--version'])).replace(/^skopeo version /, ''),
      wrk: (await version(wrkBinary(), ['-v'])).replace(/^wrk /, '').replace(/\s+Copyright.*$/, ''),
      curl: (await version('curl', ['--version'])).split(' ')[1] ?? '?',
      openssl: (await version('openssl', ['version'])).split(' ')[1] ?? '?',
    },
  };
}

async function edgeSupportsTls(): Promise<boolean> {
  const r = await run(process.execPath, [EDGE_BIN, 'config', 'reference'], { timeoutMs: 30_000 });
  return r.stdout.includes('http.tls.certificate') && r.stdout.includes('http.tls.key');
}

async function makeWorld(): Promise<World> {
  const work = tempDir('re-bench-');
  defer(() => removeDir(work));
  log(`work dir ${work}`);

  const certs = await makeCerts(path.join(work, 'certs'));
  const registry = await startRegistry({ logLevel: 'error' });
  defer(() => registry.dispose());
  log(`central docker-registry on ${registry.url} (pid ${registry.proc.pid})`);

  const want = settings.edgeTls.toLowerCase();
  let edgeTls: World['edgeTls'];
  if (want === '0' || want === 'off' || want === 'false') edgeTls = { enabled: false, note: 'BENCH_EDGE_TLS=0' };
  else if (want === '1' || want === 'on' || want === 'true') edgeTls = { enabled: true };
  else if (await edgeSupportsTls()) edgeTls = { enabled: true };
  else edgeTls = { enabled: false, note: 'no TLS in this build' };
  log(`registry-edge transport: ${edgeTls.enabled ? 'https' : `http (${edgeTls.note ?? ''})`}`);

  const specs: Array<{ name: ImageName; layers: number[] }> = [
    {
      name: 'big',
      layers: [
        settings.bigLayerMiB * MiB,
        ...Array.from({ length: settings.bigExtraLayers }, () => settings.bigExtraLayerMiB * MiB),
      ],
    },
    { name: 'many', layers: Array.from({ length: settings.manyLayers }, () => settings.manyLayerKiB * KiB) },
    { name: 'small', layers: [settings.smallLayerKiB * KiB] },
  ];
  const images: BenchImage[] = [];
  const make = async (name: ImageName | 'warmup', layers: number[]): Promise<Omit<BenchImage, 'name'>> => {
    const layout = path.join(work, `layout-${name}`);
    const started = Date.now();
    const info = await makeOciLayout(layout, { layers, tag: '1.0' });
    const repo = `bench/${name}`;
    await pushImage(layout, '1.0', `${registry.host}/${repo}:1.0`, { timeoutMs: 600_000 });
    const bytes = info.manifestBytes.length + info.configBytes.length + info.layers.reduce((a, l) => a + l.size, 0);
    removeDir(layout);
    log(`image ${repo}:1.0: ${info.layers.length} layers, ${(bytes / MiB).toFixed(1)} MiB, made and pushed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return { repo, tag: '1.0', info, bytes };
  };
  for (const spec of specs) images.push({ name: spec.name, ...(await make(spec.name, spec.layers)) });
  const warmup = await make('warmup', [8 * MiB, 4 * MiB]);
  const big = images.find((i) => i.name === 'big');
  const largest = big?.info.layers.reduce((a, l) => (l.size > a.size ? l : a));
  if (big === undefined || largest === undefined) throw new Error('no big image');
  return {
    work,
    registry,
    certs,
    images,
    warmup,
    warmBlob: { repo: big.repo, digest: largest.digest, size: largest.size },
    edgeTls,
  };
}

// ---------------------------------------------------------------------------
// The edges under test.

interface Serving {
  label: string;
  url: string;
  host: string;
  transport: 'http' | 'https';
  transportNote?: string;
  /** Serves blobs from its own storage (else every GET crosses the link). */
  cached: boolean;
  /** The processes whose peak RSS counts. */
  pids(): number[];
}

async function startServing(name: EdgeName, world: World, link: Link, dir: string): Promise<Serving> {
  const tls = { cert: world.certs.cert, key: world.certs.key };
  switch (name) {
    case 'direct':
      return { label: 'docker-registry via link', url: link.url, host: link.host, transport: 'http', cached: false, pids: () => [] };
    case 'nginx-proxy':
    case 'nginx-cache': {
      const cache = name === 'nginx-cache';
      const nginx = await startNginx({ dir, upstream: link.host, cacheBlobs: cache, tls });
      defer(() => nginx.stop());
      const version = /nginx\/(\S+)/.exec((await run(nginxBinary(), ['-v'])).stderr)?.[1] ?? '';
      return {
        label: `nginx ${version}${cache ? ' proxy_cache' : ''}`.trim(),
        url: nginx.url,
        host: nginx.host,
        transport: 'https',
        cached: cache,
        pids: nginx.pids,
      };
    }
    case 'registry-proxy': {
      const reg = await startRegistry({ logLevel: 'error', config: { proxy: { remoteurl: link.url } } });
      defer(() => reg.dispose());
      return {
        label: 'docker-registry proxy',
        url: reg.url,
        host: reg.host,
        transport: 'http',
        cached: true,
        pids: () => [reg.proc.pid],
      };
    }
    case 'registry-edge': {
      const env: Record<string, string> = { REGISTRY_EDGE_LOG_LEVEL: settings.edgeLogLevel };
      if (world.edgeTls.enabled) {
        env['REGISTRY_EDGE_HTTP_TLS_CERTIFICATE'] = world.certs.cert;
        env['REGISTRY_EDGE_HTTP_TLS_KEY'] = world.certs.key;
      }
      const edge = await startEdge({ workDir: dir, upstreams: [link.url], env, nodeArgs: edgeNodeArgs });
      defer(() => edge.stop());
      const https = world.edgeTls.enabled;
      const serving: Serving = {
        label: 'registry-edge',
        url: `${https ? 'https' : 'http'}://${edge.host}`,
        host: edge.host,
        transport: https ? 'https' : 'http',
        cached: true,
        pids: () => (edge.proc.running() ? [edge.proc.pid] : []),
      };
      if (world.edgeTls.note !== undefined) serving.transportNote = world.edgeTls.note;
      return serving;
    }
  }
}

// ---------------------------------------------------------------------------
// Measurements.

/** Waits until nothing more arrives from the centre (background fills finish). */
async function settle(link: Link, quietMs = 500, maxMs = 60_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  let last = link.stats().bytesFromCentre;
  let quietSince = Date.now();
  while (Date.now() < deadline) {
    await delay(100);
    const now = link.stats().bytesFromCentre;
    if (now !== last) {
      last = now;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= quietMs) return;
  }
}

let pulls = 0;
async function measurePull(world: World, serving: Serving, link: Link, image: Omit<BenchImage, 'name'>): Promise<PullMeasure> {
  await settle(link);
  const before = link.stats().bytesFromCentre;
  const dest = path.join(world.work, `pull-${++pulls}`);
  try {
    const ref = `${serving.host}/${image.repo}:${image.tag}`;
    const busyShare = machineBusyMeter();
    const r = await pullImage(
      ref,
      dest,
      serving.transport === 'https' ? { certDir: world.certs.skopeoCertDir, timeoutMs: 600_000 } : { timeoutMs: 600_000 },
    );
    const machineBusy = busyShare(r.seconds);
    if (r.code !== 0) throw new Error(`skopeo copy ${ref} failed (code ${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    await settle(link);
    const bytesFromCentre = link.stats().bytesFromCentre - before;
    return { seconds: r.seconds, bytesFromCentre, ratio: bytesFromCentre / image.bytes, machineBusy };
  } finally {
    removeDir(dest);
  }
}

async function measureGet(world: World, serving: Serving, streams: number): Promise<GetMeasure> {
  const { repo, digest, size } = world.warmBlob;
  const url = `${serving.url}/v2/${repo}/blobs/${digest}`;
  const ca = serving.transport === 'https' ? world.certs.caCert : undefined;
  const client = settings.getClient === 'node' ? 'node' : 'curl';
  const runs: number[] = [];
  // Without a cache every GET crosses the link and runs at its rate: once is enough.
  const repeat = serving.cached ? Math.max(1, settings.getRepeat) : 1;
  for (let i = 0; i < repeat; i++) {
    const r = client === 'node' ? await nodeClients(url, streams, streams, ca, false) : await curlClients(url, streams, ca);
    const bad = r.streams.filter((x) => x.status !== 200 || x.bytes !== size || x.error !== undefined);
    if (bad.length > 0) {
      const b = bad[0];
      throw new Error(`${bad.length}/${streams} GETs failed (status ${b?.status}, ${b?.bytes} of ${size} bytes${b?.error ? `, ${b.error}` : ''})`);
    }
    runs.push((r.endedAt - r.startedAt) / 1000);
  }
  // The median run: one GET of a few hundred ms is at the mercy of the scheduler.
  const seconds = median(runs);
  const rate = (sec: number): number => (streams * size) / MiB / sec;
  return { streams, seconds, mibPerSecond: rate(seconds), client, runs: runs.map((x) => Number(rate(x).toFixed(1))) };
}

async function measureHerd(world: World, serving: Serving, link: Link, blob: { repo: string; digest: string; size: number }): Promise<HerdMeasure> {
  await settle(link);
  const before = link.stats().bytesFromCentre;
  const url = `${serving.url}/v2/${blob.repo}/blobs/${blob.digest}`;
  const ca = serving.transport === 'https' ? world.certs.caCert : undefined;
  const pids = serving.pids();
  const cpuBefore = cpuSeconds(pids);
  const r = await nodeClients(url, settings.herdClients, settings.herdProcs, ca, true);
  const servingCpuSeconds = pids.length > 0 ? cpuSeconds(pids) - cpuBefore : undefined;
  await settle(link);
  const bytesFromCentre = link.stats().bytesFromCentre - before;
  const correct = r.streams.filter((x) => x.status === 200 && x.bytes === blob.size && x.digest === blob.digest && x.complete).length;
  const wrong = r.streams.find((x) => !(x.status === 200 && x.bytes === blob.size && x.digest === blob.digest));
  if (wrong !== undefined) log(`  herd: a client got status ${wrong.status}, ${wrong.bytes} bytes${wrong.error ? `, ${wrong.error}` : ''}`);
  return {
    clients: r.streams.length,
    seconds: (r.endedAt - r.startedAt) / 1000,
    bytesFromCentre,
    ratio: bytesFromCentre / blob.size,
    correct,
    slowestFirstByteSeconds: Math.max(...r.streams.map((x) => (x.firstByteAt === 0 ? 0 : x.firstByteAt - r.startedAt))) / 1000,
    clientCpuSeconds: r.cpuSeconds ?? 0,
    ...(servingCpuSeconds === undefined ? {} : { servingCpuSeconds }),
  };
}

function getOnce(url: string, ca: string | undefined, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const onRes = (res: http.IncomingMessage): void => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
      res.once('error', reject);
    };
    const req = url.startsWith('https:')
      ? https.get(url, { headers, agent: false, ca: ca === undefined ? undefined : fs.readFileSync(ca) }, onRes)
      : http.get(url, { headers, agent: false }, onRes);
    req.setTimeout(30_000, () => req.destroy(new Error(`timeout: GET ${url}`)));
    req.once('error', reject);
  });
}

async function measureManifest(world: World, serving: Serving): Promise<ManifestMeasure> {
  const small = world.images.find((i) => i.name === 'small');
  if (small === undefined) throw new Error('no small image');
  const url = `${serving.url}/v2/${small.repo}/manifests/${small.tag}`;
  const headers = { Accept: MANIFEST_ACCEPT };
  const status = await getOnce(url, serving.transport === 'https' ? world.certs.caCert : undefined, headers);
  if (status !== 200) throw new Error(`GET ${url} answered ${status}`);
  const r = await runWrk({
    url,
    connections: settings.wrkConnections,
    threads: settings.wrkThreads,
    durationSeconds: settings.wrkSeconds,
    headers,
  });
  return { requestsPerSecond: r.requestsPerSecond, p50Ms: r.p50Ms, p99Ms: r.p99Ms, maxMs: r.maxMs, requests: r.requests, errors: r.errors };
}

function describe<T extends object>(o: Outcome<T>, f: (v: T) => string): string {
  return 'error' in o ? 'ERROR' : f(o);
}

async function benchEdge(name: EdgeName, world: World): Promise<EdgeResult> {
  const started = Date.now();
  const mark = cleanups.length;
  const dir = path.join(world.work, name);
  fs.mkdirSync(dir, { recursive: true });
  const result: EdgeResult = { name, label: name, transport: 'http', coldPull: {}, warmPull: {}, processes: 0, seconds: 0 };
  try {
    // A fresh random blob for the herd, so it is cold at this edge whatever ran before.
    const herdFile = path.join(world.work, `herd-${name}.bin`);
    await randomFile(herdFile, settings.herdMiB * MiB);
    const herdBlob = { repo: 'bench/herd', ...(await pushBlob(world.registry.url, 'bench/herd', herdFile)) };
    fs.rmSync(herdFile, { force: true });

    const link = await startLink({
      targetHost: '127.0.0.1',
      targetPort: world.registry.port,
      latencyMs: settings.linkLatencyMs,
      bytesPerSecond: settings.linkMiBps * MiB,
      windowBytes: settings.linkWindowKiB * KiB,
    });
    defer(() => link.stop());
    const serving = await startServing(name, world, link, dir);
    result.label = serving.label;
    result.transport = serving.transport;
    if (serving.transportNote !== undefined) result.transportNote = serving.transportNote;
    log(`${name}: ${serving.label} on ${serving.url}, link ${link.url} (${settings.linkLatencyMs} ms, ${settings.linkMiBps} MiB/s)`);

    // A long-running edge has compiled its hot paths (JIT, undici's llhttp wasm) long before a
    // pull; a fresh one does it during its first, which perf put at 29% of a fresh edge's CPU
    // over a cold pull (bench/README.md). One pull of an image measured nowhere, for every contender.
    const warmed = await attempt('warm-up pull', () => measurePull(world, serving, link, world.warmup));
    log(`  warm-up pull (not measured): ${describe(warmed, (v) => `${v.seconds.toFixed(2)} s`)}`);
    for (const phase of ['cold', 'warm'] as const) {
      for (const image of world.images) {
        const o = await attempt(`${phase} pull ${image.name}`, () => measurePull(world, serving, link, image));
        (phase === 'cold' ? result.coldPull : result.warmPull)[image.name] = o;
        log(`  ${phase} pull ${image.name}: ${describe(o, (v) => `${v.seconds.toFixed(2)} s, ${(v.bytesFromCentre / MiB).toFixed(1)} MiB from centre (${v.ratio.toFixed(2)}x)`)}`);
      }
    }
    await settle(link);
    result.blobOne = await attempt('warm blob, 1 stream', () => measureGet(world, serving, 1));
    log(`  warm blob, 1 stream: ${describe(result.blobOne, (v) => `${v.mibPerSecond.toFixed(0)} MiB/s (${v.client}, median of ${v.runs.join(', ')})`)}`);
    result.blobMany = await attempt(`warm blob, ${settings.streams} streams`, () => measureGet(world, serving, settings.streams));
    log(`  warm blob, ${settings.streams} streams: ${describe(result.blobMany, (v) => `${v.mibPerSecond.toFixed(0)} MiB/s (${v.client}, median of ${v.runs.join(', ')})`)}`);
    result.herd = await attempt('herd', () => measureHerd(world, serving, link, herdBlob));
    log(`  ${settings.herdClients} clients on a cold blob: ${describe(result.herd, (v) => `${v.seconds.toFixed(2)} s, ${v.ratio.toFixed(2)}x from centre, ${v.correct}/${v.clients} correct`)}`);
    result.manifest = await attempt('manifest by tag', () => measureManifest(world, serving));
    log(`  manifest by tag: ${describe(result.manifest, (v) => `${v.requestsPerSecond.toFixed(0)} req/s, p99 ${v.p99Ms.toFixed(1)} ms${v.errors ? `, ${v.errors} errors` : ''}`)}`);

    const pids = serving.pids();
    result.processes = pids.length;
    if (pids.length > 0) result.peakRssBytes = pids.reduce((a, p) => a + (peakRssBytes(p) ?? 0), 0);
    if (result.peakRssBytes !== undefined) log(`  peak RSS ${(result.peakRssBytes / MiB).toFixed(0)} MiB over ${pids.length} process(es)`);
  } catch (err) {
    if (interrupted) throw err;
    result.error = errorText(err);
    log(`${name} FAILED: ${result.error}`);
  } finally {
    await unwindTo(mark);
    removeDir(dir);
    result.seconds = (Date.now() - started) / 1000;
  }
  return result;
}

/**
 * The warm-blob and cold-pull comparisons again, with the contenders side by side and the
 * rounds alternating between them: one contender's slot of the sequential run above can be
 * 40% slower than the next one's on a small VM, which decides close ratios. Needs the
 * edge and nginx; skipped with 0 rounds.
 */
async function measureInterleaved(edges: string[]): Promise<Interleaved | undefined> {
  if (!edges.includes('registry-edge')) return undefined;
  const out: Interleaved = { warmRounds: settings.warmAbRounds, coldRounds: settings.coldAbRounds };
  const abLog = (line: string): void => log(`  ${line}`);
  const big = [settings.bigLayerMiB * MiB, ...Array.from({ length: settings.bigExtraLayers }, () => settings.bigExtraLayerMiB * MiB)];
  if (settings.warmAbRounds > 0) {
    log(`interleaved: warm ${settings.bigLayerMiB} MiB blob and warm pulls, registry-edge, nginx-cache and node-floor, ${settings.warmAbRounds} rounds`);
    const pulls = [
      { name: 'big', layers: big },
      { name: 'many', layers: Array.from({ length: settings.manyLayers }, () => settings.manyLayerKiB * KiB) },
      { name: 'small', layers: [settings.smallLayerKiB * KiB] },
    ];
    out.warm = await attempt('interleaved warm blob and pulls', () =>
      warmAb({ rounds: settings.warmAbRounds, blobMiB: settings.bigLayerMiB, streamCounts: [1, settings.streams], cold: false, hold: false, pulls, floor: true, edgeNodeArgs, log: abLog }),
    );
    if (!('error' in out.warm)) for (const line of describeWarmAb(out.warm, settings.warmAbRounds)) log(`  ${line}`);
  }
  if (settings.coldAbRounds > 0) {
    log(`interleaved: cold pull of the big image, ${COLD_KINDS.join(', ')}, ${settings.coldAbRounds} rounds`);
    out.cold = await attempt('interleaved cold pull', async () => ({
      kinds: await coldPullAb({
        rounds: settings.coldAbRounds,
        kinds: [...COLD_KINDS],
        layers: big,
        warmup: true,
        linkLatencyMs: settings.linkLatencyMs,
        linkMiBps: settings.linkMiBps,
        edgeNodeArgs,
        log: abLog,
      }),
    }));
    if (!('error' in out.cold)) log(`  ${describeColdPullAb(out.cold.kinds, settings.coldAbRounds)}`);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Report.

const README_BEGIN = '<!-- bench:latest:begin -->';
const README_END = '<!-- bench:latest:end -->';

function reportMarkdown(r: RunResults): string {
  const m = r.machine;
  const lines = [
    `- Run: ${r.date}${r.quick ? ' (quick mode)' : ''}, ${(r.seconds / 60).toFixed(1)} minutes.`,
    `- Machine: ${m.nproc} cores (${m.cpu}), ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}.`,
    `- Load average (1, 5, 15 min): at start ${m.loadAtStart.join(', ')}; at end ${(m.loadAtEnd ?? []).join(', ')}.`,
    `- Peers: ${Object.entries(m.peers).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
    `- Link ${r.settings['linkLatencyMs']} ms each way, ${r.settings['linkMiBps']} MiB/s shared; images: big ${r.images.big.layers.map((b) => (b / MiB).toFixed(0)).join('+')} MiB, many ${r.images.many.layers.length} x ${r.settings['manyLayerKiB']} KiB, small ${(r.images.small.bytes / MiB).toFixed(1)} MiB; wrk ${r.settings['wrkThreads']} threads, ${r.settings['wrkConnections']} connections, ${r.settings['wrkSeconds']} s; warm GETs with ${r.settings['getClient']}, median of ${r.settings['getRepeat']} runs (1 where there is no cache).`,
    '',
    markdownTable(tableRows(r)),
    '',
    ...interleavedLines(r),
    targetsTable(r.targets),
  ];
  return lines.join('\n');
}

function updateReadme(r: RunResults): void {
  const file = path.join(ROOT, 'bench', 'README.md');
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n';
  const block = `${README_BEGIN}\n${reportMarkdown(r)}\n${README_END}`;
  const a = text.indexOf(README_BEGIN);
  const b = text.indexOf(README_END);
  if (a >= 0 && b > a) text = text.slice(0, a) + block + text.slice(b + README_END.length);
  else text = `${text.trimEnd()}\n\n## Latest run\n\n${block}\n`;
  fs.writeFileSync(file, text);
}

// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const edges = settings.edges.split(',').map((e) => e.trim()).filter((e) => e !== '');
  for (const e of edges) {
    if (!(EDGE_NAMES as readonly string[]).includes(e)) throw new Error(`BENCH_EDGES: unknown edge ${e}; known: ${EDGE_NAMES.join(', ')}`);
  }
  for (const need of ['openssl', 'curl']) if (which(need) === undefined) throw new Error(`${need} not found`);
  const mach = await machine();
  log(`${QUICK ? 'QUICK mode; ' : ''}${mach.nproc} cores (${mach.cpu}); edges: ${edges.join(', ')}`);
  const load1 = mach.loadAtStart[0] ?? 0;
  if (load1 > 0.5) log(`warning: load average ${load1} at start; other work on this machine skews the numbers`);
  const world = await makeWorld();

  const results: EdgeResult[] = [];
  for (const name of edges as EdgeName[]) results.push(await benchEdge(name, world));
  const interleaved = await measureInterleaved(edges);

  const imageInfo = (n: ImageName): { layers: number[]; bytes: number } => {
    const img = world.images.find((i) => i.name === n);
    return { layers: img?.info.layers.map((l) => l.size) ?? [], bytes: img?.bytes ?? 0 };
  };
  const out: RunResults = {
    date: new Date(t0).toISOString(),
    quick: QUICK,
    machine: mach,
    settings: { ...settings },
    images: { big: imageInfo('big'), many: imageInfo('many'), small: imageInfo('small') },
    herdBlobBytes: settings.herdMiB * MiB,
    warmBlobBytes: world.warmBlob.size,
    edges: results,
    ...(interleaved === undefined ? {} : { interleaved }),
    targets: [],
    seconds: 0,
  };
  out.targets = checkTargets(out);
  mach.loadAtEnd = os.loadavg().map((x) => Number(x.toFixed(2)));
  out.seconds = (Date.now() - t0) / 1000;

  fs.mkdirSync(path.dirname(settings.results), { recursive: true });
  fs.writeFileSync(settings.results, `${JSON.stringify(out, null, 2)}\n`);
  process.stdout.write(`\n${reportMarkdown(out)}\n\n`);
  log(`results: ${settings.results}`);
  if (settings.updateReadme) {
    updateReadme(out);
    log('bench/README.md updated');
  }
}

main()
  .then(async () => {
    await unwindTo(0);
    log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  })
  .catch(async (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await unwindTo(0);
    process.exitCode = 1;
  });
