// Cold pull of the big image through the WAN-like link, interleaved: direct (HTTP),
// nginx as the Registry Proxy (TLS, no cache), nginx proxy_cache (TLS), node-proxy (a
// bare Node.js TLS + undici pass-through, bench/node-proxy.ts), registry-edge over TLS
// and over plain HTTP, each round with a fresh link and a cold cache, with the CPU
// seconds the serving process used and how busy the whole machine was. It tells the
// costs apart: nginx-proxy against direct is TLS and one hop, node-proxy against
// nginx-proxy is Node.js and undici, registry-edge against node-proxy is the edge's own
// work (hash, temp file, readers), registry-edge-http against direct is the edge
// without TLS.
// `npm run bench` runs it after the sequential contenders; alone, it is for profiling:
//
//   npm run build && node dist/bench/cold-pull-ab.js
//   AB_WARMUP=1 node dist/bench/cold-pull-ab.js   (each server first pulls another, small image)
//   AB_KINDS=direct,registry-edge AB_ROUNDS=5 AB_EDGE_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" node dist/bench/cold-pull-ab.js
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startEdge } from '../test/helpers/edge.js';
import { makeOciLayout, pullImage, pushImage } from '../test/helpers/image.js';
import { removeDir } from '../test/helpers/proc.js';
import { startRegistry } from '../test/helpers/registry.js';
import { abRounds, edgeNodeArgs, isMain, median, MiB, runCli, startNodeProxy, withWork } from './ab.js';
import { makeCerts } from './certs.js';
import { startLink } from './link.js';
import { startNginx } from './nginx.js';
import { cpuSeconds, machineBusyMeter } from './procfs.js';

export const COLD_KINDS = ['direct', 'nginx-proxy', 'nginx-cache', 'node-proxy', 'registry-edge', 'registry-edge-http'] as const;
export type ColdKind = (typeof COLD_KINDS)[number];
const isKind = (k: string): k is ColdKind => (COLD_KINDS as readonly string[]).includes(k);

export interface ColdPullAbOptions {
  rounds: number;
  kinds: ColdKind[];
  /** Layers of the image pulled, in bytes. */
  layers: number[];
  /**
   * Each server first serves one pull of another, small image. A fresh edge compiles its
   * hot paths (JIT, undici's llhttp wasm) during its first pull, which a long-running
   * edge has done long before: perf put 29% of a fresh edge's CPU over a cold pull in
   * V8's compiler and parser.
   */
  warmup: boolean;
  linkLatencyMs: number;
  linkMiBps: number;
  edgeNodeArgs: string[];
  log(line: string): void;
}

export interface ColdPullAbKind {
  kind: ColdKind;
  /** Median wall seconds of the pull (skopeo, start-up included). */
  seconds: number;
  /** Median CPU seconds of the serving processes (0 for direct). */
  cpuSeconds: number;
  /** Median share of all cores busy during the pull. */
  machineBusy: number;
  /** Seconds of every round. */
  runs: number[];
}

interface Served {
  host: string;
  tls: boolean;
  pids(): number[];
  stop(): Promise<void>;
}

export function coldPullAb(o: ColdPullAbOptions): Promise<ColdPullAbKind[]> {
  return withWork('re-cold-ab-', async (work, stops) => {
    const certs = await makeCerts(path.join(work, 'certs'));
    const registry = await startRegistry({ logLevel: 'error' });
    stops.push(() => registry.dispose());
    const layout = path.join(work, 'layout');
    await makeOciLayout(layout, { layers: o.layers, tag: '1.0' });
    await pushImage(layout, '1.0', `${registry.host}/bench/big:1.0`, { timeoutMs: 600_000 });
    removeDir(layout);
    if (o.warmup) {
      await makeOciLayout(layout, { layers: [8 * MiB, 4 * MiB], tag: '1.0' });
      await pushImage(layout, '1.0', `${registry.host}/bench/warmup:1.0`, { timeoutMs: 600_000 });
      removeDir(layout);
    }
    const seconds = new Map<ColdKind, number[]>();
    const cpu = new Map<ColdKind, number[]>();
    const busy = new Map<ColdKind, number[]>();
    const add = (m: Map<ColdKind, number[]>, k: ColdKind, v: number): void => void m.set(k, [...(m.get(k) ?? []), v]);
    for (let r = 0; r < o.rounds; r++) {
      const line: string[] = [];
      for (const kind of r % 2 === 0 ? o.kinds : [...o.kinds].reverse()) {
        const link = await startLink({ targetHost: '127.0.0.1', targetPort: registry.port, latencyMs: o.linkLatencyMs, bytesPerSecond: o.linkMiBps * MiB, windowBytes: 4 * MiB });
        const dir = path.join(work, `${kind}-${r}`);
        fs.mkdirSync(dir);
        let served: Served;
        if (kind === 'direct') {
          served = { host: link.host, tls: false, pids: () => [], stop: async () => undefined };
        } else if (kind === 'nginx-proxy' || kind === 'nginx-cache') {
          const n = await startNginx({ dir, upstream: link.host, cacheBlobs: kind === 'nginx-cache', tls: certs });
          served = { host: n.host, tls: true, pids: () => n.pids(), stop: () => n.stop() };
        } else if (kind === 'node-proxy') {
          const p = await startNodeProxy({ upstream: link.url, cert: certs.cert, key: certs.key, dir });
          served = { host: p.host, tls: true, pids: () => [p.pid], stop: () => p.stop() };
        } else {
          const tls = kind === 'registry-edge';
          const e = await startEdge({
            workDir: dir,
            upstreams: [link.url],
            env: tls ? { REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: certs.cert, REGISTRY_EDGE_HTTP_TLS_KEY: certs.key } : {},
            nodeArgs: o.edgeNodeArgs,
          });
          served = { host: e.host, tls, pids: () => [e.proc.pid], stop: () => e.stop() };
        }
        try {
          const pullOptions = served.tls ? { certDir: certs.skopeoCertDir, timeoutMs: 600_000 } : { timeoutMs: 600_000 };
          if (o.warmup) {
            const warmed = await pullImage(`${served.host}/bench/warmup:1.0`, path.join(dir, 'warmup'), pullOptions);
            if (warmed.code !== 0) throw new Error(`${kind}: skopeo failed on the warm-up image: ${warmed.stderr.trim()}`);
          }
          const cpuBefore = cpuSeconds(served.pids());
          const busyShare = machineBusyMeter();
          const pulled = await pullImage(`${served.host}/bench/big:1.0`, path.join(dir, 'pull'), pullOptions);
          if (pulled.code !== 0) throw new Error(`${kind}: skopeo failed: ${pulled.stderr.trim()}`);
          const used = cpuSeconds(served.pids()) - cpuBefore;
          // How much of every core the pull kept busy (skopeo, the link, the centre and the server):
          // near 100% the pull is bound by CPU, and every CPU second the server spends adds to it.
          const machine = busyShare(pulled.seconds);
          add(seconds, kind, pulled.seconds);
          add(cpu, kind, used);
          add(busy, kind, machine);
          line.push(`${kind} ${pulled.seconds.toFixed(2)} s, ${used.toFixed(2)} CPU s, machine ${(machine * 100).toFixed(0)}% busy`);
        } finally {
          await served.stop();
          await link.stop();
          removeDir(dir);
        }
      }
      o.log(`round ${r + 1}: ${line.join(', ')}`);
    }
    return o.kinds.map((kind) => ({
      kind,
      seconds: median(seconds.get(kind) ?? []),
      cpuSeconds: median(cpu.get(kind) ?? []),
      machineBusy: median(busy.get(kind) ?? []),
      runs: (seconds.get(kind) ?? []).map((x) => Number(x.toFixed(2))),
    }));
  });
}

/** One line: each kind's medians, and its time as a multiple of direct's. */
export function describeColdPullAb(kinds: ColdPullAbKind[], rounds: number): string {
  const direct = kinds.find((k) => k.kind === 'direct')?.seconds ?? 0;
  const vsDirect = (k: ColdPullAbKind): string => (direct > 0 && k.kind !== 'direct' ? ` (${(k.seconds / direct).toFixed(2)}x direct)` : '');
  return `median of ${rounds}: ${kinds.map((k) => `${k.kind} ${k.seconds.toFixed(2)} s${vsDirect(k)}, ${k.cpuSeconds.toFixed(2)} CPU s`).join('; ')}`;
}

if (isMain(import.meta.url)) {
  runCli(async () => {
    const rounds = abRounds(3);
    const kinds = (process.env['AB_KINDS'] ?? COLD_KINDS.join(',')).split(',').filter(Boolean).map((k) => {
      if (!isKind(k)) throw new Error(`AB_KINDS: unknown ${k} (one of ${COLD_KINDS.join(', ')})`);
      return k;
    });
    const result = await coldPullAb({
      rounds,
      kinds,
      layers: [256 * MiB, 32 * MiB, 32 * MiB],
      warmup: process.env['AB_WARMUP'] === '1',
      linkLatencyMs: 5,
      linkMiBps: 200,
      edgeNodeArgs: edgeNodeArgs(),
      log: (line) => console.log(line),
    });
    console.log(describeColdPullAb(result, rounds));
  });
}
