// A miss's source as the coordinator decides it, over real caches and a real peer listener:
// lease (the origin, released when the fill settles), peer (its body), unreachable (taken over),
// and a peer that fails mid-body (the fill fails cleanly, nothing kept).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { Agent } from 'undici';
import type { BlobCache } from '../../src/cache/blob-cache.js';
import type { FillSource } from '../../src/cache/fill.js';
import type { Digest } from '../../src/oci/grammar.js';
import type { Coordinator, FillClaim } from '../../src/zone/coordinator.js';
import { PeerRegistry } from '../../src/zone/peer-registry.js';
import { SoloCoordinator } from '../../src/zone/solo.js';
import { ZoneFills, type PeerFillResult } from '../../src/zone/zone-fills.js';
import { cacheProblems } from '../helpers/cache-invariants.js';
import { waitFor } from '../helpers/proc.js';
import { SECRET, collect, digestOf, silent, startReplica, type Replica } from './peer-fixture.js';

/** A coordinator whose answers the test scripts, recording what it was asked. */
class ScriptedCoordinator extends SoloCoordinator implements Coordinator {
  claims: FillClaim[] = [];
  takeOvers: Array<{ digest: string | undefined; peer: string | undefined }> = [];
  released = 0;
  /** Digests announced as committed here (holding). */
  held: string[] = [];
  private readonly lease: FillClaim = { kind: 'lease', lease: { release: async () => void this.released++ } };

  // Optional only to match the lone coordinator's signature, which ignores it.
  override async holding(digest?: string): Promise<void> {
    if (digest) this.held.push(digest);
  }

  override async claimFill(): Promise<FillClaim> {
    return this.claims.shift() ?? this.lease;
  }

  // Optional only to match the lone coordinator's signature, which ignores them.
  override async takeOver(digest?: string, peer?: string): Promise<FillClaim> {
    this.takeOvers.push({ digest, peer });
    return this.lease;
  }
}

let holder: Replica;
let follower: Replica;
const agent = new Agent();
before(async () => {
  holder = await startReplica();
  follower = await startReplica();
});
after(async () => {
  await agent.close();
  await holder.close();
  await follower.close();
});

interface Run {
  readonly zone: ZoneFills;
  readonly coordinator: ScriptedCoordinator;
  readonly claims: string[];
  readonly peerFills: PeerFillResult[];
  originCalls: number;
  confirms: number;
}

function zoneOf(): Run {
  const coordinator = new ScriptedCoordinator();
  const claims: string[] = [];
  const peerFills: PeerFillResult[] = [];
  const peer = (url: string): PeerRegistry => new PeerRegistry(url, { secret: SECRET, timeoutMs: 2_000, maxManifestBytes: 1 << 20, dispatcher: agent });
  const zone = new ZoneFills(coordinator, peer, { onClaim: (r) => claims.push(r), onPeerFill: (r) => peerFills.push(r) }, silent, 60_000);
  return { zone, coordinator, claims, peerFills, originCalls: 0, confirms: 0 };
}

/** One miss on `cache`, led as the blob service leads it; resolves with what its reader got and the fill's error. */
async function miss(run: Run, cache: BlobCache, digest: Digest, origin: () => Promise<FillSource>): Promise<{ data: Buffer; error: Error | undefined; fillError: Error | undefined }> {
  const flight = run.zone.flight(digest, {
    origin: () => {
      run.originCalls++;
      return origin();
    },
    confirm: async () => void run.confirms++,
  });
  const found = await cache.lookup(digest, flight.source);
  assert.ok(found.kind === 'fill' && found.leader);
  const { fill } = found;
  const settled = fill.done.then(() => flight.settled(fill));
  try {
    await fill.ready;
  } catch (err) {
    await settled;
    return { data: Buffer.alloc(0), error: err as Error, fillError: fill.error };
  }
  const send = fill.openReader(0, undefined);
  assert.ok(send);
  const got = await collect(send);
  await settled;
  return { ...got, fillError: fill.error };
}

/**
 * The holder fills a 1 MiB blob from `source` (its first `landed` bytes in), and the
 * follower replica, told the holder has the lease, is following it.
 */
async function followingHolder(landed: number): Promise<{ run: Run; data: Buffer; d: Digest; source: PassThrough; following: ReturnType<typeof miss> }> {
  const run = zoneOf();
  const data = randomBytes(1 << 20);
  const d = digestOf(data);
  const source = new PassThrough();
  const held = await holder.cache.lookup(d, async () => ({ body: source, size: data.length }));
  assert.ok(held.kind === 'fill');
  source.write(data.subarray(0, landed));
  run.coordinator.claims.push({ kind: 'peer', peer: holder.url });
  const following = miss(run, follower.cache, d, fromBytes(Buffer.alloc(0)));
  await waitFor(() => follower.cache.inflightFill(d) !== undefined || undefined, { what: 'the follower replica\'s fill' });
  return { run, data, d, source, following };
}

const fromBytes = (data: Buffer) => async (): Promise<FillSource> => ({ body: Readable.from([data]), size: data.length });

test('lease: the origin is read and the lease released once the fill settles, committed or failed', async () => {
  const run = zoneOf();
  const data = randomBytes(100_000);
  const d = digestOf(data);
  const got = await miss(run, follower.cache, d, fromBytes(data));
  assert.ok(got.data.equals(data));
  assert.equal(run.originCalls, 1);
  // Announced as held here first, then the lease released.
  await waitFor(() => run.coordinator.released === 1 || undefined, { what: 'the lease to be released' });
  assert.deepEqual(run.coordinator.held, [d.value]);
  assert.deepEqual(run.claims, ['held']);
  assert.ok(follower.store.has(d));

  const refused = randomBytes(1000);
  const failed = await miss(run, follower.cache, digestOf(refused), async () => {
    throw new Error('origin refused');
  });
  assert.ok(failed.error);
  await waitFor(() => run.coordinator.released === 2 || undefined, { what: 'the failed fill\'s lease to be released' });
  assert.deepEqual(run.coordinator.held, [d.value], 'a failed fill is not announced');
});

test('peer: the holder\'s fill is streamed while it lands, verified and kept; the origin is only asked to confirm', async () => {
  const { run, data, d, source, following } = await followingHolder(1000);
  source.end(data.subarray(1000));
  const got = await following;
  assert.equal(got.error, undefined);
  assert.ok(got.data.equals(data));
  assert.equal(run.originCalls, 0);
  assert.equal(run.confirms, 1);
  assert.deepEqual(run.claims, ['peer']);
  assert.deepEqual(run.peerFills, ['committed']);
  assert.equal(run.coordinator.released, 0, 'no lease was this replica\'s');
  await waitFor(() => run.coordinator.held.includes(d.value) || undefined, { what: 'the peer\'s blob, committed here, to be announced' });
  assert.ok(follower.store.has(d));
  assert.ok(holder.served() >= data.length);
});

test('peer unreachable: its lease is taken over and the origin read', async () => {
  const run = zoneOf();
  const dead = await closedPort();
  const data = randomBytes(50_000);
  const d = digestOf(data);
  run.coordinator.claims.push({ kind: 'peer', peer: dead });
  const got = await miss(run, follower.cache, d, fromBytes(data));
  assert.ok(got.data.equals(data));
  assert.deepEqual(run.coordinator.takeOvers, [{ digest: d.value, peer: dead }]);
  assert.deepEqual(run.claims, ['peer', 'takeover']);
  assert.deepEqual(run.peerFills, ['unreachable']);
  assert.equal(run.originCalls, 1);
  await waitFor(() => run.coordinator.released === 1 || undefined, { what: 'the taken-over lease to be released' });
});

test('a peer without the blob (404) is taken over too: whoever holds the lease now, or this replica', async () => {
  const run = zoneOf();
  const data = randomBytes(10_000);
  const d = digestOf(data);
  run.coordinator.claims.push({ kind: 'peer', peer: holder.url });
  const got = await miss(run, follower.cache, d, fromBytes(data));
  assert.ok(got.data.equals(data));
  assert.deepEqual(run.peerFills, ['absent']);
  assert.equal(run.coordinator.takeOvers.length, 1);
});

test('a peer that fails mid-body fails that fill cleanly (reader cut, nothing kept); the next miss succeeds', async () => {
  const { run, data, d, source, following } = await followingHolder(300_000);
  source.destroy(new Error('the holder\'s origin went away'));
  const got = await following;
  assert.ok(got.error, 'the reader is cut');
  assert.ok(got.data.length < data.length);
  assert.equal(got.fillError && (got.fillError as { reason?: string }).reason, 'upstream_error');
  assert.deepEqual(run.peerFills, ['upstream_error']);
  assert.equal(follower.store.has(d), false);
  assert.deepEqual(await cacheProblems(follower.layout.root), { wrongBlobs: [], tempFiles: [] });

  const retry = await miss(run, follower.cache, d, fromBytes(data));
  assert.ok(retry.data.equals(data));
  assert.ok(follower.store.has(d));
});

/** A loopback URL nothing listens on (a port bound, then let go). */
async function closedPort(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}
