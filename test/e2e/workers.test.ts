// workers: 2 — two serving processes on one host sharing the listeners and cache.dir,
// against a real registry behind the counting shim: one fill per blob whichever worker
// gets the clients, blobs committed by one are hits in the other, one owner keeps the
// budget, /metrics sums the workers, a dead worker is replaced and SIGTERM stops them all.
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cacheProblems, bytesOnDisk } from '../helpers/cache-invariants.js';
import { logLines, parseMetric, type Edge } from '../helpers/edge.js';
import { fetchBlob, type BlobFetch } from '../helpers/fetch-blob.js';
import { pushBlob, randomFile } from '../helpers/image.js';
import { httpRequest, waitFor } from '../helpers/proc.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { startZoneReplica, type ZoneReplica } from '../helpers/zone-replica.js';

const MiB = 1024 * 1024;
const repo = 'team/workers';

interface WorkerLine {
  msg?: string;
  worker?: number;
  path?: string;
  pid?: number;
  pids?: number[];
}

/** Access lines of the workers for blob GETs, optionally of one digest. */
function blobLines(edge: Edge, digest = '/blobs/'): WorkerLine[] {
  return logLines<WorkerLine>(edge.proc.logs()).filter((l) => l.msg === 'request' && l.worker !== undefined && l.path?.includes(digest));
}

/** Workers that logged an access line for `digest`, once all `requests` are logged (a line is written as its connection closes). */
async function servedBy(edge: Edge, digest: string, requests: number): Promise<Set<number>> {
  const lines = await waitFor(() => {
    const found = blobLines(edge, digest);
    return found.length >= requests ? found : undefined;
  }, { what: `${requests} access lines for ${digest}` });
  return new Set(lines.map((l) => l.worker as number));
}

/** The sum of a counter's samples whose labels include `labels`. */
function sumOf(metrics: string, name: string, labels: Record<string, string>): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  return metrics
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) && wanted.every((w) => line.includes(w)))
    .reduce((n, line) => n + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

function pidsOf(edge: Edge): number[] {
  return logLines<WorkerLine>(edge.proc.logs()).find((l) => l.msg === 'registry-edge listening')?.pids ?? [];
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

let blobs = 0;

async function newBlob(stack: Pick<Stack, 'work' | 'registry'>, size: number): Promise<string> {
  const file = path.join(stack.work, `blob-${++blobs}.bin`);
  await randomFile(file, size);
  return (await pushBlob(stack.registry.url, repo, file)).digest;
}

/**
 * `n` GETs, each on its own connection, the next one started once the one before has
 * its first byte: node:cluster's primary hands a burst of connections to whichever
 * worker is free first, one after another, and connections that come in turn alternate.
 */
async function inTurn(edge: Edge, digest: string, n: number): Promise<BlobFetch[]> {
  const fetches: Promise<BlobFetch>[] = [];
  for (let i = 0; i < n; i++) {
    let started: () => void = () => undefined;
    const firstByte = new Promise<void>((resolve) => {
      started = resolve;
    });
    const fetch = fetchBlob(`${edge.url}/v2/${repo}/blobs/${digest}`, started);
    fetches.push(fetch);
    await Promise.race([firstByte, fetch]);
  }
  return Promise.all(fetches);
}

describe('workers: 2 share one host', () => {
  let stack: Stack;
  const herd = (digest: string, n: number): Promise<BlobFetch[]> => inTurn(stack.edge, digest, n);

  before(async () => {
    stack = await startStack('re-workers-', { edge: { env: { REGISTRY_EDGE_WORKERS: '2', REGISTRY_EDGE_CACHE_MAXSIZE: '48MiB' } } });
  });

  after(async () => {
    await stack?.stop();
  });

  test('the primary says it listens once, for both workers, with their pids', () => {
    const lines = logLines<WorkerLine>(stack.edge.proc.logs());
    assert.equal(lines.filter((l) => l.msg === 'registry-edge listening').length, 1);
    assert.deepEqual(new Set(lines.filter((l) => l.msg === 'worker listening').map((l) => l.worker)), new Set([1, 2]));
    assert.equal(pidsOf(stack.edge).length, 2);
  });

  test('a herd of 16 on one cold blob, spread over both workers, makes one upstream fetch and gets the right bytes', async () => {
    const size = 24 * MiB;
    const digest = await newBlob(stack, size);
    stack.shim.reset();
    // Slow enough that every client arrives while the one fill is still running.
    stack.shim.setFault({ kind: 'slow-body', bytesPerSecond: 16 * MiB, pathPattern: /\/blobs\// , method: 'GET' });
    const results = await herd(digest, 16);
    stack.shim.setFault(null);
    for (const r of results) {
      assert.equal(r.status, 200);
      assert.equal(r.complete, true);
      assert.equal(r.digest, digest);
    }
    assert.equal(stack.shim.stats.blobGets(digest), 1, 'one upstream fetch for the host');
    assert.deepEqual(await servedBy(stack.edge, digest, 16), new Set([1, 2]), 'both workers had clients of the herd');
    const metrics = (await httpRequest(`${stack.edge.adminUrl}/metrics`)).body.toString('utf8');
    assert.ok(parseMetric(metrics, 'registry_edge_zone_leases_total', { result: 'peer' }) >= 1, 'the other worker followed the fill of the one holding it');
    // The holder commits the origin's bytes, the follower its verified copy of them (fsync and rename come after the clients' last byte).
    await waitFor(async () => (await stack.edge.metric('registry_edge_zone_peer_fills_total', { result: 'committed' })) >= 1 || undefined, { what: 'the follower worker to commit its copy' });
    assert.deepEqual(await cacheProblems(stack.edge.cacheDir), { wrongBlobs: [], tempFiles: [] });
  });

  test('a blob one worker committed is a hit in the other: no upstream request', async () => {
    const digest = await newBlob(stack, 2 * MiB);
    const first = await fetchBlob(`${stack.edge.url}/v2/${repo}/blobs/${digest}`);
    assert.equal(first.digest, digest);
    stack.shim.reset();
    const results = await herd(digest, 12);
    for (const r of results) assert.equal(r.digest, digest);
    assert.equal(stack.shim.stats.blobGets(digest), 0);
    assert.deepEqual(await servedBy(stack.edge, digest, 13), new Set([1, 2]));
  });

  test('/metrics on admin.addr sums the workers; /readyz and the status page answer from worker 1', async () => {
    const metrics = (await httpRequest(`${stack.edge.adminUrl}/metrics`)).body.toString('utf8');
    // Every blob GET of the tests above was counted by the worker that answered it, and the sum is all of them.
    const gets = blobLines(stack.edge);
    assert.deepEqual(new Set(gets.map((l) => l.worker)), new Set([1, 2]));
    assert.equal(sumOf(metrics, 'registry_edge_http_requests_total', { route: 'blob', method: 'GET' }), gets.length);
    assert.equal(parseMetric(metrics, 'registry_edge_cache_max_bytes'), 48 * MiB, 'the budget, not twice it');
    assert.equal((await httpRequest(`${stack.edge.adminUrl}/readyz`)).status, 200);
    const status = JSON.parse((await httpRequest(`${stack.edge.adminUrl}/status.json`)).body.toString('utf8')) as { cache?: unknown };
    assert.ok(status.cache !== undefined);
  });

  test('one owner keeps the budget: blobs filled by both workers past cache.maxsize are evicted down to it', async () => {
    for (let i = 0; i < 6; i++) {
      const digest = await newBlob(stack, 12 * MiB);
      const results = await herd(digest, 4);
      for (const r of results) assert.equal(r.digest, digest);
    }
    const blobsDir = path.join(stack.edge.cacheDir, 'blobs');
    await waitFor(() => bytesOnDisk(blobsDir) <= 48 * MiB, { what: 'the blobs on disk to fit cache.maxsize' });
    assert.ok((await stack.edge.metric('registry_edge_cache_evictions_total')) >= 2);
    const problems = await cacheProblems(stack.edge.cacheDir);
    assert.deepEqual(problems, { wrongBlobs: [], tempFiles: [] });
    // Only worker 1 writes the index snapshot.
    const index = readdirSync(path.join(stack.edge.cacheDir, 'index'));
    assert.ok(index.every((name) => name === 'snapshot' || name.startsWith('snapshot.')), index.join(','));
  });

  test('a worker that dies is replaced, and pulls go on', async () => {
    const [, second] = pidsOf(stack.edge);
    assert.ok(second && alive(second));
    process.kill(second, 'SIGKILL');
    await waitFor(() => logLines<WorkerLine>(stack.edge.proc.logs()).filter((l) => l.msg === 'worker listening' && l.worker === 2).length === 2, {
      what: 'a new worker 2',
      timeoutMs: 20_000,
    });
    const digest = await newBlob(stack, MiB);
    const results = await herd(digest, 8);
    for (const r of results) assert.equal(r.digest, digest);
    assert.equal(stack.shim.stats.blobGets(digest), 1, stack.edge.proc.logs().split('\n').filter((l) => l.includes(digest.slice(7, 20))).join('\n'));
  });

  test('SIGTERM stops every worker and the primary exits 0', async () => {
    // The two first workers and the one that replaced worker 2.
    const pids = logLines<WorkerLine>(stack.edge.proc.logs()).filter((l) => l.msg === 'worker listening').map((l) => l.pid as number);
    assert.equal(new Set(pids).size, 3);
    await stack.edge.stop();
    assert.equal(await stack.edge.proc.exited, 0);
    await waitFor(() => pids.every((pid) => !alive(pid)) || undefined, { what: 'the workers to exit' });
    const tmp = path.join(stack.edge.cacheDir, 'tmp');
    const left = readdirSync(tmp, { recursive: true }).filter((name) => statSync(path.join(tmp, String(name))).isFile());
    assert.deepEqual(left, []);
  });
});

describe('workers: 2 in a zone: each worker a replica of its own in Redis', () => {
  let stack: Stack;
  let redis: RedisServer;
  let many: ZoneReplica;
  let one: ZoneReplica;

  before(async () => {
    stack = await startStack('re-workers-zone-');
    redis = await startRedis();
    const replica = (name: string, workers: string): Promise<ZoneReplica> =>
      startZoneReplica({ workDir: path.join(stack.work, name), upstream: stack.shim.url, redisUrl: redis.url, secret: 'workers-zone-secret', env: { REGISTRY_EDGE_WORKERS: workers, REGISTRY_EDGE_ZONE_PEER_TIMEOUT: '10s', REGISTRY_EDGE_ZONE_REDIS_TIMEOUT: '5s' } });
    many = await replica('many', '2');
    one = await replica('one', '1');
  });

  after(async () => {
    await many?.edge.stop();
    await one?.edge.stop();
    await redis?.dispose();
    await stack?.stop();
  });

  test('a herd through both workers of one replica, then a pull through another replica: one upstream fetch in all', async () => {
    const digest = await newBlob(stack, 8 * MiB);
    stack.shim.reset();
    stack.shim.setFault({ kind: 'slow-body', bytesPerSecond: 8 * MiB, pathPattern: /\/blobs\//, method: 'GET' });
    const results = await inTurn(many.edge, digest, 8);
    stack.shim.setFault(null);
    for (const r of results) assert.equal(r.digest, digest);
    assert.deepEqual(await servedBy(many.edge, digest, 8), new Set([1, 2]));
    // The other replica streams it from a worker that committed it.
    const later = await fetchBlob(`${one.edge.url}/v2/${repo}/blobs/${digest}`);
    assert.equal(later.digest, digest);
    assert.equal(stack.shim.stats.blobGets(digest), 1, 'the centre sent the blob once to the zone');
    assert.equal(await one.edge.metric('registry_edge_zone_leases_total', { result: 'peer' }), 1);
    for (const r of [many, one]) assert.deepEqual(await cacheProblems(r.edge.cacheDir), { wrongBlobs: [], tempFiles: [] });
  });
});
