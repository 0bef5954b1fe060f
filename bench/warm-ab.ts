// Warm-blob throughput of registry-edge against nginx proxy_cache, interleaved, for
// profiling the hot path: both serve the same cached blob over TLS with the same
// certificate, and the rounds alternate between them so machine noise hits both alike.
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
import { abRounds, edgeNodeArgs, median, MiB, runAb } from './ab.js';
import { makeCerts } from './certs.js';
import { curlClients } from './clients.js';
import { startNginx } from './nginx.js';
import { cpuSeconds } from './procfs.js';

const rounds = abRounds(5);
const blobMiB = Number(process.env['AB_MIB'] ?? 256);
const streamCounts = (process.env['AB_STREAMS'] ?? '1,8').split(',').filter(Boolean).map(Number);
const coldRuns = process.env['AB_COLD'] === '1';

interface Contender {
  name: string;
  url: string;
  pids(): number[];
}

runAb('re-ab-', async (work, stops) => {
  const certs = await makeCerts(path.join(work, 'certs'));
  const registry = await startRegistry({ logLevel: 'error' });
  stops.push(() => registry.dispose());
  const file = path.join(work, 'blob.bin');
  await randomFile(file, blobMiB * MiB);
  const blob = await pushBlob(registry.url, 'ab/blob', file);
  const coldBlobs: Array<{ digest: string; size: number }> = [];
  for (let i = 0; i < (coldRuns ? 2 * rounds : 0); i++) {
    await randomFile(file, blobMiB * MiB);
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
    nodeArgs: edgeNodeArgs(),
  });
  stops.push(() => edge.stop());
  const contenders: Contender[] = [
    { name: 'nginx-cache', url: nginx.url, pids: () => nginx.pids() },
    { name: 'registry-edge', url: edge.url, pids: () => [edge.proc.pid] },
  ];
  const rates = new Map<string, number[]>();
  const cpu = new Map<string, number[]>();
  for (const c of contenders) {
    const url = `${c.url}/v2/ab/blob/blobs/${blob.digest}`;
    // Warm twice: nginx caches on the first full answer, the edge commits after its fill.
    for (let i = 0; i < 2; i++) await curlClients(url, 1, certs.caCert);
  }
  if (process.env['AB_HOLD'] === '1') {
    // For measuring by hand (perf, strace, other clients): everything stays up until stdin closes.
    for (const c of contenders) console.log(`${c.name} ${c.url}/v2/ab/blob/blobs/${blob.digest} pids ${c.pids().join(' ')}`);
    for (const b of coldBlobs) console.log(`cold ${b.digest}`);
    console.log(`ca ${certs.caCert}; close stdin to stop`);
    process.stdin.resume();
    await new Promise((resolve) => process.stdin.once('end', resolve));
  }
  // Cases: the warm blob at each stream count, and (AB_COLD=1) one stream on a blob this
  // contender has not seen, so the fill path (upstream read, hash, temp file) is measured.
  const cases = [...streamCounts.map((streams) => ({ label: `warm x${streams}`, streams, cold: false })), ...(coldBlobs.length > 0 ? [{ label: 'cold x1', streams: 1, cold: true }] : [])];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? contenders : [...contenders].reverse();
    const line: string[] = [];
    for (const kase of cases) {
      for (const c of order) {
        const target = kase.cold ? coldBlobs.shift() : blob;
        if (!target) throw new Error('out of cold blobs');
        const cpuBefore = cpuSeconds(c.pids());
        const run = await curlClients(`${c.url}/v2/ab/blob/blobs/${target.digest}`, kase.streams, certs.caCert);
        const bad = run.streams.find((x) => x.status !== 200 || x.bytes !== target.size);
        if (bad) throw new Error(`${c.name}: status ${bad.status}, ${bad.bytes} of ${target.size} bytes ${bad.error ?? ''}`);
        const bytes = kase.streams * target.size;
        const mibps = bytes / MiB / ((run.endedAt - run.startedAt) / 1000);
        const cpuPerGiB = (cpuSeconds(c.pids()) - cpuBefore) / (bytes / (1024 * MiB));
        const key = `${c.name} ${kase.label}`;
        rates.set(key, [...(rates.get(key) ?? []), mibps]);
        cpu.set(key, [...(cpu.get(key) ?? []), cpuPerGiB]);
        line.push(`${key} ${mibps.toFixed(0)} MiB/s ${cpuPerGiB.toFixed(2)} cpu-s/GiB`);
      }
    }
    console.log(`round ${r + 1}: ${line.join(', ')}`);
  }
  for (const kase of cases) {
    const m = (what: Map<string, number[]>, name: string): number => median(what.get(`${name} ${kase.label}`) ?? []);
    const [n, e] = [m(rates, 'nginx-cache'), m(rates, 'registry-edge')];
    console.log(
      `${kase.label}, median of ${rounds}: nginx-cache ${n.toFixed(0)} MiB/s ${m(cpu, 'nginx-cache').toFixed(2)} cpu-s/GiB, ` +
        `registry-edge ${e.toFixed(0)} MiB/s ${m(cpu, 'registry-edge').toFixed(2)} cpu-s/GiB (${(e / n).toFixed(2)}x the throughput)`,
    );
  }
});
