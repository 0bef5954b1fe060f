// What authorization costs on a cache hit: the same warm manifest and blob HEAD under
// wrk, with the edge in public mode and in token mode (every request carries a bearer
// token the edge verifies), in one run. `node dist/bench/auth-cost.js` after a build.
import * as path from 'node:path';
import { startEdge, type Edge } from '../test/helpers/edge.js';
import { makeOciLayout, pushImage } from '../test/helpers/image.js';
import { httpRequest, removeDir, tempDir } from '../test/helpers/proc.js';
import { startRegistry } from '../test/helpers/registry.js';
import { startTokenService } from '../test/helpers/token-service.js';
import { runWrk } from './wrk.js';

const OCI = 'application/vnd.oci.image.manifest.v1+json';
const seconds = Number(process.env['BENCH_WRK_DURATION'] ?? 10);

async function main(): Promise<void> {
  const work = tempDir('re-authcost-');
  const tokens = await startTokenService({ users: { pusher: { password: 'p', access: [{ repo: '**', actions: ['pull', 'push'] }] } } });
  const registry = await startRegistry({ config: tokens.registryConfig() });
  const edges: Edge[] = [];
  try {
    const image = await makeOciLayout(path.join(work, 'img'), { layers: [64 * 1024], tag: '1.0' });
    await pushImage(image.layoutDir, '1.0', `${registry.host}/team/app:1.0`, { creds: 'pusher:p' });
    const token = tokens.issue({ access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }], claims: { exp: Math.floor(Date.now() / 1000) + 3600 } });
    const rows: string[] = [];
    for (const mode of ['public', 'token'] as const) {
      const yaml = mode === 'public'
        ? `auth: {mode: public}\nupstream: {auth: {username: pusher, password: p, realms: ["${new URL(tokens.url).host}"]}}\ncache: {tag_ttl: 1h}\n`
        : `auth:\n  mode: token\n  token: {realm: "${tokens.url}", service: ${tokens.service}, issuer: ${tokens.issuer}, rootcertbundle: ${tokens.rootCertFile}}\ncache: {tag_ttl: 1h}\n`;
      const edge = await startEdge({ workDir: work, upstreams: [registry.url], cacheDir: path.join(work, `cache-${mode}`), configYaml: yaml });
      edges.push(edge);
      const headers: Record<string, string> = { accept: OCI, authorization: `Bearer ${token}` };
      const url = `${edge.url}/v2/team/app/manifests/1.0`;
      const warm = await httpRequest(url, { headers });
      if (warm.status !== 200) throw new Error(`${mode}: warm-up answered ${warm.status}: ${warm.body.toString()}`);
      const result = await runWrk({ url, connections: 16, threads: 1, durationSeconds: seconds, headers });
      if (result.errors > 0) throw new Error(`${mode}: ${result.errors} errors under wrk`);
      rows.push(`| ${mode} | ${result.requestsPerSecond.toFixed(0)} | ${(1e6 / result.requestsPerSecond).toFixed(1)} | ${result.p99Ms.toFixed(2)} |`);
      await edge.stop();
    }
    console.log('| auth.mode | manifest hits/s (wrk -t1 -c16) | µs per request | p99 ms |');
    console.log('| --- | --- | --- | --- |');
    for (const r of rows) console.log(r);
  } finally {
    for (const e of edges) await e.stop();
    await registry.dispose();
    await tokens.stop();
    removeDir(work);
  }
}

await main();
