// Digests beyond sha256, empty blobs, HEAD on a miss, and a graceful shutdown that drains.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fetchBlob } from '../helpers/fetch-blob.js';
import { pushBlob, randomFile } from '../helpers/image.js';
import { httpRequest, waitFor } from '../helpers/proc.js';
import { startStack, type Stack } from '../helpers/stack.js';

const MiB = 1024 * 1024;
const repo = 'team/edge-cases';

describe('edge cases of the pull path', () => {
  let stack: Stack;

  before(async () => {
    stack = await startStack('re-cases-');
  });

  after(async () => {
    await stack?.stop();
  });

  test('sha512 digests pass the grammar and reach the upstream (registry:2 itself names blobs by sha256)', async () => {
    const digest = `sha512:${'a'.repeat(128)}`;
    stack.shim.reset();
    const res = await httpRequest(`${stack.edge.url}/v2/${repo}/blobs/${digest}`);
    assert.equal(res.status, 404);
    assert.match(res.body.toString(), /BLOB_UNKNOWN/);
    assert.equal(stack.shim.stats.blobGets(digest), 1);
  });

  test('an empty blob is a valid blob', async () => {
    const file = path.join(stack.work, 'empty.bin');
    writeFileSync(file, '');
    const { digest } = await pushBlob(stack.registry.url, repo, file);
    for (let i = 0; i < 2; i++) {
      const res = await httpRequest(`${stack.edge.url}/v2/${repo}/blobs/${digest}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-length'], '0');
      assert.equal(res.body.length, 0);
    }
  });

  test('HEAD of a blob the edge does not have asks the upstream and fetches no body', async () => {
    const file = path.join(stack.work, 'head.bin');
    const digest = await randomFile(file, MiB);
    await pushBlob(stack.registry.url, repo, file);
    stack.shim.reset();
    const head = await httpRequest(`${stack.edge.url}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(MiB));
    assert.equal(stack.shim.stats.blobGets(digest), 0);
    assert.equal(stack.shim.stats.count('HEAD', new RegExp(`/blobs/${digest}$`)), 1);
    const unknown = await httpRequest(`${stack.edge.url}/v2/${repo}/blobs/sha256:${'7'.repeat(64)}`, { method: 'HEAD' });
    assert.equal(unknown.status, 404);
  });

  test('SIGTERM stops accepting, lets a transfer in progress finish, then exits 0', async () => {
    const file = path.join(stack.work, 'drain.bin');
    const digest = await randomFile(file, 8 * MiB);
    await pushBlob(stack.registry.url, repo, file);
    stack.shim.setFault({ kind: 'slow-body', pathPattern: /\/blobs\//, bytesPerSecond: 8 * MiB });
    const transfer = fetchBlob(`${stack.edge.url}/v2/${repo}/blobs/${digest}`);
    await waitFor(() => stack.shim.stats.blobBodyBytes > MiB, { what: 'the transfer to be under way' });
    stack.edge.proc.child.kill('SIGTERM');
    await waitFor(() => /shutting down/.test(stack.edge.proc.logs()), { what: 'the edge to begin its shutdown' });
    await assert.rejects(httpRequest(`${stack.edge.url}/v2/`, { timeoutMs: 2000 }), 'no new requests once shutting down');
    const done = await transfer;
    stack.shim.setFault(null);
    assert.equal(done.complete, true, 'the transfer in progress finished');
    assert.equal(done.digest, digest);
    assert.equal(readFileSync(file).length, done.bytes);
    assert.equal(await stack.edge.proc.exited, 0);
  });
});
