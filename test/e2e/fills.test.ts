// Single-flight fills, verification and crash safety, against a real registry behind a fault shim.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startEdge, type Edge } from '../helpers/edge.js';
import { fetchBlob } from '../helpers/fetch-blob.js';
import { makeOciLayout, pullImage, pushBlob, pushImage, randomFile } from '../helpers/image.js';
import { waitFor } from '../helpers/proc.js';
import type { Registry } from '../helpers/registry.js';
import type { Shim } from '../helpers/shim.js';
import { startStack, type Stack } from '../helpers/stack.js';

const MiB = 1024 * 1024;
const repo = 'team/big';

function blobFile(edge: Edge, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return path.join(edge.cacheDir, 'blobs', 'sha256', hex.slice(0, 2), hex);
}

describe('fills: one upstream fetch, followers stream, nothing unverified is kept', () => {
  let stack: Stack;
  let work: string;
  let registry: Registry;
  let shim: Shim;
  let edge: Edge;
  let blobs = 0;

  async function newBlob(size: number): Promise<string> {
    const file = path.join(work, `blob-${++blobs}.bin`);
    await randomFile(file, size);
    return (await pushBlob(registry.url, repo, file)).digest;
  }

  before(async () => {
    stack = await startStack('re-fills-');
    ({ work, registry, shim, edge } = stack);
  });

  after(async () => {
    stack.edge = edge;
    await stack?.stop();
  });

  test('16 concurrent cold GETs of one large blob: one upstream fetch, 16 correct bodies', async (t) => {
    const size = 64 * MiB;
    const digest = await newBlob(size);
    shim.reset();
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 16 }, () => fetchBlob(`${edge.url}/v2/${repo}/blobs/${digest}`)));
    const seconds = (Date.now() - started) / 1000;
    for (const r of results) {
      assert.equal(r.status, 200);
      assert.equal(r.complete, true);
      assert.equal(r.bytes, size);
      assert.equal(r.digest, digest);
    }
    assert.equal(shim.stats.blobGets(digest), 1, 'exactly one upstream fetch');
    assert.equal(shim.stats.count('HEAD', /\/blobs\//), 0, 'and no membership HEAD for followers under the same name');
    assert.ok(shim.stats.blobBodyBytes <= size * 1.0, `upstream sent ${shim.stats.blobBodyBytes} bytes for a ${size} byte blob`);
    // Every request but the leader either followed the fill or, arriving after its commit, hit the cache.
    await waitFor(async () => {
      const followed = await edge.metric('registry_edge_fill_followers_total');
      const hits = await edge.metric('registry_edge_cache_requests_total', { kind: 'blob', result: 'hit' });
      return followed >= 1 && followed + hits >= 15;
    }, { what: 'followers and hits to be counted' });
    t.diagnostic(`16 clients x ${size / MiB} MiB cold: ${seconds.toFixed(2)} s, upstream GETs ${shim.stats.blobGets(digest)}, upstream bytes ${shim.stats.blobBodyBytes}`);
  });

  test('followers stream while the fill runs; a late follower first reads what is on disk', async () => {
    const size = 16 * MiB;
    const digest = await newBlob(size);
    shim.reset();
    // About 2.7 s of upstream body: a wide margin for the late follower's first byte on a loaded machine.
    shim.setFault({ kind: 'slow-body', pathPattern: /\/blobs\//, bytesPerSecond: 6 * MiB });
    const url = `${edge.url}/v2/${repo}/blobs/${digest}`;
    const first = fetchBlob(url);
    // Join once a quarter of the blob has landed upstream-side.
    await waitFor(() => shim.stats.requests.some((q) => q.bodyBytes > size / 4), { what: 'a quarter of the fill' });
    let upstreamDoneAtLateFirstByte: boolean | undefined;
    const late = fetchBlob(url, () => {
      upstreamDoneAtLateFirstByte = shim.stats.requests.find((q) => q.path.endsWith(digest))?.done;
    });
    const [a, b] = await Promise.all([first, late]);
    shim.setFault(null);
    assert.equal(a.digest, digest);
    assert.equal(b.digest, digest);
    assert.equal(b.bytes, size);
    assert.equal(upstreamDoneAtLateFirstByte, false, 'the late follower got bytes before the upstream finished sending');
    assert.equal(shim.stats.blobGets(digest), 1);
  });

  test('a corrupting upstream: the client sees a failed transfer and nothing is cached', async () => {
    const size = 4 * MiB;
    const digest = await newBlob(size);
    const before = await edge.metric('registry_edge_digest_mismatches_total', { kind: 'blob' });
    shim.reset();
    shim.setFault({ kind: 'flip-byte', pathPattern: /\/blobs\//, offset: 123_456 });
    const results = await Promise.all([1, 2, 3].map(() => fetchBlob(`${edge.url}/v2/${repo}/blobs/${digest}`)));
    shim.setFault(null);
    for (const r of results) {
      if (r.status === 200) assert.equal(r.complete, false, 'never a completed response with wrong bytes');
      // A client that joins as the fill fails is cut before any header (status 0), one that
      // arrives after it ended gets an error answer: neither is given blob bytes as complete.
      else assert.ok(r.status === 0 || r.status >= 500, `status ${r.status}`);
      assert.ok(r.bytes < size);
    }
    // A client arriving after a failed fill ended starts a new one (failures are not cached), so
    // there may be more than one fetch; every one of them must have been caught by the hash.
    // The clients see the failure first; each fill then removes its temp file and counts the mismatch.
    await waitFor(async () => (await edge.metric('registry_edge_fills_in_flight')) === 0, { what: 'the fills to end' });
    const fetches = shim.stats.blobGets(digest);
    assert.ok(fetches >= 1 && fetches <= 3, `${fetches} upstream fetches for 3 clients`);
    assert.equal(await edge.metric('registry_edge_digest_mismatches_total', { kind: 'blob' }), before + fetches);
    assert.equal(existsSync(blobFile(edge, digest)), false, 'the corrupt blob was not committed');
    assert.deepEqual(readdirSync(path.join(edge.cacheDir, 'tmp')), [], 'the temp fill was removed');
    // The next request fetches again and succeeds.
    const retry = await fetchBlob(`${edge.url}/v2/${repo}/blobs/${digest}`);
    assert.equal(retry.digest, digest);
    assert.equal(retry.complete, true);
    assert.equal(shim.stats.blobGets(digest), 2);
  });

  test('skopeo pulling through a corrupting upstream fails, and pulls cleanly once it is fixed', async () => {
    const image = await makeOciLayout(path.join(work, 'layout'), { layers: [3 * MiB], tag: 'v1' });
    await pushImage(image.layoutDir, 'v1', `${registry.host}/${repo}:v1`);
    const layer = image.layers[0];
    assert.ok(layer);
    shim.setFault({ kind: 'flip-byte', pathPattern: new RegExp(`/blobs/${layer.digest}$`), offset: 1000 });
    const bad = await pullImage(`${edge.host}/${repo}:v1`, path.join(work, 'pull-bad'));
    shim.setFault(null);
    assert.notEqual(bad.code, 0);
    assert.equal(existsSync(blobFile(edge, layer.digest)), false);
    const good = await pullImage(`${edge.host}/${repo}:v1`, path.join(work, 'pull-good'));
    assert.equal(good.code, 0, good.stderr);
    // The commit (fsync, rename) may finish just after the client has its last byte.
    await waitFor(() => existsSync(blobFile(edge, layer.digest)), { what: 'the verified blob to be committed' });
  });

  test('a truncated upstream body is not cached and the client transfer fails', async () => {
    const size = 2 * MiB;
    const digest = await newBlob(size);
    shim.setFault({ kind: 'truncate', pathPattern: /\/blobs\//, afterBytes: MiB });
    const r = await fetchBlob(`${edge.url}/v2/${repo}/blobs/${digest}`);
    shim.setFault(null);
    assert.equal(r.complete, false);
    assert.equal(existsSync(blobFile(edge, digest)), false);
  });

  test('a crash in the middle of a fill leaves no visible partial blob', async () => {
    const size = 16 * MiB;
    const digest = await newBlob(size);
    shim.reset();
    shim.setFault({ kind: 'slow-body', pathPattern: /\/blobs\//, bytesPerSecond: 8 * MiB });
    const pending = fetchBlob(`${edge.url}/v2/${repo}/blobs/${digest}`);
    await waitFor(() => readdirSync(path.join(edge.cacheDir, 'tmp')).length > 0 && shim.stats.blobBodyBytes > MiB, { what: 'a fill in progress' });
    edge.proc.child.kill('SIGKILL');
    await edge.proc.exited;
    const cut = await pending;
    shim.setFault(null);
    assert.equal(cut.complete, false);
    assert.equal(existsSync(blobFile(edge, digest)), false);
    edge = await startEdge({ workDir: work, upstreams: [shim.url], cacheDir: edge.cacheDir });
    assert.deepEqual(readdirSync(path.join(edge.cacheDir, 'tmp')), [], 'leftover temp fills are removed at start');
    const again = await fetchBlob(`${edge.url}/v2/${repo}/blobs/${digest}`);
    assert.equal(again.digest, digest);
    assert.equal(shim.stats.blobGets(digest), 2, 'fetched again after the crash');
    // Blobs committed before the crash are still indexed.
    assert.ok(await edge.metric('registry_edge_cache_blobs') >= 3);
  });
});
