// Three replicas of one zone (real edges, one real redis-server, a real docker-registry behind
// the counting shim): a cold pull through all three at once moves each blob across the shim
// once, and so does one through each in turn (a committed blob is streamed from its holder); a lease holder killed mid-fill is taken over and a retry succeeds with nothing partial
// kept; the peer listener refuses a wrong secret and serves only what it holds, never asking
// the origin for a peer.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cacheProblems } from '../helpers/cache-invariants.js';
import { fetchBlob, type BlobFetch } from '../helpers/fetch-blob.js';
import { MEDIA_TYPES, sha256Digest } from '../helpers/image.js';
import { httpRequest, removeDir, tempDir, waitFor } from '../helpers/proc.js';
import { pushRandomBlob } from '../helpers/random-blob.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { startShim, type Shim } from '../helpers/shim.js';
import { startZoneReplica, type ZoneReplica } from '../helpers/zone-replica.js';

const SECRET = 'zone-replicas-secret';
const MiB = 1024 * 1024;

describe('a zone of three replicas', () => {
  const work = tempDir('re-zone-e2e-');
  let registry: Registry;
  let shim: Shim;
  let redis: RedisServer;
  const replicas: ZoneReplica[] = [];

  const startReplica = (index: number): Promise<ZoneReplica> =>
    startZoneReplica({
      workDir: path.join(work, `edge-${index}`),
      upstream: shim.url,
      redisUrl: redis.url,
      secret: SECRET,
      // Generous for a loaded test machine (2 cores shared): a peer's headers come once its own
      // origin answered, and a Redis call past its timeout is answered alone (a fetch of its own).
      env: { REGISTRY_EDGE_ZONE_PEER_TIMEOUT: '10s', REGISTRY_EDGE_ZONE_REDIS_TIMEOUT: '5s' },
    });

  before(async () => {
    registry = await startRegistry();
    shim = await startShim(registry.url);
    redis = await startRedis();
    for (let i = 0; i < 3; i++) replicas.push(await startReplica(i));
  });

  after(async () => {
    for (const r of replicas) await r.edge.stop();
    await redis?.dispose();
    await shim?.stop();
    await registry?.dispose();
    removeDir(work);
  });

  const pushBlobs = (repo: string, count: number, size: number): Promise<Array<{ digest: string; size: number }>> =>
    Promise.all(Array.from({ length: count }, () => pushRandomBlob({ work, registry }, repo, size)));

  test('a cold pull through all three at once moves each blob across the shim once; every client gets the right bytes', async () => {
    const repo = 'zone/app';
    const layers = await pushBlobs(repo, 4, 3 * MiB);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.ociManifest,
        config: { mediaType: MEDIA_TYPES.ociConfig, ...(layers[0] as { digest: string; size: number }) },
        layers: layers.slice(1).map((l) => ({ mediaType: MEDIA_TYPES.ociLayerGzip, ...l })),
      }),
    );
    const put = await httpRequest(`${registry.url}/v2/${repo}/manifests/v1`, { method: 'PUT', headers: { 'content-type': MEDIA_TYPES.ociManifest }, body: manifest });
    assert.equal(put.status, 201, put.body.toString());
    shim.reset();
    // Fills that last a few seconds, so the three pulls overlap however the machine schedules them.
    shim.setFault({ kind: 'slow-body', bytesPerSecond: 1 * MiB, pathPattern: /\/blobs\//, method: 'GET' });
    const pulls = replicas.map(async ({ edge }) => {
      const got = await httpRequest(`${edge.url}/v2/${repo}/manifests/v1`, { headers: { accept: MEDIA_TYPES.ociManifest } });
      assert.equal(got.status, 200);
      assert.ok(got.body.equals(manifest));
      return Promise.all(layers.map((l) => fetchBlob(`${edge.url}/v2/${repo}/blobs/${l.digest}`)));
    });
    const results = await Promise.all(pulls);
    shim.setFault(null);
    for (const [i, fetched] of results.entries()) {
      for (const [j, r] of fetched.entries()) {
        const layer = layers[j] as { digest: string; size: number };
        assert.equal(r.status, 200, `replica ${i}, blob ${j}: ${r.error ?? ''}`);
        assert.ok(r.complete, `replica ${i}, blob ${j} complete`);
        assert.equal(r.digest, layer.digest, `replica ${i}, blob ${j} bytes`);
      }
    }
    const leases = await Promise.all(replicas.map((r) => Promise.all([r.edge.metric('registry_edge_zone_leases_total', { result: 'held' }), r.edge.metric('registry_edge_zone_leases_total', { result: 'peer' })])));
    const redisErrors = await Promise.all(replicas.map((r) => r.edge.metric('registry_edge_zone_redis_errors_total')));
    for (const layer of layers) assert.equal(shim.stats.blobGets(layer.digest), 1, `GETs of ${layer.digest} at the centre (leases held/peer per replica: ${JSON.stringify(leases)}, Redis errors: ${redisErrors})`);
    assert.equal(leases.reduce((n, [held]) => n + held, 0), layers.length, 'one lease held per blob');
    assert.equal(leases.reduce((n, [, peer]) => n + peer, 0), 2 * layers.length, 'the two other replicas followed a peer for each blob');
    // Counted once committed, which follows the client's last byte.
    const peerFills = await waitFor(async () => {
      const n = (await Promise.all(replicas.map((r) => r.edge.metric('registry_edge_zone_peer_fills_total', { result: 'committed' })))).reduce((a, b) => a + b, 0);
      return n >= 2 * layers.length ? n : undefined;
    }, { what: 'every peer fill to be committed' });
    assert.equal(peerFills, 2 * layers.length);
    const served = await Promise.all(replicas.map((r) => r.edge.metric('registry_edge_zone_peer_served_bytes_total')));
    assert.equal(served.reduce((a, b) => a + b, 0), 2 * layers.reduce((n, l) => n + l.size, 0));
    for (const r of replicas) assert.deepEqual(await cacheProblems(r.edge.cacheDir), { wrongBlobs: [], tempFiles: [] });
  });

  test('the peer listener refuses a wrong secret (401) and an unheld digest (404), and never asks the origin', async () => {
    const [pushed] = await pushBlobs('zone/unpulled', 1, 64 * 1024);
    assert.ok(pushed);
    const { peerUrl } = replicas[0] as ZoneReplica;
    shim.reset();
    const wrong = await httpRequest(`${peerUrl}/zone/v1/blobs/${pushed.digest}`, { headers: { authorization: 'Bearer not-the-secret' } });
    assert.equal(wrong.status, 401);
    assert.equal((JSON.parse(wrong.body.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'UNAUTHORIZED');
    const none = await httpRequest(`${peerUrl}/zone/v1/blobs/${pushed.digest}`);
    assert.equal(none.status, 401);
    for (const method of ['GET', 'HEAD']) {
      const unheld = await httpRequest(`${peerUrl}/zone/v1/blobs/${pushed.digest}`, { method, headers: { authorization: `Bearer ${SECRET}` } });
      assert.equal(unheld.status, 404, `${method} of a blob the centre has and this replica does not`);
    }
    const manifest = await httpRequest(`${peerUrl}/zone/v1/manifests/${sha256Digest('no such manifest')}`, { headers: { authorization: `Bearer ${SECRET}` } });
    assert.equal(manifest.status, 404);
    assert.equal(shim.stats.requests.length, 0, 'nothing reached the centre');
  });

  test('one replica after another: a blob one has committed is streamed from it by the others, so each crosses the shim once', async () => {
    const repo = 'zone/later';
    const layers = await pushBlobs(repo, 3, 2 * MiB);
    shim.reset();
    const before = await Promise.all(replicas.map((r) => r.edge.metric('registry_edge_zone_peer_fills_total', { result: 'committed' })));
    for (const { edge } of replicas) {
      // No wait between replicas: a fill's lease is held until the blob is announced as held.
      for (const layer of layers) {
        const got = await fetchBlob(`${edge.url}/v2/${repo}/blobs/${layer.digest}`);
        assert.equal(got.status, 200, got.error);
        assert.equal(got.digest, layer.digest);
      }
    }
    for (const layer of layers) assert.equal(shim.stats.blobGets(layer.digest), 1, `GETs of ${layer.digest} at the centre`);
    // A peer fill is counted once committed, after its client's last byte.
    const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
    const peerFills = async (): Promise<number> => sum(await Promise.all(replicas.map((r) => r.edge.metric('registry_edge_zone_peer_fills_total', { result: 'committed' })))) - sum(before);
    await waitFor(async () => (await peerFills()) >= 2 * layers.length || undefined, { what: 'the second and third replicas to commit every blob streamed from a peer' });
    assert.equal(await peerFills(), 2 * layers.length);
    for (const r of replicas) assert.deepEqual(await cacheProblems(r.edge.cacheDir), { wrongBlobs: [], tempFiles: [] });
  });

  // Last: it kills the first replica.
  test('the lease holder killed mid-fill: its followers are cut, a retry through a survivor succeeds, nothing partial is kept', async () => {
    const repo = 'zone/killed';
    const [blob] = await pushBlobs(repo, 1, 6 * MiB);
    assert.ok(blob);
    const [holder, second, third] = replicas as [ZoneReplica, ZoneReplica, ZoneReplica];
    shim.reset();
    shim.setFault({ kind: 'slow-body', bytesPerSecond: 512 * 1024, pathPattern: /\/blobs\//, method: 'GET', times: 1 });
    const url = (r: ZoneReplica): string => `${r.edge.url}/v2/${repo}/blobs/${blob.digest}`;
    const first = fetchBlob(url(holder));
    await waitFor(() => shim.stats.requests.some((r) => r.method === 'GET' && r.path.includes(blob.digest) && r.bodyBytes > 0) || undefined, { what: 'the holder\'s fill to be under way' });
    const followed: Array<Promise<BlobFetch>> = [];
    const started: boolean[] = [false, false];
    for (const [i, r] of [second, third].entries()) followed.push(fetchBlob(url(r), () => (started[i] = true)));
    await waitFor(() => (started[0] && started[1]) || undefined, { what: 'both followers to receive bytes through the peer' });
    process.kill(holder.edge.proc.pid, 'SIGKILL');
    await holder.edge.proc.exited;
    const [cutHolder, ...cut] = await Promise.all([first, ...followed]);
    for (const r of [cutHolder, ...cut]) {
      assert.ok(r && !r.complete, 'every client of the dead fill is cut, none gets a complete answer');
    }
    assert.equal(shim.stats.blobGets(blob.digest), 1, 'the followers had not fetched from the centre');

    const retry = await fetchBlob(url(second));
    assert.equal(retry.status, 200, retry.error);
    assert.ok(retry.complete);
    assert.equal(retry.digest, blob.digest);
    assert.ok((await second.edge.metric('registry_edge_zone_leases_total', { result: 'takeover' })) >= 1, 'the dead holder\'s lease was taken over');
    const again = await fetchBlob(url(third));
    assert.equal(again.digest, blob.digest);
    for (const r of [second, third]) assert.deepEqual(await cacheProblems(r.edge.cacheDir), { wrongBlobs: [], tempFiles: [] });
    // The dead replica's tmp/ holds its torn fill until it starts again; no blob of it is wrong.
    assert.deepEqual((await cacheProblems(holder.edge.cacheDir, 0)).wrongBlobs, []);
  });
});
