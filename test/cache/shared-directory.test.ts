// Two BlobStores on one directory, as two workers of a host (workers: N): the owner keeps
// the budget, the other finds blobs on disk, reports commits, uses and held bytes, and
// forgets what the owner evicts. Their events are passed straight across, as the primary does.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, test } from 'node:test';
import { BlobStore, type DirectoryEvent } from '../../src/cache/blob-store.js';
import { CacheLayout } from '../../src/cache/layout.js';
import { parseDigest, type Digest } from '../../src/oci/grammar.js';
import { removeDir, tempDir } from '../helpers/proc.js';

const KiB = 1024;
const dirs: string[] = [];
after(() => dirs.forEach(removeDir));

interface Pair {
  owner: BlobStore;
  other: BlobStore;
  ownerBytes: () => number;
  evictions: () => number;
  root: string;
  close(): Promise<void>;
}

async function pair(maxSize: number): Promise<Pair> {
  const root = tempDir('re-shared-dir-');
  dirs.push(root);
  let ownerBytes = 0;
  let evictions = 0;
  const stores: { owner?: BlobStore; other?: BlobStore } = {};
  const make = (worker: number, owner: boolean, onSize: (bytes: number) => void): BlobStore =>
    new BlobStore(
      new CacheLayout(root, worker),
      { maxSize, maxBlobSize: maxSize, fsync: false, syncReadMax: 0, openFiles: { max: 4, idleSeconds: 60 }, shared: { owner, tell: (e: DirectoryEvent) => (owner ? stores.other : stores.owner)?.heard(e) } },
      { onSizeChange: (bytes) => onSize(bytes), onEvict: () => void (owner && evictions++), onSlowRead: () => undefined },
    );
  stores.owner = make(1, true, (b) => (ownerBytes = b));
  stores.other = make(2, false, () => undefined);
  const { owner, other } = stores as Required<typeof stores>;
  await owner.init();
  await other.init();
  return { owner, other, ownerBytes: () => ownerBytes, evictions: () => evictions, root, close: async () => void (await Promise.all([owner.close(), other.close()])) };
}

function blobBytes(size: number): { digest: Digest; bytes: Buffer } {
  const bytes = randomBytes(size);
  const digest = parseDigest(`sha256:${createHash('sha256').update(bytes).digest('hex')}`);
  assert.ok(digest);
  return { digest, bytes };
}

/** Commits `size` random bytes through `store` as a fill would: reserve, temp file, commit. */
async function commit(store: BlobStore, size: number): Promise<Digest> {
  const { digest, bytes } = blobBytes(size);
  const space = store.reserve(size);
  assert.ok(space, 'room for the fill');
  const temp = store.tempPath(digest);
  mkdirSync(dirname(temp), { recursive: true });
  writeFileSync(temp, bytes);
  const done = await store.commit(digest, temp, size, space);
  done();
  return digest;
}

test('a blob the owner committed is found on disk by the other worker at its first use', async () => {
  const p = await pair(1024 * KiB);
  const digest = await commit(p.owner, 10 * KiB);
  assert.equal(p.other.sizeOf(digest), 10 * KiB);
  const blob = await p.other.open(digest);
  assert.equal(blob?.size, 10 * KiB);
  blob?.close();
  await p.close();
});

test('the other worker\'s commits and held bytes count in the owner\'s budget, and the owner evicts for both', async () => {
  const p = await pair(100 * KiB);
  const first = await commit(p.other, 40 * KiB);
  assert.equal(p.ownerBytes(), 40 * KiB, 'the owner indexed the other worker\'s commit');
  const space = p.other.reserve(30 * KiB);
  assert.ok(space);
  assert.equal(p.ownerBytes(), 70 * KiB, 'a fill in progress in the other worker is held with the owner');
  space.release();
  assert.equal(p.ownerBytes(), 40 * KiB);
  // Past the budget: the owner evicts the least recently used, the other worker's first commit.
  await commit(p.owner, 40 * KiB);
  await commit(p.owner, 40 * KiB);
  assert.equal(p.evictions(), 1);
  assert.equal(existsSync(new CacheLayout(p.root).blobPath(first)), false, 'unlinked');
  assert.equal(await p.other.open(first), undefined, 'forgotten by the other worker too');
  assert.ok(p.ownerBytes() <= 100 * KiB);
  await p.close();
});

test('what the other worker serves moves up the owner\'s LRU order (told at close or once a second)', async () => {
  const p = await pair(100 * KiB);
  const old = await commit(p.owner, 40 * KiB);
  const newer = await commit(p.owner, 40 * KiB);
  const blob = await p.other.open(old);
  blob?.close();
  await p.other.close();
  // old was used last (by the other worker): newer is evicted first.
  await commit(p.owner, 40 * KiB);
  assert.equal(p.owner.has(old), true);
  assert.equal(p.owner.has(newer), false);
  await p.owner.close();
});
