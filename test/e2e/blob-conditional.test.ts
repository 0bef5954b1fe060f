// Conditional blob requests (RFC 9110 §13.1): If-None-Match answers 304 once the blob is
// known to exist, without fetching it; If-Range decides between the range and the whole blob.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cacheProblems } from '../helpers/cache-invariants.js';
import { fetchBlob } from '../helpers/fetch-blob.js';
import { pushBlob, randomFile, sha256Digest } from '../helpers/image.js';
import { httpRequest, waitFor, type HttpResult } from '../helpers/proc.js';
import { startStack, type Stack } from '../helpers/stack.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const repo = 'team/conditional';
const other = `sha256:${'0'.repeat(64)}`;

describe('conditional blob requests', () => {
  let stack: Stack;
  const blobs: Record<'cold' | 'warm' | 'ranged' | 'slow', string> = { cold: '', warm: '', ranged: '', slow: '' };

  before(async () => {
    stack = await startStack('re-cond-', {
      before: async ({ work, registry }) => {
        for (const [name, size] of [['cold', 64 * KiB], ['warm', 64 * KiB], ['ranged', 100 * KiB], ['slow', 4 * MiB]] as const) {
          const file = path.join(work, `${name}.bin`);
          blobs[name] = await randomFile(file, size);
          await pushBlob(registry.url, repo, file);
        }
      },
    });
  });

  after(async () => {
    await stack?.stop();
  });

  const url = (digest: string): string => `${stack.edge.url}/v2/${repo}/blobs/${digest}`;
  const cached = (digest: string): boolean => existsSync(path.join(stack.edge.cacheDir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7)));
  const upstreamFor = (method: string, digest: string): number => stack.shim.stats.count(method, new RegExp(`/blobs/${digest}$`));

  function assertNotModified(res: HttpResult, digest: string): void {
    assert.equal(res.status, 304);
    assert.equal(res.headers.etag, `"${digest}"`);
    assert.equal(res.headers['docker-content-digest'], digest);
    assert.equal(res.body.length, 0);
  }

  test('If-None-Match on a blob the edge does not hold: 304 after the upstream HEAD, no GET, nothing cached', async () => {
    const digest = blobs.cold;
    stack.shim.reset();
    assertNotModified(await httpRequest(url(digest), { headers: { 'if-none-match': `"${digest}"` } }), digest);
    assertNotModified(await httpRequest(url(digest), { method: 'HEAD', headers: { 'if-none-match': `W/"${digest}"` } }), digest);
    assert.equal(upstreamFor('HEAD', digest), 2, 'each 304 established that the blob exists upstream');
    assert.equal(stack.shim.stats.blobGets(digest), 0, 'no fill was started for a 304');
    assert.equal(cached(digest), false);
    // Existence first: a blob the upstream does not have is 404, even under If-None-Match: *.
    const absent = await httpRequest(url(`sha256:${'7'.repeat(64)}`), { headers: { 'if-none-match': '*' } });
    assert.equal(absent.status, 404);
    assert.match(absent.body.toString(), /BLOB_UNKNOWN/);
  });

  test('If-None-Match on a cached blob: 304 from the cache, the upstream not asked; a tag that does not match is ignored', async () => {
    const digest = blobs.warm;
    const first = await httpRequest(url(digest));
    assert.equal(first.status, 200);
    await waitFor(() => cached(digest), { what: 'the blob to be committed' });
    stack.shim.reset();
    for (const field of [`"${digest}"`, `"${other}", W/"${digest}"`, '*']) {
      assertNotModified(await httpRequest(url(digest), { headers: { 'if-none-match': field } }), digest);
      assertNotModified(await httpRequest(url(digest), { method: 'HEAD', headers: { 'if-none-match': field } }), digest);
    }
    const changed = await httpRequest(url(digest), { headers: { 'if-none-match': `"${other}"` } });
    assert.equal(changed.status, 200);
    assert.equal(sha256Digest(changed.body), digest);
    // Health checks (GET /v2/) may come and go; nothing about blobs went upstream.
    assert.deepEqual(stack.shim.stats.matching(undefined, /\/blobs\//).map((r) => `${r.method} ${r.path}`), [], 'all answered from the cache');
  });

  test('If-None-Match while a fill of the blob runs: 304 once the fill has its answer, no second upstream request', async () => {
    const digest = blobs.slow;
    stack.shim.reset();
    stack.shim.setFault({ kind: 'slow-body', pathPattern: new RegExp(`/blobs/${digest}$`), bytesPerSecond: MiB });
    try {
      const transfer = fetchBlob(url(digest));
      await waitFor(() => stack.shim.stats.blobBodyBytes > 0, { what: 'the fill to be under way' });
      assertNotModified(await httpRequest(url(digest), { headers: { 'if-none-match': `"${digest}"` } }), digest);
      assert.deepEqual(stack.shim.stats.matching(undefined, /\/blobs\//).map((r) => r.method), ['GET'], 'only the fill asked the upstream');
      const done = await transfer;
      assert.equal(done.complete, true);
      assert.equal(done.digest, digest);
    } finally {
      stack.shim.setFault(null);
    }
  });

  test('If-Range: the blob\'s own tag gets the range (206); another tag, a weak tag or a date the whole blob (200)', async () => {
    const digest = blobs.ranged;
    const range = 'bytes=0-9';
    // On a miss first: a non-matching If-Range fills and sends the whole blob.
    const whole = await httpRequest(url(digest), { headers: { range, 'if-range': `"${other}"` } });
    assert.equal(whole.status, 200);
    assert.equal(whole.headers['content-range'], undefined);
    assert.equal(sha256Digest(whole.body), digest);
    await waitFor(() => cached(digest), { what: 'the blob to be committed' });
    const part = await httpRequest(url(digest), { headers: { range, 'if-range': `"${digest}"` } });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], `bytes 0-9/${100 * KiB}`);
    assert.deepEqual(part.body, whole.body.subarray(0, 10));
    for (const validator of [`"${other}"`, `W/"${digest}"`, new Date().toUTCString()]) {
      const res = await httpRequest(url(digest), { headers: { range, 'if-range': validator } });
      assert.equal(res.status, 200, `If-Range: ${validator}`);
      assert.equal(res.headers['content-length'], String(100 * KiB));
      assert.equal(sha256Digest(res.body), digest);
    }
    assert.deepEqual(await cacheProblems(stack.edge.cacheDir), { wrongBlobs: [], tempFiles: [] });
  });
});
