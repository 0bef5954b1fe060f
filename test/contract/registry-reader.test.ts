// One contract for every RegistryReader: the same assertions against the cache (LocalRegistry,
// filled through the fill machinery), a remote origin (RemoteRegistry in front of a real
// docker-registry) and a zone peer (PeerRegistry to the peer listener over that cache). A peer
// holds no tags (they are an origin's, and a peer is asked by digest only): it rejects every
// tag as absent, which the contract allows a reader that says so.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Agent } from 'undici';
import { BlobCache } from '../../src/cache/blob-cache.js';
import { BlobStore } from '../../src/cache/blob-store.js';
import { CacheLayout } from '../../src/cache/layout.js';
import { LocalRegistry, type LocalBlob } from '../../src/cache/local-registry.js';
import { ManifestStore } from '../../src/cache/manifest-store.js';
import { Writability } from '../../src/cache/writability.js';
import { createLogger } from '../../src/log/logger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { parseDigest, type Digest } from '../../src/oci/grammar.js';
import type { ByteRange, RegistryReader } from '../../src/reads/registry-reader.js';
import { UpstreamClient } from '../../src/upstream/client.js';
import { RemoteRegistry } from '../../src/upstream/remote-registry.js';
import { createPeerHandler } from '../../src/zone/peer-server.js';
import { PeerRegistry } from '../../src/zone/peer-registry.js';
import { MEDIA_TYPES, pushBlob } from '../helpers/image.js';
import { httpRequest, removeDir, tempDir } from '../helpers/proc.js';
import { startRegistry, type Registry } from '../helpers/registry.js';

const REPO = 'contract/app';
const TAG = 'v1';

function digestOf(data: Buffer): Digest {
  const d = parseDigest(`sha256:${createHash('sha256').update(data).digest('hex')}`);
  assert.ok(d);
  return d;
}

/** What every implementation holds: one blob and one manifest tagged TAG in REPO. */
interface Content {
  readonly blob: Buffer;
  readonly blobDigest: Digest;
  readonly manifest: Buffer;
  readonly manifestDigest: Digest;
}

/** One implementation under test; `readBlob` opens through it and reads what it opened its own way. */
interface Subject {
  readonly reader: RegistryReader<unknown>;
  /** False for a reader that holds no tags (a zone peer): every tag rejects as absent. */
  readonly tags: boolean;
  readonly readBlob: (range?: ByteRange) => Promise<Buffer>;
}

const work = tempDir('re-contract-');
const blob = randomBytes(200_000);
const content: Content = (() => {
  const blobDigest = digestOf(blob);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: MEDIA_TYPES.ociConfig, digest: blobDigest.value, size: blob.length },
      layers: [{ mediaType: MEDIA_TYPES.ociLayerGzip, digest: blobDigest.value, size: blob.length }],
    }),
  );
  return { blob, blobDigest, manifest, manifestDigest: digestOf(manifest) };
})();

let registry: Registry;
let upstream: UpstreamClient;
const closers: Array<() => void> = [];
const peerClosers: Array<() => Promise<void>> = [];
const subjects = new Map<string, Subject>();

async function readStream(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Sends a local blob into a Writable that copies each chunk (the pump reuses its buffers). */
function readLocal(opened: LocalBlob): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(Buffer.from(chunk));
      cb();
    },
  });
  return new Promise((resolve, reject) => opened.send(dest, (err) => (err ? reject(err) : resolve(Buffer.concat(chunks)))));
}

async function remoteSubject(): Promise<Subject> {
  registry = await startRegistry();
  const file = path.join(work, 'blob');
  writeFileSync(file, content.blob);
  await pushBlob(registry.url, REPO, file);
  const put = await httpRequest(`${registry.url}/v2/${REPO}/manifests/${TAG}`, { method: 'PUT', headers: { 'content-type': MEDIA_TYPES.ociManifest }, body: content.manifest });
  assert.equal(put.status, 201, put.body.toString());
  upstream = new UpstreamClient(
    {
      servers: [{ url: registry.url, weight: 1, maxFails: 1, failTimeoutMs: 10_000, backup: false }],
      balance: 'round_robin',
      connectTimeoutMs: 5_000,
      headersTimeoutMs: 30_000,
      bodyTimeoutMs: 30_000,
      connections: 4,
      maxRedirects: 3,
      credentials: undefined,
      realms: [],
      healthIntervalMs: 0,
      healthTimeoutMs: 1_000,
    },
    new Metrics(),
    createLogger({ level: 'silent', sync: true }),
  );
  const reader = new RemoteRegistry(upstream, { credentials: () => undefined, maxManifestBytes: 4 << 20, onDigestMismatch: () => undefined });
  return { reader, tags: true, readBlob: async (range) => readStream((await reader.openBlob(REPO, content.blobDigest, undefined, range)).body) };
}

/** The cache the local subject reads, served by a peer listener for the peer subject. */
let localParts: { cache: BlobCache; manifests: ManifestStore } | undefined;

async function localSubject(): Promise<Subject> {
  const layout = new CacheLayout(path.join(work, 'cache'));
  const events = { onSizeChange: () => undefined, onEvict: () => undefined, onSlowRead: () => undefined };
  const store = new BlobStore(layout, { maxSize: 1 << 30, maxBlobSize: 1 << 29, fsync: false, syncReadMax: 0.001, openFiles: { max: 16, idleSeconds: 60 } }, events);
  const writability = new Writability(layout.tmp, 60_000, { onChange: () => undefined });
  closers.push(() => store.close(), () => writability.close());
  const manifests = new ManifestStore(layout, false, writability, (bytes) => store.charge(bytes));
  await manifests.init();
  await store.init();
  // Filled the way the edge fills it, from a source that gives the blob's bytes.
  const cache = new BlobCache(store, false, writability, { onFillStart: () => undefined, onFillEnd: () => undefined, onFollower: () => undefined, onUpstreamBytes: () => undefined });
  const found = await cache.lookup(content.blobDigest, async () => ({ body: Readable.from([content.blob]), size: content.blob.length }));
  assert.equal(found.kind, 'fill');
  if (found.kind === 'fill') await found.fill.done;
  await manifests.put(content.manifestDigest, MEDIA_TYPES.ociManifest, content.manifest);
  await manifests.putTag(REPO, TAG, { digest: content.manifestDigest.value, mediaType: MEDIA_TYPES.ociManifest, confirmedAt: Date.now() });
  localParts = { cache, manifests };
  const reader = new LocalRegistry(store, manifests);
  return { reader, tags: true, readBlob: async (range) => readLocal(await reader.openBlob(REPO, content.blobDigest, undefined, range)) };
}

async function peerSubject(): Promise<Subject> {
  assert.ok(localParts);
  const secret = 'contract-zone-secret';
  const server = createServer(createPeerHandler({ blobCache: localParts.cache, manifests: localParts.manifests, secret, onServedBytes: () => undefined, log: createLogger({ level: 'silent', sync: true }) }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const agent = new Agent();
  peerClosers.push(() => agent.close(), () => new Promise<void>((resolve) => server.close(() => resolve())));
  const reader = new PeerRegistry(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { secret, timeoutMs: 5_000, maxManifestBytes: 4 << 20, dispatcher: agent });
  return { reader, tags: false, readBlob: async (range) => readStream((await reader.openBlob(REPO, content.blobDigest, undefined, range)).body) };
}

before(async () => {
  subjects.set('local', await localSubject());
  subjects.set('remote', await remoteSubject());
  subjects.set('peer', await peerSubject());
});

after(async () => {
  for (const close of peerClosers) await close();
  closers.forEach((close) => close());
  await upstream?.close();
  await registry?.dispose();
  removeDir(work);
});

const absent = digestOf(Buffer.from('never pushed'));

/** Rejects as absent: an error whose status is 404, not a refusal. */
async function rejectsAbsent(answer: Promise<unknown>): Promise<void> {
  await assert.rejects(answer, (err: unknown) => (err as { status?: number }).status === 404);
}

for (const name of ['local', 'remote', 'peer']) {
  describe(`RegistryReader contract: ${name}`, () => {
    const subject = (): Subject => {
      const s = subjects.get(name);
      assert.ok(s);
      return s;
    };

    test('stat of a present blob gives its size', async () => {
      assert.equal(await subject().reader.statBlob(REPO, content.blobDigest, undefined), content.blob.length);
    });

    test('stat of an absent blob rejects with 404', async () => {
      await rejectsAbsent(subject().reader.statBlob(REPO, absent, undefined));
    });

    test('opening a blob gives all its bytes', async () => {
      assert.ok((await subject().readBlob()).equals(content.blob));
    });

    test('opening a range gives exactly those bytes', async () => {
      const range = { start: 1_000, end: 150_001 };
      assert.ok((await subject().readBlob(range)).equals(content.blob.subarray(range.start, range.end)));
      const last = { start: content.blob.length - 1, end: content.blob.length };
      assert.ok((await subject().readBlob(last)).equals(content.blob.subarray(last.start)));
    });

    test('opening an absent blob rejects with 404', async () => {
      await rejectsAbsent(subject().reader.openBlob(REPO, absent, undefined));
    });

    test('resolving a tag gives the digest it names (a reader without tags: rejects with 404)', async () => {
      const { reader, tags } = subject();
      if (tags) assert.equal((await reader.resolveTag(REPO, TAG, undefined)).digest, content.manifestDigest.value);
      else await rejectsAbsent(reader.resolveTag(REPO, TAG, undefined));
    });

    test('resolving an unknown tag, or a tag in an unknown repository, rejects with 404', async () => {
      await rejectsAbsent(subject().reader.resolveTag(REPO, 'no-such-tag', undefined));
      await rejectsAbsent(subject().reader.resolveTag('no/such-repository', TAG, undefined));
    });

    test('getting a manifest by digest gives its exact bytes and media type', async () => {
      const got = await subject().reader.getManifest(REPO, content.manifestDigest, undefined);
      assert.equal(got.digest, content.manifestDigest.value);
      assert.equal(got.mediaType, MEDIA_TYPES.ociManifest);
      assert.ok(got.bytes.equals(content.manifest));
    });

    test('getting an absent manifest rejects with 404', async () => {
      await rejectsAbsent(subject().reader.getManifest(REPO, absent, undefined));
    });
  });
}
