// Peak RSS of the edge over cold fills, interleaved between variants of how it is started
// (environment and Node.js flags): each sample is a fresh edge process with an empty cache
// that fills the same blobs from a local docker-registry (no link), one after another or
// all at once, each for one client or a herd of them, over HTTP or TLS, and then reports
// its VmHWM, the CPU seconds of the fills and their MiB/s (blob bytes over wall time).
// The rounds alternate the order of the variants, so whatever else the machine does hits
// them alike.
//
//   npm run build && node dist/bench/fill-rss-ab.js
//   AB_VARIANTS='default:;semi1:--max-semi-space-size=1' AB_ROUNDS=5 node dist/bench/fill-rss-ab.js
//   AB_PARALLEL=1 AB_FILLS=3 node dist/bench/fill-rss-ab.js   (the fills at once, as containerd's 3 layer downloads)
//   AB_FILLS=1 AB_CLIENTS=16 AB_TLS=1 node dist/bench/fill-rss-ab.js   (the herd of npm run bench: 16 curls on one cold blob)
//
// AB_VARIANTS is `name:words;name:words`, a word being NAME=value (environment of the
// edge) or a Node.js flag (--max-semi-space-size=1).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startEdge } from '../test/helpers/edge.js';
import { pushBlob, randomFile } from '../test/helpers/image.js';
import { startRegistry } from '../test/helpers/registry.js';
import { abRounds, isMain, median, MiB, runCli, withWork } from './ab.js';
import { makeCerts } from './certs.js';
import { curlClients } from './clients.js';
import { cpuSeconds, peakRssBytes } from './procfs.js';

interface Variant {
  name: string;
  env: Record<string, string>;
  nodeArgs: string[];
}

interface Sample {
  peakRssMiB: number;
  cpuSeconds: number;
  mibPerSecond: number;
}

/** Parses AB_VARIANTS (see the head of this file). */
export function parseVariants(text: string): Variant[] {
  return text
    .split(';')
    .filter((v) => v.trim() !== '')
    .map((v) => {
      const colon = v.indexOf(':');
      const name = (colon < 0 ? v : v.slice(0, colon)).trim();
      const words = colon < 0 ? [] : v.slice(colon + 1).split(' ').filter(Boolean);
      const env: Record<string, string> = {};
      const nodeArgs: string[] = [];
      for (const w of words) {
        const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(w);
        if (m?.[1] !== undefined) env[m[1]] = m[2] ?? '';
        else nodeArgs.push(w);
      }
      return { name, env, nodeArgs };
    });
}

export interface FillRssOptions {
  rounds: number;
  blobMiB: number;
  /** Blobs each edge fills. */
  fills: number;
  /** All fills at once rather than one after another. */
  parallel: boolean;
  /** curl clients that ask for each blob together. */
  clients: number;
  tls: boolean;
  variants: Variant[];
  log(line: string): void;
}

export function fillRssAb(o: FillRssOptions): Promise<Map<string, Sample[]>> {
  return withWork('re-rss-', async (work, stops) => {
    const certs = o.tls ? await makeCerts(path.join(work, 'certs')) : undefined;
    const tlsEnv: Record<string, string> = certs ? { REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: certs.cert, REGISTRY_EDGE_HTTP_TLS_KEY: certs.key } : {};
    const registry = await startRegistry({ logLevel: 'error' });
    stops.push(() => registry.dispose());
    const file = path.join(work, 'blob.bin');
    const blobs: Array<{ digest: string; size: number }> = [];
    for (let i = 0; i < o.fills; i++) {
      await randomFile(file, o.blobMiB * MiB);
      blobs.push(await pushBlob(registry.url, 'ab/blob', file));
    }
    fs.rmSync(file);
    const samples = new Map<string, Sample[]>(o.variants.map((v) => [v.name, []]));
    let n = 0;
    for (let r = 0; r < o.rounds; r++) {
      const order = r % 2 === 0 ? o.variants : [...o.variants].reverse();
      const line: string[] = [];
      for (const v of order) {
        const dir = path.join(work, `edge-${++n}`);
        fs.mkdirSync(dir);
        const edge = await startEdge({ workDir: dir, upstreams: [registry.url], env: { ...tlsEnv, ...v.env }, nodeArgs: v.nodeArgs });
        try {
          const fill = async (b: { digest: string; size: number }): Promise<void> => {
            const run = await curlClients(`${edge.url}/v2/ab/blob/blobs/${b.digest}`, o.clients, certs?.caCert);
            const bad = run.streams.find((x) => x.status !== 200 || x.bytes !== b.size);
            if (bad) throw new Error(`${v.name}: status ${bad.status}, ${bad.bytes} of ${b.size} bytes ${bad.error ?? ''}`);
          };
          const cpuBefore = cpuSeconds([edge.proc.pid]);
          const started = Date.now();
          if (o.parallel) await Promise.all(blobs.map(fill));
          else for (const b of blobs) await fill(b);
          const seconds = (Date.now() - started) / 1000;
          const sample = {
            peakRssMiB: (peakRssBytes(edge.proc.pid) ?? 0) / MiB,
            cpuSeconds: cpuSeconds([edge.proc.pid]) - cpuBefore,
            mibPerSecond: (o.fills * o.blobMiB) / seconds,
          };
          samples.get(v.name)?.push(sample);
          line.push(`${v.name} ${sample.peakRssMiB.toFixed(0)} MiB peak, ${sample.mibPerSecond.toFixed(0)} MiB/s, ${sample.cpuSeconds.toFixed(2)} CPU s`);
        } finally {
          await edge.stop();
          fs.rmSync(dir, { recursive: true, force: true });
        }
      }
      o.log(`round ${r + 1}: ${line.join('; ')}`);
    }
    return samples;
  });
}

if (isMain(import.meta.url)) {
  runCli(async () => {
    const rounds = abRounds(5);
    const fills = Number(process.env['AB_FILLS'] ?? 4);
    const blobMiB = Number(process.env['AB_MIB'] ?? 256);
    const parallel = process.env['AB_PARALLEL'] === '1';
    const clients = Number(process.env['AB_CLIENTS'] ?? 1);
    const tls = process.env['AB_TLS'] === '1';
    const variants = parseVariants(process.env['AB_VARIANTS'] ?? 'default:');
    const samples = await fillRssAb({ rounds, blobMiB, fills, parallel, clients, tls, variants, log: (line) => console.log(line) });
    console.log(
      `${fills} cold ${blobMiB} MiB fills ${parallel ? 'at once' : 'one after another'}, ${clients} client(s) each over ${tls ? 'TLS' : 'HTTP'}, ` +
        `per fresh edge, median of ${rounds}:`,
    );
    for (const [name, s] of samples) {
      const range = (xs: number[]): string => `${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)}`;
      const rss = s.map((x) => x.peakRssMiB);
      const rate = s.map((x) => x.mibPerSecond);
      console.log(
        `${name}: peak RSS ${median(rss).toFixed(0)} MiB (${range(rss)}), ${median(rate).toFixed(0)} MiB/s (${range(rate)}), ` +
          `${median(s.map((x) => x.cpuSeconds)).toFixed(2)} CPU s`,
      );
    }
  });
}
