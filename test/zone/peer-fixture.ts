// One replica's cache with its peer listener, in process: for the zone's unit tests.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { Agent } from 'undici';
import { BlobCache } from '../../src/cache/blob-cache.js';
import { BlobStore } from '../../src/cache/blob-store.js';
import { CacheLayout } from '../../src/cache/layout.js';
import { ManifestStore } from '../../src/cache/manifest-store.js';
import { Writability } from '../../src/cache/writability.js';
import { createLogger } from '../../src/log/logger.js';
import { parseDigest, type Digest } from '../../src/oci/grammar.js';
import { createPeerHandler } from '../../src/zone/peer-server.js';
import { PeerRegistry } from '../../src/zone/peer-registry.js';
import { removeDir, tempDir } from '../helpers/proc.js';

export const SECRET = 'zone-secret-for-tests';
export const silent = createLogger({ level: 'silent', sync: true });

export interface Replica {
  readonly cache: BlobCache;
  readonly store: BlobStore;
  readonly manifests: ManifestStore;
  readonly layout: CacheLayout;
  /** http://127.0.0.1:<port> of its peer listener. */
  readonly url: string;
  /** Bytes its peer listener reported served. */
  served(): number;
  close(): Promise<void>;
}

export function digestOf(data: Buffer): Digest {
  const d = parseDigest(`sha256:${createHash('sha256').update(data).digest('hex')}`);
  assert.ok(d);
  return d;
}

export async function startReplica(): Promise<Replica> {
  const dir = tempDir('re-zone-');
  const layout = new CacheLayout(dir);
  const store = new BlobStore(layout, { maxSize: 1 << 30, maxBlobSize: 1 << 29, fsync: false, syncReadMax: 0.001, openFiles: { max: 16, idleSeconds: 60 } }, { onSizeChange: () => undefined, onEvict: () => undefined, onSlowRead: () => undefined });
  const writability = new Writability(layout.tmp, 60_000, { onChange: () => undefined });
  const manifests = new ManifestStore(layout, false, writability, (bytes) => store.charge(bytes));
  await manifests.init();
  await store.init();
  const cache = new BlobCache(store, false, writability, { onFillStart: () => undefined, onFillEnd: () => undefined, onFollower: () => undefined, onUpstreamBytes: () => undefined });
  let served = 0;
  const server = createServer(createPeerHandler({ blobCache: cache, manifests, secret: SECRET, onServedBytes: (n) => (served += n), log: silent }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    cache,
    store,
    manifests,
    layout,
    url: `http://127.0.0.1:${port}`,
    served: () => served,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await cache.drain();
      store.close();
      writability.close();
      removeDir(dir);
    },
  };
}

/** A PeerRegistry to `url` with the test secret (or `secret`), on its own Agent (closed with `close`). */
export function peerReader(url: string, secret = SECRET, timeoutMs = 2_000): PeerRegistry & { close(): Promise<void> } {
  const agent = new Agent();
  const reader = new PeerRegistry(url, { secret, timeoutMs, maxManifestBytes: 4 << 20, dispatcher: agent });
  return Object.assign(reader, { close: () => agent.close() });
}

type Send = (dest: Writable, done: (err: Error | undefined) => void) => void;

/** Runs a sender into a Writable that copies each chunk (senders reuse their buffers). */
export function collect(send: Send): Promise<{ data: Buffer; error: Error | undefined }> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(Buffer.from(chunk));
      callback();
    },
  });
  return new Promise((resolve) => send(sink, (error) => resolve({ data: Buffer.concat(chunks), error })));
}
