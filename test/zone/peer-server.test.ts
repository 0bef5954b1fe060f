// The peer listener alone: the secret, what it serves (committed, filling) and what it refuses.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { carriesSecret } from '../../src/zone/peer-server.js';
import { httpRequest, waitFor } from '../helpers/proc.js';
import { SECRET, digestOf, startReplica, type Replica } from './peer-fixture.js';

const auth = { authorization: `Bearer ${SECRET}` };

test('carriesSecret takes exactly Bearer <secret>', () => {
  assert.equal(carriesSecret(`Bearer ${SECRET}`, SECRET), true);
  assert.equal(carriesSecret(`Bearer ${SECRET}x`, SECRET), false);
  assert.equal(carriesSecret(`Bearer ${SECRET.slice(0, -1)}`, SECRET), false);
  assert.equal(carriesSecret(`Basic ${SECRET}`, SECRET), false);
  assert.equal(carriesSecret(SECRET, SECRET), false);
  assert.equal(carriesSecret('Bearer ', SECRET), false);
  assert.equal(carriesSecret(undefined, SECRET), false);
});

describe('peer listener', () => {
  let replica: Replica;
  const blob = randomBytes(300_000);
  const digest = digestOf(blob);

  before(async () => {
    replica = await startReplica();
    const found = await replica.cache.lookup(digest, async () => ({ body: Readable.from([blob]), size: blob.length }));
    assert.ok(found.kind === 'fill');
    await found.fill.done;
    assert.ok(replica.store.has(digest));
  });
  after(() => replica.close());

  test('a missing or wrong secret is refused with 401 in OCI error JSON, before anything is looked up', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: `Basic ${Buffer.from(`x:${SECRET}`).toString('base64')}` }]) {
      const res = await httpRequest(`${replica.url}/zone/v1/blobs/${digest.value}`, { headers });
      assert.equal(res.status, 401);
      assert.match(String(res.headers['content-type']), /application\/json/);
      assert.equal((JSON.parse(res.body.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'UNAUTHORIZED');
    }
    const unknownPath = await httpRequest(`${replica.url}/v2/`, { headers: { authorization: 'Bearer wrong' } });
    assert.equal(unknownPath.status, 401);
    assert.equal(replica.served(), 0);
  });

  test('a committed blob is served whole, by range and by HEAD', async () => {
    const whole = await httpRequest(`${replica.url}/zone/v1/blobs/${digest.value}`, { headers: auth });
    assert.equal(whole.status, 200);
    assert.ok(whole.body.equals(blob));
    assert.equal(whole.headers['docker-content-digest'], digest.value);
    const part = await httpRequest(`${replica.url}/zone/v1/blobs/${digest.value}`, { headers: { ...auth, range: 'bytes=10-99' } });
    assert.equal(part.status, 206);
    assert.ok(part.body.equals(blob.subarray(10, 100)));
    assert.equal(part.headers['content-range'], `bytes 10-99/${blob.length}`);
    const head = await httpRequest(`${replica.url}/zone/v1/blobs/${digest.value}`, { method: 'HEAD', headers: auth });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers['content-length']), blob.length);
    assert.equal(replica.served(), blob.length + 90);
  });

  test('a digest neither held nor filling is 404, and asking starts no fill', async () => {
    const other = digestOf(Buffer.from('not here'));
    for (const [method, kind] of [['GET', 'blobs'], ['HEAD', 'blobs'], ['GET', 'manifests']] as const) {
      const res = await httpRequest(`${replica.url}/zone/v1/${kind}/${other.value}`, { method, headers: auth });
      assert.equal(res.status, 404, `${method} ${kind}`);
    }
    assert.equal(replica.cache.inflightFill(other), undefined);
    assert.equal(replica.store.has(other), false);
  });

  test('anything but a read of a digest is refused', async () => {
    assert.equal((await httpRequest(`${replica.url}/zone/v1/blobs/sha256:nothex`, { headers: auth })).status, 400);
    assert.equal((await httpRequest(`${replica.url}/zone/v1/blobs/${digest.value}`, { method: 'DELETE', headers: auth })).status, 405);
    assert.equal((await httpRequest(`${replica.url}/v2/library/x/blobs/${digest.value}`, { headers: auth })).status, 404);
  });

  test('a manifest by digest is served with its media type', async () => {
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: [] }));
    const manifestDigest = digestOf(bytes);
    await replica.manifests.put(manifestDigest, 'application/vnd.oci.image.manifest.v1+json', bytes);
    const res = await httpRequest(`${replica.url}/zone/v1/manifests/${manifestDigest.value}`, { headers: auth });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'application/vnd.oci.image.manifest.v1+json');
    assert.ok(res.body.equals(bytes));
  });

  test('a fill in flight is followed: bytes flow while it lands, the last one only once it is verified', async () => {
    const data = randomBytes(1 << 20);
    const d = digestOf(data);
    const source = new PassThrough();
    const found = await replica.cache.lookup(d, async () => ({ body: source, size: data.length }));
    assert.ok(found.kind === 'fill');
    source.write(data.subarray(0, data.length / 2));
    let received = 0;
    const answer = httpRequestStreaming(`${replica.url}/zone/v1/blobs/${d.value}`, (n) => (received += n));
    await waitFor(() => received >= data.length / 2 - 1 || undefined, { what: 'the first half through the peer listener' });
    source.write(data.subarray(data.length / 2, -1));
    await waitFor(() => received === data.length - 1 || undefined, { what: 'all but the last byte' });
    source.end(data.subarray(-1));
    const res = await answer;
    assert.equal(res.status, 200);
    assert.ok(res.body.equals(data));
    await found.fill.done;
  });

  test('a fill whose bytes fail their digest cuts the peer\'s answer: never a complete wrong body', async () => {
    const data = randomBytes(200_000);
    const d = digestOf(data);
    const source = new PassThrough();
    const found = await replica.cache.lookup(d, async () => ({ body: source, size: data.length }));
    assert.ok(found.kind === 'fill');
    source.write(data.subarray(0, 1000));
    const answer = httpRequestStreaming(`${replica.url}/zone/v1/blobs/${d.value}`, () => undefined);
    const wrong = Buffer.from(data.subarray(1000));
    wrong[0] = (wrong[0] ?? 0) ^ 0xff;
    await waitFor(() => replica.cache.inflightFill(d) !== undefined || undefined, { what: 'the fill' });
    source.end(wrong);
    await assert.rejects(answer);
    await found.fill.done;
    assert.equal(replica.store.has(d), false);
  });
});

/** A GET with the secret whose body is counted as it arrives; rejects when the answer is cut. */
async function httpRequestStreaming(url: string, onBytes: (n: number) => void): Promise<{ status: number; body: Buffer }> {
  const res = await request(url, { headers: auth });
  const chunks: Buffer[] = [];
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    onBytes(chunk.length);
  }
  return { status: res.statusCode, body: Buffer.concat(chunks) };
}
