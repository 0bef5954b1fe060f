// Real clients and a token-protected upstream: containerd's ctr through a hosts.toml mirror,
// and the edge answering the upstream's bearer challenges with its own (anonymous or basic) credentials.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ctrContentDigests, ctrPull, startContainerd, writeHostsToml, type Containerd } from '../helpers/containerd.js';
import { startEdge, type Edge } from '../helpers/edge.js';
import { makeOciLayout, pullImage, pushImage, verifyDirPull, type ImageInfo } from '../helpers/image.js';
import { removeDir, tempDir, waitFor } from '../helpers/proc.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { startShim, type Shim } from '../helpers/shim.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

const MiB = 1024 * 1024;

describe('containerd (ctr) pulls through the edge as a hosts.toml mirror', () => {
  let work: string;
  let registry: Registry;
  let shim: Shim;
  let edge: Edge;
  let containerd: Containerd;
  let image: ImageInfo;

  before(async () => {
    work = tempDir('re-ctr-');
    registry = await startRegistry();
    shim = await startShim(registry.url);
    image = await makeOciLayout(path.join(work, 'layout'), { layers: [2 * MiB, MiB], tag: '1.0' });
    await pushImage(image.layoutDir, '1.0', `${registry.host}/library/app:1.0`);
    edge = await startEdge({ workDir: work, upstreams: [shim.url] });
    containerd = await startContainerd();
  });

  after(async () => {
    await containerd?.stop();
    await edge?.stop();
    await shim?.stop();
    await registry?.dispose();
    if (work) removeDir(work);
  });

  test('ctr pulls and unpacks through the edge; the blobs came from the edge, fetched once upstream', async () => {
    const hostsDir = path.join(work, 'certs.d');
    // The upstream registry's own name, with the edge as its mirror: what operators write for kubelet.
    writeHostsToml(hostsDir, shim.host, { server: `http://${shim.host}`, mirrors: [{ url: edge.url, capabilities: ['pull', 'resolve'] }] });
    shim.reset();
    const r = await ctrPull(containerd.address, `${shim.host}/library/app:1.0`, hostsDir);
    assert.equal(r.code, 0, r.stderr);
    const content = await ctrContentDigests(containerd.address);
    for (const l of image.layers) {
      assert.ok(content.includes(l.digest), `containerd holds ${l.digest}`);
      // Exactly one upstream GET per layer, and it came from the edge (containerd fetched from the edge, not the origin).
      const gets = shim.stats.matching('GET', new RegExp(`/blobs/${l.digest}$`));
      assert.equal(gets.length, 1, l.digest);
      assert.match(String(gets[0]?.headers['user-agent']), /^registry-edge\//);
    }
    // A fill is committed (fsync, rename) just after its last byte went out.
    await waitFor(async () => (await edge.metric('registry_edge_fills_total', { result: 'committed' })) >= image.layers.length, { what: 'the fills to be committed' });
    // containerd tells a mirror which registry it stands for.
    await waitFor(() => /"path":"\/v2\/library\/app\/manifests\/1\.0"/.test(edge.proc.logs()), { what: 'the manifest request in the edge access log' });
  });
});

describe('upstream token auth: the edge answers bearer challenges itself', () => {
  let work: string;
  let tokens: TokenService;
  let registry: Registry;
  let image: ImageInfo;
  const edges: Edge[] = [];

  before(async () => {
    work = tempDir('re-upauth-');
    tokens = await startTokenService({
      users: {
        edge: { password: 'edge-secret', access: [{ repo: '**', actions: ['pull'] }] },
        pusher: { password: 'push-secret', access: [{ repo: '**', actions: ['pull', 'push'] }] },
      },
      anonymous: [{ repo: 'public/*', actions: ['pull'] }],
    });
    registry = await startRegistry({ config: tokens.registryConfig() });
    image = await makeOciLayout(path.join(work, 'layout'), { layers: [MiB, MiB / 2], tag: '1.0' });
    await pushImage(image.layoutDir, '1.0', `${registry.host}/public/app:1.0`, { creds: 'pusher:push-secret' });
    await pushImage(image.layoutDir, '1.0', `${registry.host}/private/app:1.0`, { creds: 'pusher:push-secret' });
  });

  after(async () => {
    for (const e of edges) await e.stop();
    await registry?.dispose();
    await tokens?.stop();
    if (work) removeDir(work);
  });

  const edgeWith = async (env: Record<string, string>): Promise<Edge> => {
    const edge = await startEdge({ workDir: work, upstreams: [registry.url], cacheDir: path.join(work, `cache-${edges.length}`), env });
    edges.push(edge);
    return edge;
  };
  const tokenRealmHost = (): string => new URL(tokens.url).host;

  test('anonymous: one token request per scope, cached while it is valid, and the image pulls', async () => {
    const edge = await edgeWith({ REGISTRY_EDGE_UPSTREAM_AUTH_REALMS: tokenRealmHost() });
    tokens.requests.length = 0;
    const dest = path.join(work, 'anon');
    const r = await pullImage(`${edge.host}/public/app:1.0`, dest);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await verifyDirPull(dest, image), { ok: true });
    const asked = tokens.requests.filter((q) => q.status === 200);
    assert.equal(asked.length, 1, 'manifest and every blob shared one token');
    assert.deepEqual(asked[0]?.scopes, ['repository:public/app:pull']);
    assert.equal(asked[0]?.user, undefined);
    const denied = await pullImage(`${edge.host}/private/app:1.0`, path.join(work, 'anon-private'));
    assert.notEqual(denied.code, 0, 'anonymous rights do not reach private/*');
  });

  test('basic credentials of the edge itself open private repositories', async () => {
    const edge = await edgeWith({
      REGISTRY_EDGE_UPSTREAM_AUTH_REALMS: tokenRealmHost(),
      REGISTRY_EDGE_UPSTREAM_AUTH_USERNAME: 'edge',
      REGISTRY_EDGE_UPSTREAM_AUTH_PASSWORD: 'edge-secret',
    });
    tokens.requests.length = 0;
    const dest = path.join(work, 'private');
    const r = await pullImage(`${edge.host}/private/app:1.0`, dest);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await verifyDirPull(dest, image), { ok: true });
    assert.ok(tokens.requests.some((q) => q.user === 'edge' && q.status === 200));
  });

  test('a realm not on the allow-list never receives the edge credentials', async () => {
    const edge = await edgeWith({ REGISTRY_EDGE_UPSTREAM_AUTH_USERNAME: 'edge', REGISTRY_EDGE_UPSTREAM_AUTH_PASSWORD: 'edge-secret' });
    tokens.requests.length = 0;
    const r = await pullImage(`${edge.host}/private/app:1.0`, path.join(work, 'refused'));
    assert.notEqual(r.code, 0);
    assert.equal(tokens.requests.length, 0, 'the token service was never asked');
    await waitFor(() => /not in upstream\.auth\.realms/.test(edge.proc.logs()), { what: 'the refused realm in the edge log' });
  });
});
