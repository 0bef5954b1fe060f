// The cache's disk under faults (issue 11, items 1-3): full in the middle of a fill,
// remounted read-only while the edge runs, and a budget smaller than the blobs pulled.
// Clients always get right bytes (or a failed transfer, never a complete wrong one), the
// cache holds only blobs that hash to their names, caching resumes by itself once the disk
// takes writes again, and what is on disk never exceeds cache.maxsize.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cacheProblems, descriptors, descriptorsBackTo } from '../../helpers/cache-invariants.js';
import { startEdge, type Edge } from '../../helpers/edge.js';
import { fetchBlob, type BlobFetch } from '../../helpers/fetch-blob.js';
import { mountTmpfs, type SmallFs } from '../../helpers/mount.js';
import { httpRequest, waitFor } from '../../helpers/proc.js';
import { pushRandomBlob } from '../../helpers/random-blob.js';
import { startStack, type Stack } from '../../helpers/stack.js';

const MiB = 1024 * 1024;
const repo = 'faults/disk';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

function blobFile(cacheDir: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return path.join(cacheDir, 'blobs', 'sha256', hex.slice(0, 2), hex);
}

/** Right bytes, or a transfer that visibly failed: never a complete response with wrong bytes. */
function assertRightOrCut(r: BlobFetch, digest: string, size: number): void {
  if (r.status === 200 && r.complete) {
    assert.equal(r.bytes, size, 'a complete response has every byte');
    assert.equal(r.digest, digest, 'a complete response has the right bytes');
  } else {
    assert.ok(!r.complete, `status ${r.status} ended as complete`);
  }
}

function assertRight(r: BlobFetch, digest: string, size: number): void {
  assert.equal(r.status, 200, r.error);
  assert.equal(r.complete, true);
  assert.equal(r.bytes, size);
  assert.equal(r.digest, digest);
}

/** Bytes in the parts of the cache that count against cache.maxsize, walked so a fill renamed meanwhile is never counted twice. */
function budgetedBytes(cacheDir: string): number {
  let sum = 0;
  const walk = (dir: string): void => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of entries) {
      const full = path.join(dir, name);
      try {
        const st = statSync(full);
        if (st.isDirectory()) walk(full);
        else sum += st.size;
      } catch {
        // removed while we looked (an eviction)
      }
    }
  };
  // blobs/ before tmp/: a fill moved from tmp/ into blobs/ during the walk is missed, not counted twice.
  for (const part of ['blobs', 'manifests', 'tmp']) walk(path.join(cacheDir, part));
  return sum;
}

interface Pushed {
  readonly digest: string;
  readonly size: number;
}

const blobUrl = (edge: Edge, digest: string): string => `${edge.url}/v2/${repo}/blobs/${digest}`;

describe('disk faults: a full or read-only cache never makes a wrong or failed answer, and the budget holds', () => {
  let stack: Stack;
  let fs: SmallFs | undefined;

  const newBlob = (size: number): Promise<Pushed> => pushRandomBlob(stack, repo, size);

  before(async () => {
    stack = await startStack('re-faults-disk-');
  });

  after(async () => {
    await stack?.stop();
    await fs?.unmount();
  });

  /** An edge whose cache is `cacheDir`, replacing the stack's. */
  async function edgeOn(cacheDir: string, env: Record<string, string>): Promise<Edge> {
    await stack.edge.stop();
    stack.edge = await startEdge({ workDir: stack.work, upstreams: [stack.shim.url], cacheDir, env });
    return stack.edge;
  }

  test('disk full in the middle of a fill: clients get every right byte, nothing truncated is kept, caching resumes once space is back', async () => {
    const small = await mountTmpfs(stack.work, 'full', 10 * MiB);
    fs = small;
    try {
      const cacheDir = path.join(small.dir, 'cache');
      const edge = await edgeOn(cacheDir, { REGISTRY_EDGE_CACHE_MAXSIZE: '1GiB', REGISTRY_EDGE_CACHE_MAX_BLOB_SIZE: '1GiB', REGISTRY_EDGE_CACHE_WRITE_RETRY_INTERVAL: '200ms' });
      const warm = await newBlob(1024);
      assertRight(await fetchBlob(blobUrl(edge, warm.digest)), warm.digest, warm.size);
      const baseline = descriptors(edge.proc.pid);
      // About 4 MiB left: the 7 MiB blob fills the disk part of the way.
      const filler = path.join(small.dir, 'filler');
      writeFileSync(filler, Buffer.alloc(6 * MiB, 1));
      const big = await newBlob(7 * MiB);
      stack.shim.reset();
      const pulls = await Promise.all([1, 2, 3].map(() => fetchBlob(blobUrl(edge, big.digest))));
      for (const r of pulls) assertRightOrCut(r, big.digest, big.size);
      // Pass-through, not a failure: the readers the fill had got every byte from the upstream.
      assertRight(pulls[0] as BlobFetch, big.digest, big.size);
      assert.ok(pulls.filter((r) => r.complete).length >= 1);
      assert.equal(existsSync(blobFile(cacheDir, big.digest)), false, 'the blob that did not fit was not committed');
      // The readers can have every byte before the fill has ended and been counted.
      await waitFor(async () => (await edge.metric('registry_edge_fills_total', { result: 'write_error' })) >= 1, { what: 'the fill to count as a write error' });
      const warns = await waitFor(() => edge.proc.logs().split('\n').filter((l) => l.includes('cache not writable')), { what: 'the unwritable warning' });
      assert.match(warns[0] ?? '', /ENOSPC/);
      assert.ok((warns[0] ?? '').includes(cacheDir), 'the warning names cache.dir');
      // The failed fill gave its space back, so the probe (a small file under tmp/) soon
      // succeeds: caching resumes by itself; no probe file stays behind.
      await waitFor(async () => (await edge.metric('registry_edge_fills_in_flight')) === 0 && (await edge.metric('registry_edge_cache_writable')) === 1, { what: 'the fill to end and caching to resume' });
      assert.deepEqual(await cacheProblems(cacheDir), { wrongBlobs: [], tempFiles: [] });
      await descriptorsBackTo(edge.proc.pid, baseline);

      // With the filler gone the blob fits: the next miss is kept.
      rmSync(filler);
      assertRight(await fetchBlob(blobUrl(edge, big.digest)), big.digest, big.size);
      await waitFor(() => existsSync(blobFile(cacheDir, big.digest)), { what: 'the blob to be committed' });
      assert.deepEqual(await cacheProblems(cacheDir), { wrongBlobs: [], tempFiles: [] });
      const gets = stack.shim.stats.blobGets(big.digest);
      assertRight(await fetchBlob(blobUrl(edge, big.digest)), big.digest, big.size);
      assert.equal(stack.shim.stats.blobGets(big.digest), gets, 'a hit now');
    } finally {
      await stack.edge.stop();
      await small.unmount();
      fs = undefined;
    }
  });

  test('cache remounted read-only: blob and manifest misses answer 200 with right bytes, hits are served, /readyz and the metric say so; rw again: caching resumes', async () => {
    const small = await mountTmpfs(stack.work, 'ro', 64 * MiB);
    fs = small;
    try {
      const cacheDir = path.join(small.dir, 'cache');
      // tag_ttl 0: every pull by tag revalidates (and writes the tag file).
      const edge = await edgeOn(cacheDir, { REGISTRY_EDGE_CACHE_TAG_TTL: '0s', REGISTRY_EDGE_CACHE_WRITE_RETRY_INTERVAL: '200ms' });
      const config = await newBlob(512);
      const layer = await newBlob(2 * MiB);
      const manifest = async (tag: string, layerBlob: Pushed): Promise<string> => {
        const body = JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerBlob.digest, size: layerBlob.size }],
        });
        const put = await httpRequest(`${stack.registry.url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body });
        assert.equal(put.status, 201, put.body.toString());
        return `sha256:${createHash('sha256').update(body).digest('hex')}`;
      };
      const getManifest = async (ref: string, digest: string): Promise<void> => {
        const res = await httpRequest(`${edge.url}/v2/${repo}/manifests/${ref}`, { headers: { accept: OCI_MANIFEST } });
        assert.equal(res.status, 200, `manifest ${ref}: ${res.status} ${res.body.toString()}`);
        assert.equal(`sha256:${createHash('sha256').update(res.body).digest('hex')}`, digest);
      };
      const cachedTag = await manifest('cached', layer);
      await getManifest('cached', cachedTag);
      assertRight(await fetchBlob(blobUrl(edge, layer.digest)), layer.digest, layer.size);
      const baseline = descriptors(edge.proc.pid);

      const missLayer = await newBlob(3 * MiB);
      const newTag = await manifest('new', missLayer);
      const byDigest = await manifest('other', config);
      await small.setReadOnly(true);
      // First a revalidation, whose tag file cannot be written; then misses and a hit.
      await getManifest('cached', cachedTag);
      await waitFor(async () => (await edge.metric('registry_edge_cache_writable')) === 0, { what: 'the failed tag write to pause caching' });
      // Concurrent misses of one blob stream through (sharing the fetch only if the second
      // arrives before the first has sent any byte: see the unit test); the hit and the manifests too.
      const misses = await Promise.all([1, 2].map(() => fetchBlob(blobUrl(edge, missLayer.digest))));
      for (const r of misses) assertRight(r, missLayer.digest, missLayer.size);
      assertRight(await fetchBlob(blobUrl(edge, layer.digest)), layer.digest, layer.size);
      await getManifest('new', newTag);
      await getManifest(byDigest, byDigest);
      assert.equal(existsSync(blobFile(cacheDir, missLayer.digest)), false);
      const ready = await httpRequest(`${edge.adminUrl}/readyz`);
      assert.equal(ready.status, 200, 'the edge still serves through the upstream');
      assert.deepEqual(JSON.parse(ready.body.toString()), { ready: true, cache: false, upstream: true });
      assert.equal(await edge.metric('registry_edge_cache_writable'), 0);
      assert.equal(edge.proc.logs().split('\n').filter((l) => l.includes('cache not writable')).length, 1, 'one warning while it lasts');
      await descriptorsBackTo(edge.proc.pid, baseline);

      await small.setReadOnly(false);
      await waitFor(async () => (await edge.metric('registry_edge_cache_writable')) === 1, { what: 'caching to resume' });
      assertRight(await fetchBlob(blobUrl(edge, missLayer.digest)), missLayer.digest, missLayer.size);
      await waitFor(() => existsSync(blobFile(cacheDir, missLayer.digest)), { what: 'the miss to be committed' });
      assert.deepEqual(JSON.parse((await httpRequest(`${edge.adminUrl}/readyz`)).body.toString()), { ready: true, cache: true, upstream: true });
      assert.deepEqual(await cacheProblems(cacheDir), { wrongBlobs: [], tempFiles: [] });
    } finally {
      await stack.edge.stop();
      await small.setReadOnly(false).catch(() => undefined);
      await small.unmount();
      fs = undefined;
    }
  });

  test('cache.maxsize 20MiB: blobs of 25 and 64 MiB are streamed, not kept; what is on disk never exceeds the budget, the size metric agrees, also after a restart', async () => {
    const budget = 20 * MiB;
    const cacheDir = path.join(stack.work, 'budget-cache');
    const env = { REGISTRY_EDGE_CACHE_MAXSIZE: '20MiB' };
    let edge = await edgeOn(cacheDir, env);
    const large = [await newBlob(25 * MiB), await newBlob(64 * MiB)];
    const small = await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map(() => newBlob(3 * MiB + 12_345)));
    let most = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        most = Math.max(most, budgetedBytes(cacheDir));
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    try {
      // Two rounds, each with every blob pulled at once: the second finds some kept, some evicted.
      for (let round = 0; round < 2; round++) {
        const all = [...large, ...small];
        const got = await Promise.all(all.map((b) => fetchBlob(blobUrl(edge, b.digest))));
        got.forEach((r, i) => assertRight(r, all[i]?.digest ?? '', all[i]?.size ?? 0));
        await waitFor(async () => (await edge.metric('registry_edge_fills_in_flight')) === 0, { what: 'the fills to end' });
      }
    } finally {
      sampling = false;
      await sampler;
    }
    assert.ok(most <= budget, `${most} bytes on disk at most, over the ${budget} budget`);
    for (const b of large) assert.equal(existsSync(blobFile(cacheDir, b.digest)), false, 'a blob larger than what is kept is not on disk');
    assert.ok((await edge.metric('registry_edge_fills_total', { result: 'not_kept' })) >= 4, 'the large blobs were streamed, not kept, each round');
    assert.ok((await edge.metric('registry_edge_cache_evictions_total')) >= 1, 'small blobs were evicted to make room');
    const onDisk = budgetedBytes(cacheDir);
    assert.ok(onDisk > 0 && onDisk <= budget);
    assert.equal(await edge.metric('registry_edge_cache_size_bytes'), onDisk, 'the size metric is what is on disk');
    assert.deepEqual(await cacheProblems(cacheDir), { wrongBlobs: [], tempFiles: [] });

    // Restart with a stray file under blobs/ and a smaller budget: both are cleaned up at start.
    await stack.edge.stop();
    const strayDir = path.join(cacheDir, 'blobs', 'sha256', 'ab');
    const stray = path.join(strayDir, 'not-a-digest');
    mkdirSync(strayDir, { recursive: true });
    writeFileSync(stray, Buffer.alloc(MiB));
    edge = await edgeOn(cacheDir, { REGISTRY_EDGE_CACHE_MAXSIZE: '8MiB' });
    assert.equal(existsSync(stray), false, 'what is not a blob is removed at start');
    const afterRestart = budgetedBytes(cacheDir);
    assert.ok(afterRestart <= 8 * MiB, `${afterRestart} bytes on disk after a restart with an 8 MiB budget`);
    assert.equal(await edge.metric('registry_edge_cache_size_bytes'), afterRestart);
    const kept = small.filter((b) => existsSync(blobFile(cacheDir, b.digest)));
    assert.ok(kept.length >= 1, 'the most recent blobs that fit stay cached');
    const baseline = descriptors(edge.proc.pid);
    for (const b of small) assertRight(await fetchBlob(blobUrl(edge, b.digest)), b.digest, b.size);
    await waitFor(async () => (await edge.metric('registry_edge_fills_in_flight')) === 0, { what: 'the fills to end' });
    assert.ok(budgetedBytes(cacheDir) <= 8 * MiB);
    assert.equal(await edge.metric('registry_edge_cache_size_bytes'), budgetedBytes(cacheDir));
    assert.deepEqual(await cacheProblems(cacheDir), { wrongBlobs: [], tempFiles: [] });
    await descriptorsBackTo(edge.proc.pid, baseline);
  });
});
