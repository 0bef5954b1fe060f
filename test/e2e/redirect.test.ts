// Upstream blob GETs redirected to "object storage": the edge follows, and the registry's
// Authorization never goes to the other host.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startEdge, type Edge } from '../helpers/edge.js';
import { fetchBlob } from '../helpers/fetch-blob.js';
import { pushBlob, randomFile } from '../helpers/image.js';
import { httpRequest, removeDir, tempDir } from '../helpers/proc.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { startShim, type Shim } from '../helpers/shim.js';

const repo = 'team/redirected';

describe('redirects to object storage', () => {
  let work: string;
  let registry: Registry;
  let front: Shim;
  let storage: Shim;
  let edge: Edge;
  let digest: string;

  before(async () => {
    work = tempDir('re-redirect-');
    registry = await startRegistry();
    front = await startShim(registry.url);
    // Another listener for the same registry stands in for S3/Swift: a different origin.
    storage = await startShim(registry.url);
    front.redirectBlobs(storage.url);
    const file = path.join(work, 'blob.bin');
    await randomFile(file, 2 * 1024 * 1024);
    digest = (await pushBlob(registry.url, repo, file)).digest;
    edge = await startEdge({ workDir: work, upstreams: [front.url], env: { REGISTRY_EDGE_AUTH_MODE: 'upstream-check' } });
  });

  after(async () => {
    await edge?.stop();
    await front?.stop();
    await storage?.stop();
    await registry?.dispose();
    if (work) removeDir(work);
  });

  test('a 307 is followed, the bytes are verified and cached, and Authorization stays with the registry', async () => {
    const authorization = 'Basic ' + Buffer.from('alice:secret').toString('base64');
    const res = await httpRequest(`${edge.url}/v2/${repo}/blobs/${digest}`, { headers: { authorization } });
    assert.equal(res.status, 200);
    const toRegistry = front.stats.matching('GET', /\/blobs\//);
    const toStorage = storage.stats.matching('GET', /\/blobs\//);
    assert.equal(toRegistry.length, 1);
    assert.equal(toRegistry[0]?.status, 307);
    assert.equal(toRegistry[0]?.authorization, authorization, 'the client credentials went to the registry');
    assert.equal(toStorage.length, 1);
    assert.equal(toStorage[0]?.authorization, undefined, 'no credentials to object storage');
    const cached = await fetchBlob(`${edge.url}/v2/${repo}/blobs/${digest}`);
    assert.equal(cached.digest, digest);
    assert.equal(storage.stats.blobGets(digest), 1, 'the second GET was a cache hit');
  });

  test('in upstream-check mode, /v2/ and its challenge come from the upstream', async () => {
    const res = await httpRequest(`${edge.url}/v2/`);
    assert.equal(res.status, 200);
    assert.equal(front.stats.count('GET', /^\/v2\/$/), 1);
  });
});
