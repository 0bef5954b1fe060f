// Warm-blob throughput of registry-edge against nginx proxy_cache, interleaved: both serve
// the same cached blob over TLS with the same certificate, and the rounds alternate
// between them so machine noise hits both alike. `npm run bench` runs it after the
// sequential contenders; alone, it is for profiling the hot path:
//
//   npm run build && node dist/bench/warm-ab.js
//   AB_COLD=1 AB_STREAMS= node dist/bench/warm-ab.js   (cold fills only, no link: the fill path's cost)
//   AB_HOLD=1 node dist/bench/warm-ab.js   (keeps both up for measuring by hand)
//   AB_PULLS=1 node dist/bench/warm-ab.js  (also warm skopeo pulls of a 40-layer image)
//   AB_ROUNDS=7 AB_MIB=256 AB_STREAMS=1,8 AB_EDGE_NODE_ARGS=--cpu-prof node dist/bench/warm-ab.js
//   AB_FLOOR=0 node dist/bench/warm-ab.js  (without the node-floor contender)
//
// node-floor is bench/node-proxy.ts answering blobs from the edge's cache directory with
// the edge's own file pump and nothing else: a bare Node.js https server. Against it,
// nginx-cache shows what Node.js's TLS and HTTP cost a cache hit, and registry-edge what
// the edge's own work per request costs.
//
// No link: the blob is fetched once from the centre to warm each cache, then only the
// cache is measured. Prints each round and the medians.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startEdge } from '../test/helpers/edge.js';
import { makeOciLayout, pullImage, pushBlob, pushImage, randomFile } from '../test/helpers/image.js';
import { removeDir } from '../test/helpers/proc.js';
import { startRegistry } from '../test/helpers/registry.js';
import { abRounds, edgeNodeArgs, isMain, median, MiB, runCli, startNodeProxy, withWork } from './ab.js';
import { makeCerts } from './certs.js';
import { curlClients } from './clients.js';
import { startNginx } from './nginx.js';
import { cpuSeconds, reapedChildrenCpuSeconds } from './procfs.js';

export interface WarmAbOptions {
  rounds: number;
  blobMiB: number;
  /** Parallel streams per case, e.g. [1, 8]. */
  streamCounts: number[];
  /** Also one cold GET per round (the fill path, no link). */
  cold: boolean;
  /** Keep both up until stdin closes, for measuring by hand. */
  hold: boolean;
  /** Images (layer sizes in bytes) pulled warm with skopeo through both, each round. */
  pulls: Array<{ name: string; layers: number[] }>;
  /** Also measure node-floor (a bare Node.js https server on the edge's blob files). */
  floor: boolean;
  edgeNodeArgs: string[];
  log(line: string): void;
}

export interface WarmAbSide {
  /** Median MiB/s over the rounds. */
  mibPerSecond: number;
  /** Median CPU seconds of the serving processes per GiB served. */
  cpuPerGiB: number;
  /** Median CPU seconds of the curl clients per GiB received (TLS decryption, the kernel's receive path). */
  clientCpuPerGiB: number;
  /** MiB/s of every round. */
  runs: number[];
}

export interface WarmAbPull {
  name: string;
  /** Median wall seconds of a warm skopeo pull (start-up included), and every round's. */
  nginxCache: { seconds: number; runs: number[] };
  registryEdge: { seconds: number; runs: number[] };
  nodeFloor?: { seconds: number; runs: number[] };
}

export interface WarmAbCase {
  label: string;
  streams: number;
  cold: boolean;
  nginxCache: WarmAbSide;
  registryEdge: WarmAbSide;
  nodeFloor?: WarmAbSide;
}

interface Contender {
  name: 'nginx-cache' | 'registry-edge' | 'node-floor';
  url: string;
  host: string;
  pids(): number[];
}

export interface WarmAbResult {
  cases: WarmAbCase[];
  pulls: WarmAbPull[];
}

export function warmAb(o: WarmAbOptions): Promise<WarmAbResult> {
  return withWork('re-ab-', async (work, stops) => {
    const certs = await makeCerts(path.join(work, 'certs'));
    const registry = await startRegistry({ logLevel: 'error' });
    stops.push(() => registry.dispose());
    const file = path.join(work, 'blob.bin');
    await randomFile(file, o.blobMiB * MiB);
    const blob = await pushBlob(registry.url, 'ab/blob', file);
    const coldBlobs: Array<{ digest: string; size: number }> = [];
    for (let i = 0; i < (o.cold ? 2 * o.rounds : 0); i++) {
      await randomFile(file, o.blobMiB * MiB);
      coldBlobs.push(await pushBlob(registry.url, 'ab/blob', file));
    }
    fs.rmSync(file);
    for (const img of o.pulls) {
      const layout = path.join(work, `layout-${img.name}`);
      await makeOciLayout(layout, { layers: img.layers, tag: '1.0' });
      await pushImage(layout, '1.0', `${registry.host}/ab/${img.name}:1.0`, { timeoutMs: 600_000 });
      removeDir(layout);
    }

    fs.mkdirSync(path.join(work, 'nginx'));
    const nginx = await startNginx({ dir: path.join(work, 'nginx'), upstream: registry.host, cacheBlobs: true, tls: certs });
    stops.push(() => nginx.stop());
    fs.mkdirSync(path.join(work, 'edge'));
    const edge = await startEdge({
      workDir: path.join(work, 'edge'),
      upstreams: [registry.url],
      env: {
        REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: certs.cert,
        REGISTRY_EDGE_HTTP_TLS_KEY: certs.key,
      },
      nodeArgs: o.edgeNodeArgs,
    });
    stops.push(() => edge.stop());
    const contenders: Contender[] = [
      { name: 'nginx-cache', url: nginx.url, host: nginx.host, pids: () => nginx.pids() },
      { name: 'registry-edge', url: edge.url, host: edge.host, pids: () => [edge.proc.pid] },
    ];
    if (o.floor) {
      // Last, so the edge's warm-up has put every blob in the directory it serves from.
      const floor = await startNodeProxy({ upstream: registry.url, cert: certs.cert, key: certs.key, dir: path.join(work, 'edge'), blobs: path.join(edge.cacheDir, 'blobs') });
      stops.push(() => floor.stop());
      contenders.push({ name: 'node-floor', url: `https://${floor.host}`, host: floor.host, pids: () => [floor.pid] });
    }
    let pullDirs = 0;
    const pull = async (c: Contender, image: string): Promise<number> => {
      const dest = path.join(work, `pull-${++pullDirs}`);
      try {
        const r = await pullImage(`${c.host}/ab/${image}:1.0`, dest, { certDir: certs.skopeoCertDir, timeoutMs: 600_000 });
        if (r.code !== 0) throw new Error(`${c.name}: skopeo pull of ab/${image} failed: ${r.stderr.trim()}`);
        return r.seconds;
      } finally {
        removeDir(dest);
      }
    };
    const rates = new Map<string, number[]>();
    const cpu = new Map<string, number[]>();
    const clientCpu = new Map<string, number[]>();
    for (const c of contenders) {
      const url = `${c.url}/v2/ab/blob/blobs/${blob.digest}`;
      // Warm twice: nginx caches on the first full answer, the edge commits after its fill.
      for (let i = 0; i < 2; i++) await curlClients(url, 1, certs.caCert);
      // Twice as well, for the same reason: the first pull fills, the second finds all cached.
      for (const img of o.pulls) for (let i = 0; i < 2; i++) await pull(c, img.name);
    }
    const pullSeconds = new Map<string, number[]>();
    if (o.hold) {
      // For measuring by hand (perf, strace, other clients): everything stays up until stdin closes.
      for (const c of contenders) o.log(`${c.name} ${c.url}/v2/ab/blob/blobs/${blob.digest} pids ${c.pids().join(' ')}`);
      for (const b of coldBlobs) o.log(`cold ${b.digest}`);
      o.log(`ca ${certs.caCert}; close stdin to stop`);
      process.stdin.resume();
      await new Promise((resolve) => process.stdin.once('end', resolve));
    }
    // Cases: the warm blob at each stream count, and (cold) one stream on a blob this
    // contender has not seen, so the fill path (upstream read, hash, temp file) is measured.
    const cases = [
      ...o.streamCounts.map((streams) => ({ label: `warm x${streams}`, streams, cold: false })),
      ...(coldBlobs.length > 0 ? [{ label: 'cold x1', streams: 1, cold: true }] : []),
    ];
    for (let r = 0; r < o.rounds; r++) {
      const order = r % 2 === 0 ? contenders : [...contenders].reverse();
      const line: string[] = [];
      for (const kase of cases) {
        for (const c of order) {
          const target = kase.cold ? coldBlobs.shift() : blob;
          if (!target) throw new Error('out of cold blobs');
          const cpuBefore = cpuSeconds(c.pids());
          // The curl processes are reaped by the time curlClients resolves: their CPU is in our cutime/cstime.
          const clientBefore = reapedChildrenCpuSeconds();
          const run = await curlClients(`${c.url}/v2/ab/blob/blobs/${target.digest}`, kase.streams, certs.caCert);
          const bad = run.streams.find((x) => x.status !== 200 || x.bytes !== target.size);
          if (bad) throw new Error(`${c.name}: status ${bad.status}, ${bad.bytes} of ${target.size} bytes ${bad.error ?? ''}`);
          const bytes = kase.streams * target.size;
          const mibps = bytes / MiB / ((run.endedAt - run.startedAt) / 1000);
          const gib = bytes / (1024 * MiB);
          const cpuPerGiB = (cpuSeconds(c.pids()) - cpuBefore) / gib;
          const clientPerGiB = (reapedChildrenCpuSeconds() - clientBefore) / gib;
          const key = `${c.name} ${kase.label}`;
          rates.set(key, [...(rates.get(key) ?? []), mibps]);
          cpu.set(key, [...(cpu.get(key) ?? []), cpuPerGiB]);
          clientCpu.set(key, [...(clientCpu.get(key) ?? []), clientPerGiB]);
          line.push(`${key} ${mibps.toFixed(0)} MiB/s ${cpuPerGiB.toFixed(2)} cpu-s/GiB, client ${clientPerGiB.toFixed(2)}`);
        }
      }
      for (const img of o.pulls) {
        for (const c of order) {
          const seconds = await pull(c, img.name);
          const key = `${c.name} ${img.name}`;
          pullSeconds.set(key, [...(pullSeconds.get(key) ?? []), seconds]);
          line.push(`${c.name} warm pull ${img.name} ${seconds.toFixed(2)} s`);
        }
      }
      o.log(`round ${r + 1}: ${line.join(', ')}`);
    }
    const side = (name: Contender['name'], label: string): WarmAbSide => {
      const runs = rates.get(`${name} ${label}`) ?? [];
      const key = `${name} ${label}`;
      return {
        mibPerSecond: median(runs),
        cpuPerGiB: median(cpu.get(key) ?? []),
        clientCpuPerGiB: median(clientCpu.get(key) ?? []),
        runs: runs.map((x) => Number(x.toFixed(1))),
      };
    };
    const pullSide = (name: Contender['name'], image: string): { seconds: number; runs: number[] } => {
      const runs = pullSeconds.get(`${name} ${image}`) ?? [];
      return { seconds: median(runs), runs: runs.map((x) => Number(x.toFixed(2))) };
    };
    return {
      cases: cases.map((k) => ({
        ...k,
        nginxCache: side('nginx-cache', k.label),
        registryEdge: side('registry-edge', k.label),
        ...(o.floor ? { nodeFloor: side('node-floor', k.label) } : {}),
      })),
      pulls: o.pulls.map((img) => ({
        name: img.name,
        nginxCache: pullSide('nginx-cache', img.name),
        registryEdge: pullSide('registry-edge', img.name),
        ...(o.floor ? { nodeFloor: pullSide('node-floor', img.name) } : {}),
      })),
    };
  });
}

/** One line per case and per image: both medians, and the edge's as a multiple of nginx-cache's. */
export function describeWarmAb(result: WarmAbResult, rounds: number): string[] {
  const pulls = result.pulls.map(
    (p) =>
      `warm pull ${p.name}, median of ${rounds}: nginx-cache ${p.nginxCache.seconds.toFixed(2)} s, registry-edge ${p.registryEdge.seconds.toFixed(2)} s ` +
      `(${(p.registryEdge.seconds / p.nginxCache.seconds).toFixed(2)}x the time)` +
      (p.nodeFloor ? `, node-floor ${p.nodeFloor.seconds.toFixed(2)} s (${(p.nodeFloor.seconds / p.nginxCache.seconds).toFixed(2)}x)` : ''),
  );
  const side = (name: string, x: WarmAbSide): string =>
    `${name} ${x.mibPerSecond.toFixed(0)} MiB/s ${x.cpuPerGiB.toFixed(2)} cpu-s/GiB (client ${x.clientCpuPerGiB.toFixed(2)})`;
  return [...result.cases.map((k) => {
    const [n, e, f] = [k.nginxCache, k.registryEdge, k.nodeFloor];
    return (
      `${k.label}, median of ${rounds}: ${side('nginx-cache', n)}, ${side('registry-edge', e)} (${(e.mibPerSecond / n.mibPerSecond).toFixed(2)}x the throughput)` +
      (f ? `, ${side('node-floor', f)} (${(f.mibPerSecond / n.mibPerSecond).toFixed(2)}x)` : '')
    );
  }), ...pulls];
}

if (isMain(import.meta.url)) {
  runCli(async () => {
    const rounds = abRounds(5);
    const result = await warmAb({
      rounds,
      blobMiB: Number(process.env['AB_MIB'] ?? 256),
      streamCounts: (process.env['AB_STREAMS'] ?? '1,8').split(',').filter(Boolean).map(Number),
      cold: process.env['AB_COLD'] === '1',
      hold: process.env['AB_HOLD'] === '1',
      pulls: process.env['AB_PULLS'] === '1' ? [{ name: 'many', layers: Array.from({ length: 40 }, () => 256 * 1024) }] : [],
      floor: process.env['AB_FLOOR'] !== '0',
      edgeNodeArgs: edgeNodeArgs(),
      log: (line) => console.log(line),
    });
    for (const line of describeWarmAb(result, rounds)) console.log(line);
  });
}
