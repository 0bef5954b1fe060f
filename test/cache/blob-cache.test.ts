// The cache alone (no HTTP): fills, followers, verification, eviction.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { after, test } from 'node:test';
import { BlobCache } from '../../src/cache/blob-cache.js';
import { BlobStore } from '../../src/cache/blob-store.js';
import { CacheLayout } from '../../src/cache/layout.js';
import { Writability } from '../../src/cache/writability.js';
import { parseDigest, type Digest } from '../../src/oci/grammar.js';
import { mountTmpfs } from '../helpers/mount.js';
import { removeDir, tempDir, waitFor } from '../helpers/proc.js';

const dirs: string[] = [];
const stores: BlobStore[] = [];
const writabilities: Writability[] = [];
after(() => {
  stores.forEach((s) => s.close());
  writabilities.forEach((w) => w.close());
  dirs.forEach(removeDir);
});

interface Setup {
  cache: BlobCache;
  layout: CacheLayout;
  evicted: () => number;
  /** Bytes the store last reported against its budget. */
  used: () => number;
  writability: Writability;
}

async function setup(maxSize = 1 << 30, maxBlobSize = maxSize / 2, dir = tempDir('re-cache-')): Promise<Setup> {
  dirs.push(dir);
  const layout = new CacheLayout(dir);
  let evictions = 0;
  let used = 0;
  const events = { onSizeChange: (bytes: number) => (used = bytes), onEvict: () => evictions++, onSlowRead: () => undefined };
  const store = new BlobStore(layout, { maxSize, maxBlobSize, fsync: false, syncReadMax: 0.001, openFiles: { max: 16, idleSeconds: 60 } }, events);
  stores.push(store);
  await store.init();
  const writability = new Writability(layout.tmp, 60_000, { onChange: () => undefined });
  writabilities.push(writability);
  const cache = new BlobCache(store, false, writability, { onFillStart: () => undefined, onFillEnd: () => undefined, onFollower: () => undefined, onUpstreamBytes: () => undefined });
  return { cache, layout, evicted: () => evictions, used: () => used, writability };
}

function digestOf(data: Buffer): Digest {
  const d = parseDigest(`sha256:${createHash('sha256').update(data).digest('hex')}`);
  assert.ok(d);
  return d;
}

type Send = (dest: Writable, done: (err: Error | undefined) => void) => void;

/** Runs a fill reader into a Writable that copies each chunk (readers reuse their buffers once a write is acknowledged). */
function collect(send: Send | undefined, onChunk?: (n: number) => void): Promise<{ data: Buffer; error: Error | undefined }> {
  assert.ok(send, 'a reader');
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(Buffer.from(chunk));
      onChunk?.(chunk.length);
      callback();
    },
  });
  return new Promise((resolve) => send(sink, (error) => resolve({ data: Buffer.concat(chunks), error })));
}

test('followers read while the fill lands, but never the last byte before it is verified', async () => {
  const { cache, layout } = await setup();
  const data = randomBytes(256 * 1024);
  const digest = digestOf(data);
  const source = new PassThrough();
  let fetches = 0;
  const open = (): ReturnType<BlobCache['lookup']> => cache.lookup(digest, async () => {
    fetches++;
    return { body: source, size: data.length };
  });
  const first = await open();
  const second = await open();
  assert.equal(first.kind, 'fill');
  assert.equal(second.kind, 'fill');
  assert.ok(first.kind === 'fill' && first.leader && second.kind === 'fill' && !second.leader);
  await first.fill.ready;
  const seen = [0, 0];
  const results = [first.fill, second.fill].map((fill, i) => collect(fill.openReader(0, undefined), (n) => (seen[i] = (seen[i] ?? 0) + n)));
  source.write(data.subarray(0, 1000));
  await waitFor(() => seen.every((n) => n === 1000), { what: 'readers to stream the first bytes while the fill runs' });
  // Every byte is in, but the source has not ended, so the hash is unchecked: the last byte stays behind.
  source.write(data.subarray(1000));
  await waitFor(() => seen.every((n) => n === data.length - 1), { what: 'readers to catch up to the held-back byte' });
  source.end();
  const done = await Promise.all(results);
  for (const r of done) assert.deepEqual(r.data, data);
  assert.equal(fetches, 1);
  // Readers finish once the bytes are verified; the commit (fsync, rename) follows.
  await first.fill.done;
  assert.ok(existsSync(layout.blobPath(digest)));
  const hit = await open();
  assert.equal(hit.kind, 'hit');
  if (hit.kind === 'hit') hit.blob.close();
});

test('a digest mismatch destroys every reader and keeps nothing', async () => {
  const { cache, layout } = await setup();
  const data = randomBytes(64 * 1024);
  const digest = digestOf(data);
  const corrupt = Buffer.from(data);
  corrupt[100] = (corrupt[100] ?? 0) ^ 0xff;
  const source = new PassThrough();
  const found = await cache.lookup(digest, async () => ({ body: source, size: data.length }));
  assert.equal(found.kind, 'fill');
  if (found.kind !== 'fill') return;
  await found.fill.ready;
  const result = collect(found.fill.openReader(0, undefined));
  source.end(corrupt);
  const { data: got, error } = await result;
  assert.match(String(error), /hash to/);
  assert.ok(got.length < data.length, 'the reader never saw the whole (wrong) body');
  await found.fill.done;
  assert.equal(existsSync(layout.blobPath(digest)), false);
  assert.deepEqual(readdirSync(layout.tmp), []);
});

test('more bytes than announced fail the fill', async () => {
  const { cache, layout } = await setup();
  const data = randomBytes(1000);
  const digest = digestOf(data);
  const found = await cache.lookup(digest, async () => {
    const body = new PassThrough();
    body.end(Buffer.concat([data, Buffer.from('x')]));
    return { body, size: data.length };
  });
  assert.equal(found.kind, 'fill');
  if (found.kind !== 'fill') return;
  await found.fill.done;
  assert.match(String(found.fill.error), /more than the announced/);
  assert.equal(existsSync(layout.blobPath(digest)), false);
});

test('least recently used blobs are evicted beyond cache.maxsize', async () => {
  const { cache, layout, evicted } = await setup(250 * 1024);
  const blobs = [randomBytes(100 * 1024), randomBytes(100 * 1024), randomBytes(100 * 1024)];
  for (const data of blobs) {
    const found = await cache.lookup(digestOf(data), async () => {
      const body = new PassThrough();
      body.end(data);
      return { body, size: data.length };
    });
    if (found.kind === 'fill') await found.fill.done;
    else found.blob.close();
  }
  assert.equal(evicted(), 1);
  const [a, b, c] = blobs.map((d) => existsSync(layout.blobPath(digestOf(d))));
  assert.deepEqual([a, b, c], [false, true, true]);
});

test('a sha512 digest is verified with sha512', async () => {
  const { cache, layout } = await setup();
  const data = randomBytes(100 * 1024);
  const digest = parseDigest(`sha512:${createHash('sha512').update(data).digest('hex')}`);
  assert.ok(digest);
  const found = await cache.lookup(digest, async () => {
    const body = new PassThrough();
    body.end(data);
    return { body, size: data.length };
  });
  assert.equal(found.kind, 'fill');
  if (found.kind !== 'fill') return;
  await found.fill.done;
  assert.equal(found.fill.error, undefined);
  assert.deepEqual(readFileSync(layout.blobPath(digest)), data);
  // The sha256 of the same bytes under a sha512 name is a mismatch.
  const wrong = parseDigest(`sha512:${createHash('sha256').update(data).digest('hex').repeat(2)}`);
  assert.ok(wrong);
  const bad = await cache.lookup(wrong, async () => {
    const body = new PassThrough();
    body.end(data);
    return { body, size: data.length };
  });
  if (bad.kind !== 'fill') assert.fail('expected a fill');
  await bad.fill.done;
  assert.match(String(bad.fill.error), /hash to sha512:/);
});

/** A fill of `data` from a source that sends it all at once. */
function filled(cache: BlobCache, data: Buffer): ReturnType<BlobCache['lookup']> {
  return cache.lookup(digestOf(data), async () => {
    const body = new PassThrough();
    body.end(data);
    return { body, size: data.length };
  });
}

test('while the cache is not writable, a miss streams to the leader and a follower from memory and nothing is kept', async () => {
  const { cache, layout, writability } = await setup();
  writability.failed(Object.assign(new Error('read-only file system'), { code: 'EROFS' }));
  const data = randomBytes(3 * 1024 * 1024 + 17);
  const digest = digestOf(data);
  const source = new PassThrough();
  const open = (): ReturnType<BlobCache['lookup']> => cache.lookup(digest, async () => ({ body: source, size: data.length }));
  const first = await open();
  const second = await open();
  assert.ok(first.kind === 'fill' && first.leader && second.kind === 'fill' && !second.leader, 'the follower shares the uncached fill');
  await first.fill.ready;
  const results = Promise.all([first.fill, second.fill].map((fill) => collect(fill.openReader(0, undefined))));
  source.end(data);
  for (const r of await results) {
    assert.equal(r.error, undefined);
    assert.deepEqual(r.data, data);
  }
  await first.fill.done;
  assert.equal((first.fill.error as { reason?: string } | undefined)?.reason, 'not_kept');
  assert.equal(existsSync(layout.blobPath(digest)), false);
  assert.deepEqual(readdirSync(layout.tmp), []);
});

test('a blob larger than what is kept is streamed and not kept; fills hold budget and evict to make room', async () => {
  const { cache, layout, evicted, used } = await setup(400 * 1024, 200 * 1024);
  const big = randomBytes(300 * 1024);
  const found = await filled(cache, big);
  assert.ok(found.kind === 'fill');
  await found.fill.ready;
  const got = await collect(found.fill.openReader(0, undefined));
  assert.deepEqual(got.data, big);
  await found.fill.done;
  assert.equal((found.fill.error as { reason?: string } | undefined)?.reason, 'not_kept');
  assert.equal(existsSync(layout.blobPath(digestOf(big))), false);
  assert.equal(used(), 0);
  const blobs = [randomBytes(150 * 1024), randomBytes(150 * 1024), randomBytes(150 * 1024)];
  for (const data of blobs) {
    const f = await filled(cache, data);
    if (f.kind === 'fill') await f.fill.done;
  }
  // The third fill's 150 KiB did not fit beside two committed ones: the oldest went when it started.
  assert.equal(evicted(), 1);
  assert.deepEqual(blobs.map((d) => existsSync(layout.blobPath(digestOf(d)))), [false, true, true]);
  assert.equal(used(), 300 * 1024);
});

test('at start, what is not a blob, a blob over what is kept, and the oldest beyond the budget are removed', async () => {
  const dir = tempDir('re-cache-init-');
  const layout = new CacheLayout(dir);
  const write = (data: Buffer, ageSeconds: number): string => {
    const file = layout.blobPath(digestOf(data));
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, data);
    const t = Date.now() / 1000 - ageSeconds;
    utimesSync(file, t, t);
    return file;
  };
  const oldest = write(randomBytes(100 * 1024), 300);
  const kept = [write(randomBytes(100 * 1024), 200), write(randomBytes(100 * 1024), 100)];
  const tooBig = write(randomBytes(210 * 1024), 50);
  const junk = path.join(layout.blobs, 'sha256', 'ab', 'not-a-digest');
  mkdirSync(path.dirname(junk), { recursive: true });
  writeFileSync(junk, 'x');
  const { used } = await setup(250 * 1024, 200 * 1024, dir);
  assert.deepEqual([oldest, ...kept, tooBig, junk].map(existsSync), [false, true, true, false, false]);
  assert.equal(used(), 200 * 1024);
});

test('a write that fails mid-fill: the fill streams on from memory, pausing the upstream for a reader that lags, and keeps nothing', async () => {
  const parent = tempDir('re-cache-full-');
  dirs.push(parent);
  const small = await mountTmpfs(parent, 'fs', 1024 * 1024);
  try {
    const { cache, layout, writability } = await setup(1 << 30, 1 << 30, path.join(small.dir, 'cache'));
    const data = randomBytes(24 * 1024 * 1024);
    const digest = digestOf(data);
    const source = new PassThrough({ highWaterMark: 64 * 1024 });
    const found = await cache.lookup(digest, async () => ({ body: source, size: data.length }));
    assert.ok(found.kind === 'fill');
    await found.fill.ready;
    // A reader that takes nothing until told: the fill must stop asking the upstream for more.
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const chunks: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(Buffer.from(chunk));
        void held.then(() => callback());
      },
    });
    const send = found.fill.openReader(0, undefined);
    assert.ok(send);
    const ended = new Promise<Error | undefined>((resolve) => send(sink, resolve));
    let offered = 0;
    const feed = async (): Promise<void> => {
      for (let at = 0; at < data.length; at += 64 * 1024) {
        offered = at;
        if (!source.write(data.subarray(at, at + 64 * 1024))) await new Promise((resolve) => source.once('drain', resolve));
      }
      source.end();
    };
    const fed = feed();
    await waitFor(() => !writability.writable, { what: 'the full disk to fail a write' });
    await waitFor(() => source.isPaused() && offered > 0, { what: 'the upstream reads to pause for the lagging reader' });
    // Bounded: the upstream was paused well before the whole blob was offered.
    assert.ok(offered < 16 * 1024 * 1024, `${offered} bytes offered before the pause`);
    release();
    await fed;
    assert.equal(await ended, undefined);
    assert.deepEqual(Buffer.concat(chunks), data);
    await found.fill.done;
    assert.equal((found.fill.error as { reason?: string } | undefined)?.reason, 'write_error');
    assert.equal(existsSync(layout.blobPath(digest)), false);
    assert.deepEqual(readdirSync(layout.tmp), []);
  } finally {
    await small.unmount();
  }
});
