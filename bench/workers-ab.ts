// workers: 1 against workers: 2 on this machine, interleaved: the same edge and config over
// TLS, each with its own cache directory in front of one registry. Per round and side:
// 8 curl streams of a cached blob (MiB/s, CPU per GiB of all the edge's processes) and a
// herd of 16 curls on a blob neither has seen (wall time to the last byte, and how many
// times the registry was asked for it); and small hits, wrk's requests/s on a cached 6 KiB
// blob over 32 kept-alive TLS connections (where CPU per request, not bytes, is the cost).
// Prints each round, the medians and their ratios.
//
//   npm run build && node dist/bench/workers-ab.js
//   AB_ROUNDS=9 AB_MIB=128 WORKERS_B=4 node dist/bench/workers-ab.js
import * as fs from 'node:fs';
import * as path from 'node:path';
import { logLines, startEdge, type Edge } from '../test/helpers/edge.js';
import { pushBlob, randomFile } from '../test/helpers/image.js';
import { startRegistry } from '../test/helpers/registry.js';
import { startShim } from '../test/helpers/shim.js';
import { abRounds, isMain, median, MiB, runCli, withWork } from './ab.js';
import { makeCerts } from './certs.js';
import { curlClients } from './clients.js';
import { childrenOf, cpuSeconds } from './procfs.js';
import { runWrk } from './wrk.js';

const WARM_STREAMS = 8;
const HERD = 16;
const SMALL_BYTES = 6 * 1024;
const WRK_CONNECTIONS = 32;
const WRK_SECONDS = 5;

interface Side {
  readonly name: string;
  readonly edge: Edge;
  /** The serving processes: the edge, and with workers its children. */
  pids(): number[];
}

async function main(): Promise<void> {
  const rounds = abRounds(5);
  const blobMiB = Number(process.env['AB_MIB'] ?? 64);
  const workersB = Number(process.env['WORKERS_B'] ?? 2);
  await withWork('re-workers-ab-', async (work, stops) => {
    const certs = await makeCerts(path.join(work, 'certs'));
    const registry = await startRegistry({ logLevel: 'error' });
    stops.push(() => registry.dispose());
    // Counts how often the centre is asked for each herd's blob.
    const shim = await startShim(registry.url);
    stops.push(() => shim.stop());
    const file = path.join(work, 'blob.bin');
    const push = async (): Promise<{ digest: string; size: number }> => {
      await randomFile(file, blobMiB * MiB);
      return pushBlob(registry.url, 'ab/blob', file);
    };
    const warm = await push();
    fs.writeFileSync(file, Buffer.alloc(SMALL_BYTES, 7));
    const small = await pushBlob(registry.url, 'ab/blob', file);
    const cold: Array<{ digest: string; size: number }> = [];
    for (let i = 0; i < 2 * rounds; i++) cold.push(await push());
    fs.rmSync(file);

    const sides: Side[] = [];
    for (const workers of [1, workersB]) {
      const name = `workers ${workers}`;
      const dir = path.join(work, `edge-${workers}`);
      fs.mkdirSync(dir);
      const edge = await startEdge({
        workDir: dir,
        upstreams: [shim.url],
        env: { REGISTRY_EDGE_WORKERS: String(workers), REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: certs.cert, REGISTRY_EDGE_HTTP_TLS_KEY: certs.key },
      });
      stops.push(() => edge.stop());
      sides.push({ name, edge, pids: () => [edge.proc.pid, ...childrenOf(edge.proc.pid)] });
    }
    for (const side of sides) {
      // Warm: the first GET fills, the second finds the blob committed (in every worker: they share the directory).
      for (let i = 0; i < 2; i++) await curlClients(`${side.edge.url}/v2/ab/blob/blobs/${warm.digest}`, WARM_STREAMS, certs.caCert);
      await curlClients(`${side.edge.url}/v2/ab/blob/blobs/${small.digest}`, 1, certs.caCert);
    }

    const results = new Map<string, number[]>();
    const note = (key: string, value: number): void => void results.set(key, [...(results.get(key) ?? []), value]);
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? sides : [...sides].reverse();
      const line: string[] = [];
      for (const side of order) {
        const cpuBefore = cpuSeconds(side.pids());
        const run = await curlClients(`${side.edge.url}/v2/ab/blob/blobs/${warm.digest}`, WARM_STREAMS, certs.caCert);
        check(side, run.streams, warm.size);
        const bytes = WARM_STREAMS * warm.size;
        const mibps = bytes / MiB / ((run.endedAt - run.startedAt) / 1000);
        const cpuPerGiB = (cpuSeconds(side.pids()) - cpuBefore) / (bytes / (1024 * MiB));
        note(`${side.name} warm`, mibps);
        note(`${side.name} cpu`, cpuPerGiB);
        const blob = cold.shift();
        if (!blob) throw new Error('out of cold blobs');
        const herd = await curlClients(`${side.edge.url}/v2/ab/blob/blobs/${blob.digest}`, HERD, certs.caCert);
        check(side, herd.streams, blob.size);
        const seconds = (herd.endedAt - herd.startedAt) / 1000;
        note(`${side.name} herd`, seconds);
        note(`${side.name} fetches`, shim.stats.blobGets(blob.digest));
        const wrk = await runWrk({ url: `${side.edge.url}/v2/ab/blob/blobs/${small.digest}`, connections: WRK_CONNECTIONS, threads: 1, durationSeconds: WRK_SECONDS });
        if (wrk.errors > 0) throw new Error(`${side.name}: wrk saw ${wrk.errors} errors`);
        note(`${side.name} small`, wrk.requestsPerSecond);
        note(`${side.name} p99`, wrk.p99Ms);
        line.push(`${side.name}: small hits ${wrk.requestsPerSecond.toFixed(0)} req/s p99 ${wrk.p99Ms.toFixed(1)} ms, warm x${WARM_STREAMS} ${mibps.toFixed(0)} MiB/s ${cpuPerGiB.toFixed(2)} cpu-s/GiB, herd x${HERD} ${seconds.toFixed(2)} s (${shim.stats.blobGets(blob.digest)} upstream GET)`);
      }
      console.log(`round ${r + 1}: ${line.join('; ')}`);
    }
    const [a, b] = sides as [Side, Side];
    const med = (side: Side, what: string): number => median(results.get(`${side.name} ${what}`) ?? []);
    const spread = (side: Side, what: string): string => {
      const xs = results.get(`${side.name} ${what}`) ?? [];
      return `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;
    };
    const workers = logLines<{ msg?: string; workers?: number }>(b.edge.proc.logs()).find((l) => l.msg === 'registry-edge listening')?.workers;
    console.log(`\n${rounds} rounds, ${blobMiB} MiB blobs over TLS, ${workers ?? workersB} workers against 1; medians (range)\n`);
    console.log(`| measure | ${a.name} | ${b.name} | ratio |\n| --- | --- | --- | --- |`);
    const row = (label: string, what: string, digits: number): void =>
      console.log(`| ${label} | ${med(a, what).toFixed(digits)} (${spread(a, what)}) | ${med(b, what).toFixed(digits)} (${spread(b, what)}) | ${(med(b, what) / med(a, what)).toFixed(2)}x |`);
    row(`warm x${WARM_STREAMS}: MiB/s`, 'warm', 0);
    row(`warm x${WARM_STREAMS}: CPU s per GiB`, 'cpu', 2);
    row(`herd x${HERD} on a cold blob: wall s`, 'herd', 2);
    row(`herd x${HERD}: upstream GETs of the blob`, 'fetches', 0);
    row(`small hits (6 KiB, wrk -c${WRK_CONNECTIONS}): requests/s`, 'small', 0);
    row('small hits: p99 ms', 'p99', 1);
  });
}

function check(side: Side, streams: ReadonlyArray<{ status: number; bytes: number; error?: string }>, size: number): void {
  const bad = streams.find((x) => x.status !== 200 || x.bytes !== size);
  if (bad) throw new Error(`${side.name}: status ${bad.status}, ${bad.bytes} of ${size} bytes ${bad.error ?? ''}`);
}

if (isMain(import.meta.url)) runCli(main);
