// Cold pull of the big image through the WAN-like link, interleaved: direct, nginx
// proxy_cache and registry-edge (TLS), each round with a fresh link and a cold cache,
// with the CPU seconds the serving process used. For profiling the fill path; the full
// comparison is `npm run bench`.
//
//   npm run build && node dist/bench/cold-pull-ab.js
//   AB_ROUNDS=5 AB_EDGE_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" node dist/bench/cold-pull-ab.js
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
import { cpuSeconds } from './procfs.js';

const rounds = abRounds(3);
const kinds = ['direct', 'nginx-cache', 'registry-edge'] as const;

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
  const seconds = new Map<string, number[]>();
  for (let r = 0; r < rounds; r++) {
    const line: string[] = [];
    for (const kind of r % 2 === 0 ? kinds : [...kinds].reverse()) {
      const link = await startLink({ targetHost: '127.0.0.1', targetPort: registry.port, latencyMs: 5, bytesPerSecond: 200 * MiB, windowBytes: 4 * MiB });
      const dir = path.join(work, `${kind}-${r}`);
      fs.mkdirSync(dir);
      let served: Served;
      if (kind === 'direct') {
        served = { host: link.host, tls: false, pids: () => [], stop: async () => undefined };
      } else if (kind === 'nginx-cache') {
        const n = await startNginx({ dir, upstream: link.host, cacheBlobs: true, tls: certs });
        served = { host: n.host, tls: true, pids: () => n.pids(), stop: () => n.stop() };
      } else {
        const e = await startEdge({
          workDir: dir,
          upstreams: [link.url],
          env: { REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: certs.cert, REGISTRY_EDGE_HTTP_TLS_KEY: certs.key },
          nodeArgs: edgeNodeArgs(),
        });
        served = { host: e.host, tls: true, pids: () => [e.proc.pid], stop: () => e.stop() };
      }
      try {
        const cpuBefore = cpuSeconds(served.pids());
        const pulled = await pullImage(`${served.host}/bench/big:1.0`, path.join(dir, 'pull'), served.tls ? { certDir: certs.skopeoCertDir, timeoutMs: 600_000 } : { timeoutMs: 600_000 });
        if (pulled.code !== 0) throw new Error(`${kind}: skopeo failed: ${pulled.stderr.trim()}`);
        seconds.set(kind, [...(seconds.get(kind) ?? []), pulled.seconds]);
        line.push(`${kind} ${pulled.seconds.toFixed(2)} s, ${(cpuSeconds(served.pids()) - cpuBefore).toFixed(2)} CPU s`);
      } finally {
        await served.stop();
        await link.stop();
        removeDir(dir);
      }
    }
    console.log(`round ${r + 1}: ${line.join(', ')}`);
  }
  console.log(`median of ${rounds}: ${kinds.map((k) => `${k} ${median(seconds.get(k) ?? []).toFixed(2)} s`).join(', ')}`);
});
