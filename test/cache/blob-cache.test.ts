// The cache alone (no HTTP): fills, followers, verification, eviction.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { PassThrough, Writable } from 'node:stream';
import { after, test } from 'node:test';
import { BlobCache } from '../../src/cache/blob-cache.js';
import { BlobStore } from '../../src/cache/blob-store.js';
import { CacheLayout } from '../../src/cache/layout.js';
import { Writability } from '../../src/cache/writability.js';
import { parseDigest, type Digest } from '../../src/oci/grammar.js';
import { removeDir, tempDir, waitFor } from '../helpers/proc.js';

const dirs: string[] = [];
const stores: BlobStore[] = [];
const writabilities: Writability[] = [];
after(() => {
  stores.forEach((s) => s.close());
  writabilities.forEach((w) => w.close());
  dirs.forEach(removeDir);
});

async function setup(maxSize = 1 << 30, maxBlobSize = maxSize / 2): Promise<{ cache: BlobCache; layout: CacheLayout; evicted: () => number; writability: Writability }> {
  const dir = tempDir('re-cache-');
  dirs.push(dir);
  const layout = new CacheLayout(dir);
  let evictions = 0;
  const store = new BlobStore(layout, { maxSize, maxBlobSize, fsync: false, syncReadMax: 0.001, openFiles: { max: 16, idleSeconds: 60 } }, { onSizeChange: () => undefined, onEvict: () => evictions++, onSlowRead: () => undefined });
  stores.push(store);
  await store.init();
  const writability = new Writability(layout.tmp, 60_000, { onChange: () => undefined });
  writabilities.push(writability);
  const cache = new BlobCache(store, false, writability, { onFillStart: () => undefined, onFillEnd: () => undefined, onFollower: () => undefined, onUpstreamBytes: () => undefined });
  return { cache, layout, evicted: () => evictions, writability };
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
