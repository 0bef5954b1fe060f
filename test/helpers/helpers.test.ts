// Self-check of the e2e harness against a real docker-registry + skopeo.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  makeOciLayout,
  pullImage,
  pushBlob,
  pushImage,
  randomFile,
  sha256File,
  skopeoInspect,
  verifyDirPull,
  type ImageInfo,
} from './image.js';
import { freePort, httpRequest, removeDir, startProcess, tempDir, waitFor } from './proc.js';
import { startRegistry, toYaml, type Registry } from './registry.js';
import { startShim, type Shim } from './shim.js';

const MiB = 1024 * 1024;

describe('proc helpers', () => {
  test('waitFor returns the first truthy value and names what timed out', async () => {
    let n = 0;
    assert.equal(await waitFor(() => (++n >= 3 ? n : false), { intervalMs: 1 }), 3);
    await assert.rejects(waitFor(() => false, { timeoutMs: 50, intervalMs: 5, what: 'the moon' }), /the moon/);
  });

  test('startProcess logs to a file and stop() escalates to SIGKILL', async () => {
    const dir = tempDir('re-proc-');
    try {
      const logFile = path.join(dir, 'p.log');
      // Ignores SIGTERM, so only the SIGKILL fallback can end it.
      const p = startProcess(
        process.execPath,
        ['-e', "process.on('SIGTERM', () => {}); console.log('hello-log'); setInterval(() => {}, 1000)"],
        { logFile, killAfterMs: 300 },
      );
      await waitFor(() => p.logs().includes('hello-log'), { what: 'child output' });
      assert.equal(p.running(), true);
      await p.stop();
      await p.stop();
      assert.equal(p.running(), false);
      assert.equal(await p.exited, null);
    } finally {
      removeDir(dir);
    }
  });

  test('toYaml quotes strings and nests blocks', () => {
    assert.equal(
      toYaml({ version: '0.1', http: { addr: '127.0.0.1:1', headers: { 'X-A': ['b'] } }, n: 1, e: [] }),
      'version: "0.1"\nhttp:\n  addr: "127.0.0.1:1"\n  headers:\n    X-A:\n      - "b"\nn: 1\ne: []\n',
    );
  });
});

describe('registry + shim + skopeo', () => {
  let work: string;
  let registry: Registry;
  let shim: Shim;
  let objectStore: Shim | undefined;
  let image: ImageInfo;
  let pulls = 0;
  const repo = 'team/app';

  const pullDir = (): string => path.join(work, `pull-${++pulls}`);

  before(async () => {
    work = tempDir('re-selfcheck-');
    registry = await startRegistry();
    shim = await startShim(registry.url);
    image = await makeOciLayout(path.join(work, 'layout'), { layers: [1 * MiB, 3 * MiB], tag: '1.0' });
    await pushImage(image.layoutDir, '1.0', `${registry.host}/${repo}:1.0`);
  });

  after(async () => {
    await objectStore?.stop();
    await shim?.stop();
    await registry?.dispose();
    if (work) removeDir(work);
  });

  test('the layout has a valid ustar/gzip layer and the pushed manifest is byte-identical', async () => {
    const layer = image.layers[0];
    assert.ok(layer);
    assert.equal(await sha256File(layer.path), layer.digest);
    assert.ok(layer.uncompressedSize > MiB && layer.uncompressedSize % 512 === 0);
    const m = await httpRequest(`${registry.url}/v2/${repo}/manifests/1.0`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    assert.equal(m.status, 200);
    assert.equal(m.headers['docker-content-digest'], image.manifestDigest);
    assert.deepEqual(m.body, image.manifestBytes);
    const raw = await skopeoInspect(`${registry.host}/${repo}:1.0`);
    assert.deepEqual(raw, JSON.parse(image.manifestBytes.toString('utf8')));
  });

  test('pull through the shim succeeds, verifies and is counted', async (t) => {
    shim.reset();
    const dest = pullDir();
    const r = await pullImage(`${shim.host}/${repo}:1.0`, dest);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await verifyDirPull(dest, image), { ok: true });
    for (const l of image.layers) assert.ok(shim.stats.blobGets(l.digest) >= 1, `no GET for ${l.digest}`);
    const layerBytes = image.layers.reduce((a, l) => a + l.size, 0);
    assert.ok(shim.stats.blobBodyBytes >= layerBytes, `${shim.stats.blobBodyBytes} < ${layerBytes}`);
    assert.ok(shim.stats.responseBodyBytes >= shim.stats.blobBodyBytes);
    for (const q of shim.stats.requests) {
      t.diagnostic(`${q.method} ${q.path} -> ${q.status} accept=${String(q.headers.accept)} ua=${String(q.headers['user-agent'])}`);
    }
  });

  test('flip-byte on a layer makes skopeo fail the pull', async () => {
    const layer = image.layers[1];
    assert.ok(layer);
    shim.reset();
    shim.setFault({ kind: 'flip-byte', pathPattern: new RegExp(`/blobs/${layer.digest}$`), offset: 1000 });
    const r = await pullImage(`${shim.host}/${repo}:1.0`, pullDir());
    shim.setFault(null);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /digest|checksum/i);
    assert.ok(shim.stats.requests.some((q) => q.faults.includes('flip-byte')));
  });

  test('status and truncate faults fail pulls; times limits a fault', async () => {
    shim.reset();
    shim.setFault({ kind: 'status', pathPattern: /\/manifests\//, status: 503, times: 1 });
    const first = await httpRequest(`${shim.url}/v2/${repo}/manifests/1.0`);
    const second = await httpRequest(`${shim.url}/v2/${repo}/manifests/1.0`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    assert.equal(first.status, 503);
    assert.equal(second.status, 200);
    assert.equal(shim.stats.forwarded, 1);

    const layer = image.layers[1];
    assert.ok(layer);
    shim.setFault({ kind: 'truncate', pathPattern: new RegExp(`/blobs/${layer.digest}$`), afterBytes: 4096 });
    const r = await pullImage(`${shim.host}/${repo}:1.0`, pullDir());
    shim.setFault(null);
    assert.notEqual(r.code, 0);
    const q = shim.stats.matching('GET', new RegExp(`/blobs/${layer.digest}$`)).at(-1);
    assert.equal(q?.bodyBytes, 4096);
  });

  test('slow-body streams observably; delay holds a request back', async () => {
    shim.reset();
    const layer = image.layers[0];
    assert.ok(layer);
    shim.setFault({ kind: 'slow-body', pathPattern: /\/blobs\//, bytesPerSecond: 2 * MiB });
    const pending = httpRequest(`${shim.url}/v2/${repo}/blobs/${layer.digest}`);
    const rec = await waitFor(() => shim.stats.requests.find((q) => q.bodyBytes > 0 && !q.done), {
      what: 'a partially streamed blob',
    });
    assert.ok(rec.bodyBytes < layer.size);
    shim.setFault(null);
    const res = await pending;
    assert.equal(res.status, 200);
    assert.equal(res.body.length, layer.size);

    shim.setFault({ kind: 'delay', pathPattern: /^\/v2\/$/, ms: 300 });
    const t0 = Date.now();
    assert.equal((await httpRequest(`${shim.url}/v2/`)).status, 200);
    assert.ok(Date.now() - t0 >= 250);
    shim.setFault(null);
  });

  test('down and stopListening make the shim unreachable', async () => {
    shim.reset();
    shim.setFault({ kind: 'down' });
    await assert.rejects(httpRequest(`${shim.url}/v2/`), /ECONNRESET|socket hang up/);
    shim.setFault(null);
    await shim.stopListening();
    await assert.rejects(httpRequest(`${shim.url}/v2/`), /ECONNREFUSED/);
    await shim.listenAgain();
    assert.equal((await httpRequest(`${shim.url}/v2/`)).status, 200);
  });

  test('redirectBlobs sends blob GETs to "object storage" and skopeo follows', async (t) => {
    objectStore = await startShim(registry.url);
    shim.reset();
    shim.redirectBlobs(objectStore.url);
    const dest = pullDir();
    const r = await pullImage(`${shim.host}/${repo}:1.0`, dest);
    shim.redirectBlobs(null);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await verifyDirPull(dest, image), { ok: true });
    for (const l of image.layers) {
      assert.ok(shim.stats.requests.some((q) => q.redirectedTo?.endsWith(`/blobs/${l.digest}`)));
      assert.ok(objectStore.stats.blobGets(l.digest) >= 1);
    }
    assert.equal(shim.stats.blobBodyBytes, 0);
    for (const q of objectStore.stats.requests) {
      t.diagnostic(`object store: ${q.method} ${q.path} authorization=${String(q.authorization)}`);
    }
  });

  test('pushBlob streams a monolithic upload; restart keeps storage and port', async () => {
    const file = path.join(work, 'blob.bin');
    const digest = await randomFile(file, 2 * MiB + 17);
    const pushed = await pushBlob(shim.url, 'team/blobs', file);
    assert.deepEqual(pushed, { digest, size: fs.statSync(file).size });
    const oldPid = registry.proc.pid;
    await registry.restart();
    assert.notEqual(registry.proc.pid, oldPid);
    const head = await httpRequest(`${registry.url}/v2/team/blobs/blobs/${digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(pushed.size));
  });

  test('freePort gives a bindable port', async () => {
    const port = await freePort();
    const srv = net.createServer();
    await new Promise<void>((resolve) => srv.listen(port, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  });
});
