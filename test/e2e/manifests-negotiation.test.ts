// Manifest negotiation with a real Docker manifest list, If-None-Match on manifests, and
// DELETE of manifests and blobs through the edge (also across a restart).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startEdge } from '../helpers/edge.js';
import { MEDIA_TYPES, makeOciLayout, pushImage, skopeo, type ImageInfo } from '../helpers/image.js';
import { httpRequest, type HttpResult } from '../helpers/proc.js';
import { startStack, type Stack } from '../helpers/stack.js';

const SCHEMA1 = 'application/vnd.docker.distribution.manifest.v1+prettyjws';
const EVERY_TYPE = Object.values({
  oci: MEDIA_TYPES.ociManifest,
  index: MEDIA_TYPES.ociIndex,
  docker: MEDIA_TYPES.dockerManifest,
  list: MEDIA_TYPES.dockerManifestList,
}).join(', ');

interface Seen {
  readonly status: number;
  readonly type: string;
  readonly digest: unknown;
}

const seen = (res: HttpResult): Seen => ({
  status: res.status,
  type: String(res.headers['content-type'] ?? '').split(';')[0] ?? '',
  digest: res.headers['docker-content-digest'],
});

describe('manifests: negotiation with a manifest list, If-None-Match, DELETE', () => {
  let stack: Stack;
  let doomed: ImageInfo;
  let list: Buffer;
  let listDigest: string;
  let amd64Digest: string;

  const get = (base: string, repoPath: string, headers: Record<string, string> = {}, method = 'GET'): Promise<HttpResult> =>
    httpRequest(`${base}/v2/${repoPath}`, { method, headers });
  const manifestGets = (): number => stack.shim.stats.count('GET', /\/manifests\//);

  before(async () => {
    stack = await startStack('re-negotiation-', {
      before: async ({ work, registry }) => {
        const layout = path.join(work, 'layout');
        await makeOciLayout(layout, { layers: [4096], tag: 'amd64' });
        await makeOciLayout(layout, { layers: [4096], tag: 'arm64' });
        doomed = await makeOciLayout(layout, { layers: [2048], tag: 'doomed' });
        for (const arch of ['amd64', 'arm64']) await pushImage(layout, arch, `${registry.host}/multi/app:${arch}`, { format: 'v2s2' });
        await pushImage(layout, 'doomed', `${registry.host}/del/app:gone`);
        await pushImage(layout, 'doomed', `${registry.host}/del/other:kept`);
      },
    });
    // The Docker manifest list, pushed straight to the registry as a multi-arch build would.
    const entries = [];
    for (const arch of ['amd64', 'arm64']) {
      const res = await get(stack.registry.url, `multi/app/manifests/${arch}`, { accept: MEDIA_TYPES.dockerManifest });
      assert.equal(res.status, 200);
      entries.push({ mediaType: MEDIA_TYPES.dockerManifest, digest: String(res.headers['docker-content-digest']), size: res.body.length, platform: { architecture: arch, os: 'linux' } });
    }
    amd64Digest = entries[0]?.digest ?? '';
    list = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.dockerManifestList, manifests: entries }));
    const put = await httpRequest(`${stack.registry.url}/v2/multi/app/manifests/latest`, { method: 'PUT', headers: { 'content-type': MEDIA_TYPES.dockerManifestList }, body: list });
    assert.equal(put.status, 201, put.body.toString());
    listDigest = String(put.headers['docker-content-digest']);
  });

  after(async () => {
    await stack?.stop();
  });

  test('a client that takes no manifest lists gets the upstream\'s own answer; the tag stays the list for every other client', async () => {
    const edge = stack.edge.url;
    const dockerOnly = { accept: MEDIA_TYPES.dockerManifest };
    const direct = seen(await get(stack.registry.url, 'multi/app/manifests/latest', dockerOnly));
    assert.deepEqual(direct, { status: 200, type: MEDIA_TYPES.dockerManifest, digest: amd64Digest }, 'registry:2 answers with the linux/amd64 manifest');
    // The first pull of the tag through the edge is one that does not accept lists.
    assert.deepEqual(seen(await get(edge, 'multi/app/manifests/latest', dockerOnly)), direct);
    assert.deepEqual(seen(await get(edge, 'multi/app/manifests/latest', dockerOnly, 'HEAD')), direct);

    const every = await get(edge, 'multi/app/manifests/latest', { accept: EVERY_TYPE });
    assert.deepEqual(seen(every), { status: 200, type: MEDIA_TYPES.dockerManifestList, digest: listDigest }, 'a client accepting lists gets the list');
    assert.deepEqual(every.body, list, 'byte for byte as pushed');
    const before = manifestGets();
    assert.deepEqual(seen(await get(edge, 'multi/app/manifests/latest')), seen(every), 'no Accept: the list, from the cache');
    assert.equal(manifestGets(), before, 'the canonical mapping was served from the cache');
    assert.deepEqual(seen(await get(edge, 'multi/app/manifests/latest', dockerOnly)), direct, 'the list never leaks to a client that does not accept it');

    const dir = path.join(stack.work, 'pulled-list');
    const pulled = await skopeo(['copy', '--all', '--src-tls-verify=false', '--src-no-creds', `docker://${stack.edge.host}/multi/app:latest`, `dir:${dir}`]);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.deepEqual(readFileSync(path.join(dir, 'manifest.json')), list, 'skopeo pulled the list through the edge');
  });

  test('a schema1 rewrite is passed through as the upstream sent it and never becomes the tag\'s mapping', async () => {
    const edge = stack.edge.url;
    const ociOnly = { accept: MEDIA_TYPES.ociManifest };
    const rewritten = await get(edge, 'multi/app/manifests/amd64', ociOnly);
    assert.equal(rewritten.status, 200, rewritten.body.toString());
    assert.equal(seen(rewritten).type, SCHEMA1);
    const doc = JSON.parse(rewritten.body.toString()) as { name?: unknown; signatures?: unknown };
    assert.equal(doc.name, 'multi/app');
    assert.ok(Array.isArray(doc.signatures), 'the signed schema1 document, as registry:2 wrote it');
    assert.deepEqual(seen(await get(edge, 'multi/app/manifests/amd64', { accept: EVERY_TYPE })), { status: 200, type: MEDIA_TYPES.dockerManifest, digest: amd64Digest });
  });

  test('If-None-Match of the manifest\'s ETag answers 304 with its digest and no body', async () => {
    const edge = stack.edge.url;
    const accept = { accept: EVERY_TYPE };
    for (const condition of [`"${listDigest}"`, `W/"${listDigest}"`, '*', `"sha256:${'0'.repeat(64)}", "${listDigest}"`]) {
      for (const method of ['GET', 'HEAD']) {
        const res = await get(edge, 'multi/app/manifests/latest', { ...accept, 'if-none-match': condition }, method);
        assert.equal(res.status, 304, `${method} If-None-Match: ${condition}`);
        assert.equal(res.headers.etag, `"${listDigest}"`);
        assert.equal(res.headers['docker-content-digest'], listDigest);
        assert.equal(res.body.length, 0);
      }
    }
    const byDigest = await get(edge, `multi/app/manifests/${listDigest}`, { ...accept, 'if-none-match': `"${listDigest}"` });
    assert.equal(byDigest.status, 304, 'by digest too');
    const other = await get(edge, 'multi/app/manifests/latest', { ...accept, 'if-none-match': `"sha256:${'0'.repeat(64)}"` });
    assert.deepEqual(seen(other), { status: 200, type: MEDIA_TYPES.dockerManifestList, digest: listDigest });
    assert.deepEqual(other.body, list);
    const unknown = await get(edge, 'multi/app/manifests/nope', { ...accept, 'if-none-match': '*' });
    assert.equal(unknown.status, 404, 'the tag is resolved as usual first');
  });

  test('after a DELETE the upstream accepted, the manifest, its tag and the blob are no longer served under that repository, also after a restart', async () => {
    const oci = { accept: MEDIA_TYPES.ociManifest };
    const layer = doomed.layers[0]?.digest ?? '';
    const edgeUrl = (): string => stack.edge.url;
    assert.equal((await get(edgeUrl(), 'del/app/manifests/gone', oci)).status, 200);
    assert.equal((await get(edgeUrl(), `del/app/manifests/${doomed.manifestDigest}`, oci)).status, 200);
    assert.equal((await get(edgeUrl(), `del/app/blobs/${layer}`)).status, 200);

    assert.equal((await get(edgeUrl(), `del/app/manifests/${doomed.manifestDigest}`, {}, 'DELETE')).status, 202);
    assert.equal((await get(edgeUrl(), `del/app/manifests/${doomed.manifestDigest}`, oci)).status, 404);
    assert.equal((await get(edgeUrl(), 'del/app/manifests/gone', oci)).status, 404, 'the tag mapped to the deleted digest is asked about again');
    assert.equal((await get(edgeUrl(), `del/app/blobs/${layer}`, {}, 'DELETE')).status, 202);
    assert.equal((await get(edgeUrl(), `del/app/blobs/${layer}`, {}, 'HEAD')).status, 404);
    assert.equal((await get(edgeUrl(), `del/app/blobs/${layer}`)).status, 404);
    // Other repositories still hold the same bytes.
    assert.equal((await get(edgeUrl(), `del/other/manifests/${doomed.manifestDigest}`, oci)).status, 200);
    assert.equal((await get(edgeUrl(), `del/other/blobs/${layer}`)).status, 200);

    const { cacheDir } = stack.edge;
    await stack.edge.stop();
    stack.edge = await startEdge({ workDir: stack.work, upstreams: [stack.shim.url], cacheDir });
    assert.equal((await get(edgeUrl(), `del/app/manifests/${doomed.manifestDigest}`, oci)).status, 404, 'the removal survived the restart');
    assert.equal((await get(edgeUrl(), `del/app/blobs/${layer}`, {}, 'HEAD')).status, 404);
    assert.equal((await get(edgeUrl(), `del/other/manifests/${doomed.manifestDigest}`, oci)).status, 200);
  });
});
