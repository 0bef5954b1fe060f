// Zone egress: bytes of blobs the centre sends for one cold pull of an image through
// three replicas, as a multiple of the image's blob bytes. Three set-ups, each with fresh
// caches: the replicas alone (no zone.redis.url), a zone pulling through all three at once
// (one Redis, peer listeners), and a zone pulling through one replica after another (no
// fill in flight then: the later replicas stream each blob from one that has committed it).
//
//   npm run build && node dist/bench/zone-egress.js
//   ZONE_LAYERS=8 ZONE_LAYER_MIB=16 ZONE_LINK_MIBPS=32 node dist/bench/zone-egress.js
import * as path from 'node:path';
import { makeOciLayout, pullImage, pushImage } from '../test/helpers/image.js';
import { startRedis } from '../test/helpers/redis.js';
import { startRegistry } from '../test/helpers/registry.js';
import { startShim } from '../test/helpers/shim.js';
import { startZoneReplica, type ZoneReplica } from '../test/helpers/zone-replica.js';
import { isMain, MiB, runCli, withWork } from './ab.js';

const REPLICAS = 3;
type Setup = 'alone, at once' | 'zone, at once' | 'zone, one after another';

async function main(): Promise<void> {
  const layers = Number(process.env['ZONE_LAYERS'] ?? 4);
  const layerMiB = Number(process.env['ZONE_LAYER_MIB'] ?? 8);
  const linkMiBps = Number(process.env['ZONE_LINK_MIBPS'] ?? 16);
  await withWork('re-zone-egress-', async (work, stops) => {
    const registry = await startRegistry();
    stops.push(() => registry.dispose());
    const image = await makeOciLayout(path.join(work, 'layout'), { layers: Array.from({ length: layers }, () => layerMiB * MiB) });
    await pushImage(image.layoutDir, image.tag, `${registry.host}/bench/zone:v1`);
    const imageBytes = image.layers.reduce((n, l) => n + l.size, 0) + image.configBytes.length;
    const rows: Array<{ setup: Setup; multiple: number; seconds: number }> = [];
    for (const setup of ['alone, at once', 'zone, at once', 'zone, one after another'] as const) {
      const shim = await startShim(registry.url);
      // The link to the centre is the scarce thing: blob bodies at ZONE_LINK_MIBPS each (fills last, as over a WAN).
      shim.setFault({ kind: 'slow-body', bytesPerSecond: linkMiBps * MiB, pathPattern: /\/blobs\//, method: 'GET' });
      const redis = await startRedis();
      const dir = path.join(work, setup.replace(/\W+/g, '-'));
      const replicas: ZoneReplica[] = [];
      try {
        for (let i = 0; i < REPLICAS; i++) {
          replicas.push(await startZoneReplica({ workDir: path.join(dir, `edge-${i}`), upstream: shim.url, redisUrl: setup.startsWith('zone') ? redis.url : undefined, secret: 'bench-zone-secret' }));
        }
        const pull = async (i: number): Promise<void> => {
          const replica = replicas[i];
          if (!replica) throw new Error(`no replica ${i}`);
          const r = await pullImage(`${replica.edge.host}/bench/zone:v1`, path.join(dir, `pulled-${i}`));
          if (r.code !== 0) throw new Error(`pull through replica ${i} failed: ${r.stderr}`);
        };
        const t0 = process.hrtime.bigint();
        if (setup.endsWith('at once')) await Promise.all(replicas.map((_r, i) => pull(i)));
        else for (let i = 0; i < REPLICAS; i++) await pull(i);
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        rows.push({ setup, multiple: shim.stats.blobBodyBytes / imageBytes, seconds });
        console.log(`${setup}: centre sent ${(shim.stats.blobBodyBytes / MiB).toFixed(1)} MiB of blobs for a ${(imageBytes / MiB).toFixed(1)} MiB image`);
      } finally {
        for (const r of replicas) await r.edge.stop();
        await redis.dispose();
        await shim.stop();
      }
    }
    console.log(`\n${REPLICAS} replicas, image of ${layers} x ${layerMiB} MiB layers, each blob body from the centre at ${linkMiBps} MiB/s; egress as a multiple of the image's blob bytes\n`);
    console.log('| set-up | egress (x image) | pull wall time (s) |\n| --- | --- | --- |');
    for (const r of rows) console.log(`| ${r.setup} | ${r.multiple.toFixed(2)} | ${r.seconds.toFixed(2)} |`);
  });
}

if (isMain(import.meta.url)) runCli(main);
