// The least-recently-used order survives a restart of the edge (the blob index snapshot):
// the first blob evicted after the restart is the one used least recently, not the one
// committed first.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { startEdge } from '../helpers/edge.js';
import { fetchBlob } from '../helpers/fetch-blob.js';
import { waitFor } from '../helpers/proc.js';
import { pushRandomBlob } from '../helpers/random-blob.js';
import { startStack, type Stack } from '../helpers/stack.js';

const MiB = 1024 * 1024;
const repo = 'restart/lru';
// Room for three of the 1 MiB blobs, not four.
const env = { REGISTRY_EDGE_CACHE_MAXSIZE: `${3 * MiB + MiB / 2}` };

let stack: Stack;
before(async () => {
  stack = await startStack('re-restart-lru-', { edge: { env } });
});
after(() => stack?.stop());

function blobFile(digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return path.join(stack.edge.cacheDir, 'blobs', 'sha256', hex.slice(0, 2), hex);
}

async function pull(digest: string): Promise<void> {
  const r = await fetchBlob(`${stack.edge.url}/v2/${repo}/blobs/${digest}`);
  assert.equal(r.status, 200, r.error);
  assert.equal(r.digest, digest);
}

test('after a restart the blob used least recently is evicted first, not the one committed first', async () => {
  const [a, b, c, d] = await Promise.all([1, 2, 3, 4].map(() => pushRandomBlob(stack, repo, MiB)));
  assert.ok(a && b && c && d);
  // Committed a, b, c (in that order); then a is used again: b is the least recently used.
  for (const blob of [a, b, c]) {
    await pull(blob.digest);
    await waitFor(() => existsSync(blobFile(blob.digest)), { what: 'the blob to be committed' });
  }
  await pull(a.digest);

  await stack.edge.stop();
  stack.edge = await startEdge({ workDir: stack.work, upstreams: [stack.shim.url], cacheDir: stack.edge.cacheDir, env });
  assert.equal(await stack.edge.metric('registry_edge_cache_blobs'), 3);
  stack.shim.reset();
  // d needs room for one more blob.
  await pull(d.digest);
  await waitFor(() => existsSync(blobFile(d.digest)), { what: 'd to be committed' });
  await waitFor(() => !existsSync(blobFile(b.digest)), { what: 'b to be evicted' });
  assert.deepEqual([a, c].map((x) => existsSync(blobFile(x.digest))), [true, true], 'a (used last before the restart) and c stay');
  await pull(a.digest);
  assert.equal(stack.shim.stats.blobGets(a.digest), 0, 'a is still a hit');
  assert.equal(await stack.edge.metric('registry_edge_cache_evictions_total'), 1);
});
