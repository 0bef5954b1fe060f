// The blob index across restarts (snapshot, then the directory checked against it) and
// eviction that never takes a blob from under its reader (a hit or a fill's follower).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { after, test } from 'node:test';
import { BlobCache } from '../../src/cache/blob-cache.js';
import { quietDirs } from '../../src/cache/blob-index-scan.js';
import { readSnapshot } from '../../src/cache/blob-index-snapshot.js';
import { BlobStore, type IndexLoad, type OpenBlob } from '../../src/cache/blob-store.js';
import { CacheLayout } from '../../src/cache/layout.js';
import { Writability } from '../../src/cache/writability.js';
import { parseDigest, type Digest } from '../../src/oci/grammar.js';
import { removeDir, tempDir, waitFor } from '../helpers/proc.js';

const dirs: string[] = [];
after(() => dirs.forEach(removeDir));

interface Opened {
  store: BlobStore;
  load: IndexLoad;
  evictions: () => number;
}

async function openStore(layout: CacheLayout, maxSize = 1 << 20, snapshotInterval?: number): Promise<Opened> {
  let load: IndexLoad | undefined;
  let evictions = 0;
  const store = new BlobStore(layout, { maxSize, maxBlobSize: maxSize, fsync: false, syncReadMax: 0, openFiles: { max: 0, idleSeconds: 1 }, ...(snapshotInterval ? { snapshotInterval } : {}) }, {
    onSizeChange: () => undefined,
    onEvict: () => evictions++,
    onSlowRead: () => undefined,
    onIndexLoad: (l) => (load = l),
  });
  await store.init();
  assert.ok(load, 'init reports how it loaded the index');
  return { store, load, evictions: () => evictions };
}

function newLayout(): CacheLayout {
  const dir = tempDir('re-index-');
  dirs.push(dir);
  return new CacheLayout(dir);
}

/** A blob file put on disk as a commit would leave it, `age` seconds old. */
function putBlob(layout: CacheLayout, size: number, age = 0, bytes = randomBytes(size)): Digest {
  const digest = parseDigest(`sha256:${createHash('sha256').update(bytes).digest('hex')}`);
  assert.ok(digest);
  const path = layout.blobPath(digest);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
  const when = Date.now() / 1000 - age;
  utimesSync(path, when, when);
  return digest;
}

async function use(store: BlobStore, digest: Digest): Promise<void> {
  const blob = await store.open(digest);
  assert.ok(blob, `${digest.value} is a hit`);
  blob.close();
}

async function snapshotKeys(layout: CacheLayout): Promise<string[]> {
  const read = await readSnapshot(layout.indexSnapshot);
  assert.ok('entries' in read, 'problem' in read ? read.problem : '');
  return [...read.entries.keys()];
}

test('the snapshot keeps the least-recently-used order across a restart, not the commit order; the budget then evicts the least recently used', async () => {
  const layout = newLayout();
  // Committed oldest first: a, b, c, d.
  const [a, b, c, d] = [40, 30, 20, 10].map((age) => putBlob(layout, 1000, age)) as [Digest, Digest, Digest, Digest];
  const first = await openStore(layout);
  assert.equal(first.load.from, 'walk');
  assert.equal(first.load.problem, 'no snapshot');
  await use(first.store, b);
  await use(first.store, a);
  await first.store.close();
  assert.deepEqual(await snapshotKeys(layout), [c, d, b, a].map((x) => x.value));

  const again = await openStore(layout);
  assert.deepEqual({ from: again.load.from, blobs: again.load.blobs, unlisted: again.load.unlisted, missing: again.load.missing }, { from: 'snapshot', blobs: 4, unlisted: 0, missing: 0 });
  await again.store.close();

  // Room for two: the two used last stay, whatever their commit order.
  const small = await openStore(layout, 2000);
  assert.equal(small.evictions(), 2);
  assert.deepEqual([a, b, c, d].map((x) => existsSync(layout.blobPath(x))), [true, true, false, false]);
  assert.deepEqual([a, b, c, d].map((x) => small.store.has(x)), [true, true, false, false]);
  await small.store.close();
  assert.deepEqual(await snapshotKeys(layout), [b, a].map((x) => x.value));
});

test('a snapshot is written every cache.index_snapshot_interval when the index changed', async () => {
  const layout = newLayout();
  const [a, b] = [20, 10].map((age) => putBlob(layout, 100, age)) as [Digest, Digest];
  const { store } = await openStore(layout, 1 << 20, 0.05);
  try {
    await waitFor(async () => (await snapshotKeys(layout).catch(() => [])).join() === [a, b].map((x) => x.value).join(), { what: 'the first snapshot' });
    await use(store, a);
    await waitFor(async () => (await snapshotKeys(layout)).join() === [b, a].map((x) => x.value).join(), { what: 'a snapshot with the use of a' });
  } finally {
    await store.close();
  }
});

for (const [what, text] of [
  ['damaged', 'registry-edge blob index 1\nsha256:abc not-a-size\nend 1\n'],
  ['cut short', 'registry-edge blob index 1\nsha256:abc 12\n'],
  ['of another format', 'something else\n'],
  ['whose end line disagrees', 'registry-edge blob index 1\nend 3\n'],
] as const) {
  test(`a snapshot ${what} falls back to the walk of every blob, and a good snapshot replaces it`, async () => {
    const layout = newLayout();
    const blobs = [30, 20, 10].map((age) => putBlob(layout, 500, age));
    mkdirSync(layout.index, { recursive: true });
    writeFileSync(layout.indexSnapshot, text);
    const { store, load } = await openStore(layout);
    try {
      assert.equal(load.from, 'walk');
      assert.match(load.problem ?? '', /snapshot/);
      assert.deepEqual(blobs.map((x) => store.has(x)), [true, true, true]);
      await waitFor(async () => (await snapshotKeys(layout).catch(() => [])).join() === blobs.map((x) => x.value).join(), { what: 'the snapshot to be rewritten' });
    } finally {
      await store.close();
    }
  });
}

test('the check at start indexes a file the snapshot missed, drops an entry whose file is gone, removes what is not a blob', async () => {
  const layout = newLayout();
  const [a, b] = [20, 10].map((age) => putBlob(layout, 100, age)) as [Digest, Digest];
  const first = await openStore(layout);
  await first.store.close();
  // After the snapshot: a is removed (an operator, a crash after an eviction), c is committed (a crash before the next snapshot).
  rmSync(layout.blobPath(a));
  const c = putBlob(layout, 300);
  const stray = join(layout.blobs, 'sha256', 'ab', 'not-a-digest');
  mkdirSync(dirname(stray), { recursive: true });
  writeFileSync(stray, 'x');
  const tooBig = putBlob(layout, 5000);
  const { store, load } = await openStore(layout, 4000);
  try {
    assert.deepEqual({ from: load.from, blobs: load.blobs, unlisted: load.unlisted, missing: load.missing, removed: load.removed }, { from: 'snapshot', blobs: 2, unlisted: 2, missing: 1, removed: 2 });
    assert.equal(store.has(a), false);
    assert.equal(store.sizeOf(c), 300);
    assert.equal(existsSync(stray), false);
    assert.equal(existsSync(layout.blobPath(tooBig)), false);
    assert.equal(await store.open(a), undefined);
  } finally {
    await store.close();
  }
  assert.deepEqual(await snapshotKeys(layout), [b, c].map((x) => x.value));
  assert.deepEqual(readdirSync(layout.index), ['snapshot'], 'no temp file left beside the snapshot');
});

test('a blob indexed but gone when it is opened (removed by another process) is a miss and leaves the index', async () => {
  const layout = newLayout();
  const [a, b] = [20, 10].map((age) => putBlob(layout, 100, age)) as [Digest, Digest];
  const sizes: number[] = [];
  const store = new BlobStore(layout, { maxSize: 1 << 20, maxBlobSize: 1 << 20, fsync: false, syncReadMax: 0, openFiles: { max: 0, idleSeconds: 1 } }, {
    onSizeChange: (bytes) => sizes.push(bytes),
    onEvict: () => undefined,
    onSlowRead: () => undefined,
  });
  await store.init();
  rmSync(layout.blobPath(a));
  assert.equal(await store.open(a), undefined);
  assert.equal(store.has(a), false);
  assert.equal(sizes.at(-1), 100, 'the budget no longer counts it');
  await use(store, b);
  await store.close();
  assert.deepEqual(await snapshotKeys(layout), [b.value]);
});

test('eviction passes over a blob being read: its file stays until its reader lets go, then it goes if the budget needs it', async () => {
  const layout = newLayout();
  const [a, b, c] = [30, 20, 10].map((age) => putBlob(layout, 1000, age)) as [Digest, Digest, Digest];
  const { store, evictions } = await openStore(layout, 3000);
  try {
    // a is read for the whole test; b and c are used after it, so a is the least recently used.
    const reading = (await store.open(a)) as OpenBlob;
    assert.ok(reading);
    await use(store, b);
    await use(store, c);
    const space = store.reserve(1000);
    assert.ok(space, 'room made by evicting b, not a');
    assert.equal(evictions(), 1);
    assert.equal(store.has(b), false);
    await waitFor(() => !existsSync(layout.blobPath(b)), { what: 'b to be unlinked' });
    assert.equal(existsSync(layout.blobPath(a)), true);
    // c read too: nothing left to evict, so no room; both files stay.
    const alsoReading = (await store.open(c)) as OpenBlob;
    assert.equal(store.reserve(1000), undefined);
    assert.deepEqual([a, c].map((x) => existsSync(layout.blobPath(x))), [true, true]);
    // Over the budget while they are read (a manifest charged), room is made as soon as a reader lets go.
    store.charge(500);
    assert.equal(evictions(), 1);
    reading.close();
    reading.close();
    assert.equal(evictions(), 2);
    assert.equal(store.has(a), false, 'a went once its reader let go');
    await waitFor(() => !existsSync(layout.blobPath(a)), { what: 'a to be unlinked' });
    assert.equal(existsSync(layout.blobPath(c)), true);
    alsoReading.close();
    space.release();
  } finally {
    await store.close();
  }
});

test('a blob whose fill still has a follower reading its file is not evicted until that reader is done', async () => {
  const layout = newLayout();
  const data = randomBytes(256 * 1024);
  const digest = parseDigest(`sha256:${createHash('sha256').update(data).digest('hex')}`);
  assert.ok(digest);
  let evictions = 0;
  const store = new BlobStore(layout, { maxSize: data.length, maxBlobSize: data.length, fsync: false, syncReadMax: 0, openFiles: { max: 0, idleSeconds: 1 } }, {
    onSizeChange: () => undefined,
    onEvict: () => evictions++,
    onSlowRead: () => undefined,
  });
  await store.init();
  const writability = new Writability(layout.tmp, 60_000, { onChange: () => undefined });
  const cache = new BlobCache(store, false, writability, { onFillStart: () => undefined, onFillEnd: () => undefined, onFollower: () => undefined, onUpstreamBytes: () => undefined });
  try {
    const source = new PassThrough();
    const found = await cache.lookup(digest, async () => ({ body: source, size: data.length }));
    assert.ok(found.kind === 'fill');
    await found.fill.ready;
    // A follower whose client has stopped reading: its writes are not acknowledged until released.
    const held: Array<() => void> = [];
    let blocked = true;
    const chunks: Buffer[] = [];
    const sink = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(Buffer.from(chunk));
        if (blocked) held.push(callback);
        else callback();
      },
    });
    const send = found.fill.openReader(0, undefined);
    assert.ok(send);
    const read = new Promise<Error | undefined>((resolve) => send(sink, resolve));
    source.end(data);
    await found.fill.done;
    assert.equal(found.fill.error, undefined);
    assert.equal(store.has(digest), true, 'committed');
    // Over the budget: the only blob is still being read through the fill, so it stays.
    store.charge(1);
    assert.equal(evictions, 0);
    assert.equal(existsSync(layout.blobPath(digest)), true);
    blocked = false;
    held.splice(0).forEach((callback) => callback());
    assert.equal(await read, undefined);
    assert.deepEqual(Buffer.concat(chunks), data);
    await waitFor(() => evictions === 1, { what: 'the eviction once the follower is done' });
    assert.equal(store.has(digest), false);
  } finally {
    writability.close();
    await store.close();
  }
});

test('a blob directory unchanged since the snapshot is not read at start; a changed or removed one is', async () => {
  const layout = newLayout();
  // Two blobs in two directories.
  const a = putBlob(layout, 100, 20);
  const prefix = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex').slice(0, 2);
  let bytes = randomBytes(100);
  while (prefix(bytes) === a.hex.slice(0, 2)) bytes = randomBytes(100);
  const b = putBlob(layout, 100, 10, bytes);
  const dirOf = (x: Digest): string => dirname(layout.blobPath(x));
  const first = await openStore(layout);
  await first.store.saveIndex();
  // A snapshot vouches only for directories that have been still for a while (ctimes tick coarsely).
  await waitFor(async () => (await quietDirs(layout, new Set())).size === 2, { what: 'the blob directories to be still' });
  await use(first.store, a);
  await first.store.saveIndex();
  await first.store.close();
  const clean = await openStore(layout);
  assert.deepEqual({ from: clean.load.from, blobs: clean.load.blobs, dirsRead: clean.load.dirsRead }, { from: 'snapshot', blobs: 2, dirsRead: 0 });
  await clean.store.close();

  // While the edge is stopped: a stray beside a, and b's directory removed whole.
  const stray = join(dirOf(a), 'not-a-digest');
  writeFileSync(stray, 'x');
  rmSync(dirOf(b), { recursive: true });
  const changed = await openStore(layout);
  try {
    assert.deepEqual(
      { dirsRead: changed.load.dirsRead, blobs: changed.load.blobs, missing: changed.load.missing, removed: changed.load.removed },
      { dirsRead: 1, blobs: 1, missing: 1, removed: 1 },
    );
    assert.equal(existsSync(stray), false);
    assert.equal(changed.store.has(a), true);
    assert.equal(changed.store.has(b), false);
  } finally {
    await changed.store.close();
  }
});
