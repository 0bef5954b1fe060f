// Cold pull of the big image through the WAN-like link, interleaved: direct (HTTP),
// nginx as the Registry Proxy (TLS, no cache), nginx proxy_cache (TLS), registry-edge
// over TLS and over plain HTTP, each round with a fresh link and a cold cache, with the
// CPU seconds the serving process used. For profiling the fill path, and for telling
// what TLS costs from what the edge costs: nginx-proxy against direct is TLS and one
// proxy hop alone, registry-edge-http against direct is the edge without TLS. The full
// comparison is `npm run bench`.
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
import { abRounds, edgeNodeArgs, median, MiB, runAb } from './ab.js';
import { makeCerts } from './certs.js';
import { startLink } from './link.js';
import { startNginx } from './nginx.js';
import * as os from 'node:os';
import { cpuSeconds, machineBusySeconds } from './procfs.js';

const rounds = abRounds(3);
// A fresh edge compiles its hot paths (JIT, undici's llhttp wasm) during its first pull,
// which a long-running edge has done long before: perf put 29% of a fresh edge's CPU
// over a cold pull in V8's compiler and parser.
const warmup = process.env['AB_WARMUP'] === '1';
const KINDS = ['direct', 'nginx-proxy', 'nginx-cache', 'registry-edge', 'registry-edge-http'] as const;
type Kind = (typeof KINDS)[number];
const isKind = (k: string): k is Kind => (KINDS as readonly string[]).includes(k);
const kinds: Kind[] = (process.env['AB_KINDS'] ?? KINDS.join(',')).split(',').filter(Boolean).map((k) => {
  if (!isKind(k)) throw new Error(`AB_KINDS: unknown ${k} (one of ${KINDS.join(', ')})`);
  return k;
});

interface Served {
  host: string;
  tls: boolean;
  pids(): number[];
  stop(): Promise<void>;
}

runAb('re-cold-ab-', async (work, stops) => {
  const certs = await makeCerts(path.join(work, 'certs'));
  const registry = await startRegistry({ logLevel: 'error' });
  stops.push(() => registry.dispose());
  const layout = path.join(work, 'layout');
  await makeOciLayout(layout, { layers: [256 * MiB, 32 * MiB, 32 * MiB], tag: '1.0' });
  await pushImage(layout, '1.0', `${registry.host}/bench/big:1.0`, { timeoutMs: 600_000 });
  removeDir(layout);
  if (warmup) {
    await makeOciLayout(layout, { layers: [8 * MiB, 4 * MiB], tag: '1.0' });
    await pushImage(layout, '1.0', `${registry.host}/bench/warmup:1.0`, { timeoutMs: 600_000 });
    removeDir(layout);
  }
  const seconds = new Map<string, number[]>();
  const cpu = new Map<string, number[]>();
  for (let r = 0; r < rounds; r++) {
    const line: string[] = [];
    for (const kind of r % 2 === 0 ? kinds : [...kinds].reverse()) {
      const link = await startLink({ targetHost: '127.0.0.1', targetPort: registry.port, latencyMs: 5, bytesPerSecond: 200 * MiB, windowBytes: 4 * MiB });
      const dir = path.join(work, `${kind}-${r}`);
      fs.mkdirSync(dir);
      let served: Served;
      if (kind === 'direct') {
        served = { host: link.host, tls: false, pids: () => [], stop: async () => undefined };
      } else if (kind === 'nginx-proxy' || kind === 'nginx-cache') {
        const n = await startNginx({ dir, upstream: link.host, cacheBlobs: kind === 'nginx-cache', tls: certs });
        served = { host: n.host, tls: true, pids: () => n.pids(), stop: () => n.stop() };
      } else {
        const tls = kind === 'registry-edge';
        const e = await startEdge({
          workDir: dir,
          upstreams: [link.url],
          env: tls ? { REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: certs.cert, REGISTRY_EDGE_HTTP_TLS_KEY: certs.key } : {},
          nodeArgs: edgeNodeArgs(),
        });
        served = { host: e.host, tls, pids: () => [e.proc.pid], stop: () => e.stop() };
      }
      try {
        const pullOptions = served.tls ? { certDir: certs.skopeoCertDir, timeoutMs: 600_000 } : { timeoutMs: 600_000 };
        if (warmup) {
          const warmed = await pullImage(`${served.host}/bench/warmup:1.0`, path.join(dir, 'warmup'), pullOptions);
          if (warmed.code !== 0) throw new Error(`${kind}: skopeo failed on the warm-up image: ${warmed.stderr.trim()}`);
        }
        const cpuBefore = cpuSeconds(served.pids());
        const busyBefore = machineBusySeconds();
        const pulled = await pullImage(`${served.host}/bench/big:1.0`, path.join(dir, 'pull'), pullOptions);
        if (pulled.code !== 0) throw new Error(`${kind}: skopeo failed: ${pulled.stderr.trim()}`);
        const used = cpuSeconds(served.pids()) - cpuBefore;
        // How much of every core the pull kept busy (skopeo, the link, the centre and the server):
        // near 100% the pull is bound by CPU, and every CPU second the server spends adds to it.
        const busy = (machineBusySeconds() - busyBefore) / (pulled.seconds * os.cpus().length);
        seconds.set(kind, [...(seconds.get(kind) ?? []), pulled.seconds]);
        cpu.set(kind, [...(cpu.get(kind) ?? []), used]);
        line.push(`${kind} ${pulled.seconds.toFixed(2)} s, ${used.toFixed(2)} CPU s, machine ${(busy * 100).toFixed(0)}% busy`);
      } finally {
        await served.stop();
        await link.stop();
        removeDir(dir);
      }
    }
    console.log(`round ${r + 1}: ${line.join(', ')}`);
  }
  const direct = median(seconds.get('direct') ?? []);
  const vsDirect = (k: Kind): string => (direct > 0 && k !== 'direct' ? ` (${(median(seconds.get(k) ?? []) / direct).toFixed(2)}x direct)` : '');
  const m = (what: Map<string, number[]>, k: Kind): string => median(what.get(k) ?? []).toFixed(2);
  console.log(`median of ${rounds}: ${kinds.map((k) => `${k} ${m(seconds, k)} s${vsDirect(k)}, ${m(cpu, k)} CPU s`).join('; ')}`);
});
