// Two real edges of one zone (zone.redis.url: a real redis-server) in front of one
// registry behind the counting shim: what one replica confirmed with the centre, the
// other uses without asking again; with Redis stopped both go on pulling alone.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { logLines, startEdge, type Edge } from '../helpers/edge.js';
import { makeOciLayout, pullImage, pushImage, verifyDirPull, type ImageInfo } from '../helpers/image.js';
import { httpRequest, removeDir, run, tempDir, waitFor } from '../helpers/proc.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { startShim, type Shim } from '../helpers/shim.js';

const KiB = 1024;
const OCI = 'application/vnd.oci.image.manifest.v1+json';
const PREFIX = 'zone-e2e:';

interface Zone {
  work: string;
  redis: RedisServer;
  raw: Redis;
  registry: Registry;
  shim: Shim;
  edges: Edge[];
  stop(): Promise<void>;
}

/** A registry, its shim, Redis and two edges sharing it; `env` for both edges. What started is stopped again if a later step fails. */
async function startZone(prefix: string, env: Record<string, string>, registryConfig?: (work: string) => Promise<Record<string, unknown>>): Promise<Zone> {
  const work = tempDir(prefix);
  const started: Array<() => Promise<void> | void> = [() => removeDir(work)];
  const stop = async (): Promise<void> => {
    for (const step of started.splice(0).reverse()) await step();
  };
  try {
    const redis = await startRedis();
    started.push(() => redis.dispose());
    const raw = new Redis(redis.url, { lazyConnect: true });
    raw.on('error', () => undefined); // reconnects on its own while the server is stopped
    started.push(() => raw.disconnect());
    await raw.connect();
    const registry = await startRegistry(registryConfig ? { config: await registryConfig(work) } : {});
    started.push(() => registry.dispose());
    const shim = await startShim(registry.url);
    started.push(() => shim.stop());
    const edges: Edge[] = [];
    for (const name of ['a', 'b']) {
      const workDir = path.join(work, name);
      mkdirSync(workDir);
      const edge = await startEdge({
        workDir,
        upstreams: [shim.url],
        env: { REGISTRY_EDGE_ZONE_REDIS_URL: redis.url, REGISTRY_EDGE_ZONE_REDIS_PREFIX: PREFIX, REGISTRY_EDGE_ZONE_REDIS_RECONNECT_MAX: '200ms', ...env },
      });
      started.push(() => edge.stop());
      edges.push(edge);
    }
    return { work, redis, raw, registry, shim, edges, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

describe('a zone of two edges sharing tags through Redis', () => {
  const repo = 'team/zone';
  let zone: Zone;
  let v1: ImageInfo;
  let two: ImageInfo;
  const edge = (i: number): Edge => zone.edges[i] as Edge;
  const manifest = async (e: Edge, tag: string): Promise<unknown> => {
    const res = await httpRequest(`${e.url}/v2/${repo}/manifests/${tag}`, { headers: { accept: OCI } });
    assert.equal(res.status, 200, res.body.toString());
    return res.headers['docker-content-digest'];
  };
  const heads = (): number => zone.shim.stats.count('HEAD', /\/manifests\/latest$/);

  before(async () => {
    zone = await startZone('re-zone-facts-', { REGISTRY_EDGE_CACHE_TAG_TTL: '1s' });
    v1 = await makeOciLayout(path.join(zone.work, 'v1'), { layers: [64 * KiB], tag: 'latest' });
    two = await makeOciLayout(path.join(zone.work, 'two'), { layers: [64 * KiB, 32 * KiB], tag: 'two' });
    await pushImage(v1.layoutDir, 'latest', `${zone.registry.host}/${repo}:latest`);
  });

  after(() => zone?.stop());

  test('a tag revalidated through edge A is fresh on edge B: B serves it without a HEAD to the centre', async () => {
    // B first, so that B's own mapping is the older one when A revalidates.
    assert.equal(await manifest(edge(1), 'latest'), v1.manifestDigest);
    assert.equal(await manifest(edge(0), 'latest'), v1.manifestDigest);
    zone.shim.reset();
    const revalidating = Date.now();
    // Past tag_ttl, A's next pull revalidates with a HEAD.
    await waitFor(async () => (await manifest(edge(0), 'latest')) === v1.manifestDigest && heads() === 1, { what: 'A to revalidate the tag', intervalMs: 100 });
    // Shared without being awaited: the zone may get it a moment after A answered.
    await waitFor(async () => {
      const shared = JSON.parse((await zone.raw.get(`${PREFIX}tag:${repo}:latest`)) ?? '{}') as { confirmedAt?: number };
      return (shared.confirmedAt ?? 0) >= revalidating;
    }, { what: 'A\'s revalidation in the zone' });
    const sharedBefore = await edge(1).metric('registry_edge_cache_requests_total', { kind: 'manifest', result: 'shared' });

    assert.equal(await manifest(edge(1), 'latest'), v1.manifestDigest);
    assert.equal(heads(), 1, 'B asked the centre nothing: only A\'s HEAD was seen');
    assert.equal(await edge(1).metric('registry_edge_cache_requests_total', { kind: 'manifest', result: 'shared' }), sharedBefore + 1, 'B used the mapping A confirmed');
    assert.equal(await manifest(edge(1), 'latest'), v1.manifestDigest);
    assert.equal(heads(), 1, 'and keeps it as its own (a hit) within the TTL');
  });

  test('Redis stopped mid-test: pulls keep working on both edges, which say so; sharing resumes when it is back', async () => {
    await zone.redis.stop();
    await pushImage(two.layoutDir, 'two', `${zone.registry.host}/${repo}:two`);
    for (const [i, e] of zone.edges.entries()) {
      for (const tag of ['latest', 'two']) {
        const dest = path.join(zone.work, `down-${i}-${tag}`);
        const pulled = await pullImage(`${e.host}/${repo}:${tag}`, dest);
        assert.equal(pulled.code, 0, pulled.stderr);
        assert.deepEqual(await verifyDirPull(dest, tag === 'two' ? two : v1), { ok: true });
      }
      assert.equal(await e.metric('registry_edge_zone_redis_up'), 0);
      assert.ok((await e.metric('registry_edge_zone_redis_errors_total')) > 0);
      const warns = logLines<{ msg?: string; level?: number }>(e.proc.logs()).filter((l) => l.level === 40 && /zone Redis unreachable/.test(l.msg ?? ''));
      assert.equal(warns.length, 1, 'one warn line within zone.warn_interval');
    }

    await zone.redis.start();
    for (const e of zone.edges) await waitFor(async () => (await e.metric('registry_edge_zone_redis_up')) === 1, { what: 'the edge back on Redis' });
    // A fresh mapping confirmed by A reaches the zone again.
    await waitFor(async () => {
      await manifest(edge(0), 'two');
      return (await zone.raw.exists(`${PREFIX}tag:${repo}:two`)) === 1;
    }, { what: 'a tag shared again', intervalMs: 100 });
  });
});

describe('a zone of two edges sharing upstream-check decisions', () => {
  let zone: Zone;
  let image: ImageInfo;
  const basic = (user: string, password: string): string => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');

  before(async () => {
    zone = await startZone('re-zone-check-', { REGISTRY_EDGE_AUTH_MODE: 'upstream-check', REGISTRY_EDGE_AUTH_CHECK_TTL: '60s' }, async (work) => {
      const file = path.join(work, 'htpasswd');
      const lines: string[] = [];
      for (const [user, password] of [['dave', 'd1'], ['pusher', 'p']] as const) {
        const r = await run('htpasswd', ['-Bbn', user, password]);
        assert.equal(r.code, 0, r.stderr);
        lines.push(r.stdout.trim());
      }
      writeFileSync(file, lines.join('\n') + '\n');
      return { auth: { htpasswd: { realm: 'central', path: file } } };
    });
    image = await makeOciLayout(path.join(zone.work, 'img'), { layers: [64 * KiB], tag: '1.0' });
    await pushImage(image.layoutDir, '1.0', `${zone.registry.host}/team/app:1.0`, { creds: 'pusher:p' });
  });

  after(() => zone?.stop());

  test('a yes the centre gave edge A is taken by edge B without asking; a no is never shared', async () => {
    const digest = image.layers[0]?.digest ?? '';
    const blob = (e: Edge, authorization: string) => httpRequest(`${e.url}/v2/team/app/blobs/${digest}`, { headers: { authorization } });
    const checks = (): number => zone.shim.stats.count('HEAD', new RegExp(`/blobs/${digest}$`));
    assert.equal((await blob(zone.edges[0] as Edge, basic('dave', 'd1'))).status, 200);
    assert.equal(checks(), 1, 'A asked the centre');
    zone.shim.reset();

    const onB = await blob(zone.edges[1] as Edge, basic('dave', 'd1'));
    assert.equal(onB.status, 200);
    assert.equal(checks(), 0, 'B took A\'s yes');
    assert.equal(zone.shim.stats.blobGets(digest), 1, 'B filled the blob itself (fills are the peer listener\'s)');

    assert.equal((await blob(zone.edges[0] as Edge, basic('dave', 'wrong'))).status, 401);
    zone.shim.reset();
    assert.equal((await blob(zone.edges[1] as Edge, basic('dave', 'wrong'))).status, 401, 'a no is not shared: B asks and is refused');
    assert.equal(checks(), 1);
  });
});
