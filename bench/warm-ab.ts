// Warm-blob throughput of registry-edge against nginx proxy_cache, interleaved: both serve
// the same cached blob over TLS with the same certificate, and the rounds alternate
// between them so machine noise hits both alike. `npm run bench` runs it after the
// sequential contenders; alone, it is for profiling the hot path:
//
//   npm run build && node dist/bench/warm-ab.js
//   AB_COLD=1 AB_STREAMS= node dist/bench/warm-ab.js   (cold fills only, no link: the fill path's cost)
//   AB_HOLD=1 node dist/bench/warm-ab.js   (keeps both up for measuring by hand)
//   AB_ROUNDS=7 AB_MIB=256 AB_STREAMS=1,8 AB_EDGE_NODE_ARGS=--cpu-prof node dist/bench/warm-ab.js
//
// No link: the blob is fetched once from the centre to warm each cache, then only the
// cache is measured. Prints each round and the medians.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startEdge } from '../test/helpers/edge.js';
import { pushBlob, randomFile } from '../test/helpers/image.js';
import { startRegistry } from '../test/helpers/registry.js';
import { abRounds, edgeNodeArgs, isMain, median, MiB, runCli, withWork } from './ab.js';
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

export interface WarmAbCase {
  label: string;
  streams: number;
  cold: boolean;
  nginxCache: WarmAbSide;
  registryEdge: WarmAbSide;
}

interface Contender {
  name: 'nginx-cache' | 'registry-edge';
  url: string;
  pids(): number[];
}

export function warmAb(o: WarmAbOptions): Promise<WarmAbCase[]> {
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
      { name: 'nginx-cache', url: nginx.url, pids: () => nginx.pids() },
      { name: 'registry-edge', url: edge.url, pids: () => [edge.proc.pid] },
    ];
    const rates = new Map<string, number[]>();
    const cpu = new Map<string, number[]>();
    const clientCpu = new Map<string, number[]>();
    for (const c of contenders) {
      const url = `${c.url}/v2/ab/blob/blobs/${blob.digest}`;
      // Warm twice: nginx caches on the first full answer, the edge commits after its fill.
      for (let i = 0; i < 2; i++) await curlClients(url, 1, certs.caCert);
    }
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
    return cases.map((k) => ({ ...k, nginxCache: side('nginx-cache', k.label), registryEdge: side('registry-edge', k.label) }));
  });
}

/** One line per case: both medians and the edge's throughput as a multiple of nginx-cache's. */
export function describeWarmAb(cases: WarmAbCase[], rounds: number): string[] {
  return cases.map((k) => {
    const [n, e] = [k.nginxCache, k.registryEdge];
    return (
      `${k.label}, median of ${rounds}: nginx-cache ${n.mibPerSecond.toFixed(0)} MiB/s ${n.cpuPerGiB.toFixed(2)} cpu-s/GiB (client ${n.clientCpuPerGiB.toFixed(2)}), ` +
      `registry-edge ${e.mibPerSecond.toFixed(0)} MiB/s ${e.cpuPerGiB.toFixed(2)} cpu-s/GiB (client ${e.clientCpuPerGiB.toFixed(2)}) (${(e.mibPerSecond / n.mibPerSecond).toFixed(2)}x the throughput)`
    );
  });
}

if (isMain(import.meta.url)) {
  runCli(async () => {
    const rounds = abRounds(5);
    const cases = await warmAb({
      rounds,
      blobMiB: Number(process.env['AB_MIB'] ?? 256),
      streamCounts: (process.env['AB_STREAMS'] ?? '1,8').split(',').filter(Boolean).map(Number),
      cold: process.env['AB_COLD'] === '1',
      hold: process.env['AB_HOLD'] === '1',
      edgeNodeArgs: edgeNodeArgs(),
      log: (line) => console.log(line),
    });
    for (const line of describeWarmAb(cases, rounds)) console.log(line);
  });
}
