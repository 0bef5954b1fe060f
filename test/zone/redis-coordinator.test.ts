// RedisCoordinator against a real redis-server: fill leases among replicas, shared facts
// with their TTL, claimOnce, and what each call answers while Redis is stopped or stalled.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { createLogger } from '../../src/log/logger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import type { FillClaim, FillLease } from '../../src/zone/coordinator.js';
import { RedisCoordinator, type RedisZoneOptions } from '../../src/zone/redis.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { removeDir, startProcess, tempDir, waitFor, type ManagedProcess } from '../helpers/proc.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'lease-holder-child.js');
const PREFIX = 'test:';
const TIMEOUT_MS = 200;

let redis: RedisServer;
let raw: Redis;
const dir = tempDir('re-zone-');
const open: RedisCoordinator[] = [];
const children: ManagedProcess[] = [];
let digests = 0;

before(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  raw.on('error', () => undefined); // reconnects on its own while the server is stopped
  await raw.connect();
});

after(async () => {
  await Promise.all(open.map((z) => z.close()));
  await Promise.all(children.map((c) => c.stop()));
  raw.disconnect();
  await redis.dispose();
  removeDir(dir);
});

interface Replica {
  zone: RedisCoordinator;
  metrics: Metrics;
  logLines: () => { level: number; msg: string; op?: string }[];
}

async function replica(peerUrl: string, opts: Partial<RedisZoneOptions> = {}): Promise<Replica> {
  const metrics = new Metrics();
  const logFile = path.join(dir, `${open.length}.log`);
  const log = createLogger({ level: 'info', sync: true, dest: logFile });
  const zone = new RedisCoordinator(
    { url: redis.url, prefix: PREFIX, timeoutMs: TIMEOUT_MS, leaseTtlMs: 10_000, warnIntervalMs: 60_000, reconnectMaxMs: 100, peerUrl, ...opts },
    metrics,
    log,
  );
  open.push(zone);
  assert.equal(await zone.ready(5_000), true, 'connected to redis');
  const logLines = () =>
    readFileSync(logFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { level: number; msg: string; op?: string });
  return { zone, metrics, logLines };
}

const newDigest = (): string => `sha256:${(++digests).toString(16).padStart(64, '0')}`;

const leaseOf = (claim: FillClaim): FillLease => {
  assert.equal(claim.kind, 'lease', `expected a lease, got ${JSON.stringify(claim)}`);
  return (claim as Extract<FillClaim, { kind: 'lease' }>).lease;
};

async function gauge(metrics: Metrics, name: 'zoneRedisUp' | 'zoneRedisErrors'): Promise<number> {
  return (await metrics[name].get()).values.reduce((sum, v) => sum + v.value, 0);
}

/** Resolves with `work`'s value, or fails the test if it takes longer than `ms`. */
async function within<T>(ms: number, work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not resolve within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

function holder(digest: string, peer: string, ttlMs: number): Promise<ManagedProcess> {
  const logFile = path.join(dir, `child-${children.length}.log`);
  const child = startProcess(process.execPath, [CHILD, redis.url, peer, digest, String(ttlMs)], { logFile });
  children.push(child);
  return waitFor(() => {
    if (!child.running()) throw new Error(`lease holder exited: ${child.logs()}`);
    return child.logs().includes('held\n') && child;
  }, { what: 'the child to hold the lease' });
}

test('one replica among concurrent claims gets the lease; the others are told its peer url', async () => {
  const replicas = await Promise.all(['http://a:1', 'http://b:1', 'http://c:1'].map((u) => replica(u)));
  const digest = newDigest();
  const claims = await Promise.all(replicas.map((r) => r.zone.claimFill(digest)));
  const leases = claims.filter((c) => c.kind === 'lease');
  assert.equal(leases.length, 1, 'exactly one holder');
  const holderUrl = ['http://a:1', 'http://b:1', 'http://c:1'][claims.findIndex((c) => c.kind === 'lease')];
  for (const claim of claims.filter((c) => c.kind === 'peer')) assert.deepEqual(claim, { kind: 'peer', peer: holderUrl });
  const value = await raw.get(`${PREFIX}fill:${digest}`);
  assert.ok(value?.startsWith(`${holderUrl} `), 'the value names the holder');

  await leaseOf(leases[0] as FillClaim).release();
  assert.equal(await raw.get(`${PREFIX}fill:${digest}`), null, 'released: the key is gone');
  const other = replicas[(claims.findIndex((c) => c.kind === 'lease') + 1) % 3] as Replica;
  const next = await other.zone.claimFill(digest);
  await leaseOf(next).release();
  await leaseOf(next).release(); // idempotent
});

test('a held lease is renewed past its TTL, and a released one is not renewed again', async () => {
  const ttl = 300;
  const a = await replica('http://a:2', { leaseTtlMs: ttl });
  const b = await replica('http://b:2', { leaseTtlMs: ttl });
  const digest = newDigest();
  const lease = leaseOf(await a.zone.claimFill(digest));
  const started = Date.now();
  // Every claim for four TTLs finds a still holding it.
  await waitFor(async () => {
    assert.deepEqual(await b.zone.claimFill(digest), { kind: 'peer', peer: 'http://a:2' });
    return Date.now() - started > 4 * ttl;
  }, { what: 'four lease TTLs with the lease held', intervalMs: 20 });
  await lease.release();
  leaseOf(await b.zone.claimFill(digest));
});

test('a holder that dies stops renewing: its lease expires and another replica claims it', async () => {
  const ttl = 400;
  const digest = newDigest();
  const child = await holder(digest, 'http://dead:1', ttl);
  const b = await replica('http://b:3', { leaseTtlMs: ttl });
  assert.deepEqual(await b.zone.claimFill(digest), { kind: 'peer', peer: 'http://dead:1' });
  child.child.kill('SIGKILL');
  await child.exited;
  const claim = await waitFor(async () => {
    const c = await b.zone.claimFill(digest);
    return c.kind === 'lease' && c;
  }, { what: 'the dead holder\'s lease to expire', intervalMs: 50 });
  await leaseOf(claim).release();
});

test('takeOver replaces the lease only while its value still names the dead peer', async () => {
  const digest = newDigest();
  await holder(digest, 'http://stuck:1', 10_000);
  const b = await replica('http://b:4');
  const c = await replica('http://c:4');
  assert.deepEqual(await b.zone.takeOver(digest, 'http://someone-else:1'), { kind: 'peer', peer: 'http://stuck:1' }, 'not the named peer: no takeover');
  const lease = leaseOf(await b.zone.takeOver(digest, 'http://stuck:1'));
  assert.match((await raw.get(`${PREFIX}fill:${digest}`)) ?? '', /^http:\/\/b:4 /);
  assert.deepEqual(await c.zone.takeOver(digest, 'http://stuck:1'), { kind: 'peer', peer: 'http://b:4' }, 'taken over already: the new holder is named');
  await lease.release();
  // A lease nobody holds any more is simply claimed.
  await leaseOf(await c.zone.takeOver(digest, 'http://stuck:1')).release();
});

test('a committed blob is held: a later miss anywhere in the zone is sent to a holder; one that does not serve it is dropped', async () => {
  const digest = newDigest();
  const a = await replica('http://held-a:1');
  const b = await replica('http://held-b:1');
  const c = await replica('http://held-c:1');
  const lease = leaseOf(await a.zone.claimFill(digest));
  await a.zone.holding(digest, 60_000);
  await lease.release();
  assert.deepEqual(await raw.smembers(`${PREFIX}held:${digest}`), ['http://held-a:1']);
  const ttl = await raw.pttl(`${PREFIX}held:${digest}`);
  assert.ok(ttl > 50_000 && ttl <= 60_000, `held for zone.facts_ttl (${ttl} ms left)`);
  // Committed, no lease left: b streams it from a, and once b holds it too c may be sent to either.
  assert.deepEqual(await b.zone.claimFill(digest), { kind: 'peer', peer: 'http://held-a:1' });
  await b.zone.holding(digest, 60_000);
  const toEither = await c.zone.claimFill(digest);
  assert.ok(toEither.kind === 'peer' && ['http://held-a:1', 'http://held-b:1'].includes(toEither.peer));
  // a evicted it (404 from its listener): c drops a and is sent to b; b gone too: c fetches under a lease.
  assert.deepEqual(await c.zone.takeOver(digest, 'http://held-a:1'), { kind: 'peer', peer: 'http://held-b:1' });
  const own = leaseOf(await c.zone.takeOver(digest, 'http://held-b:1'));
  assert.deepEqual(await raw.smembers(`${PREFIX}held:${digest}`), []);
  await own.release();
  // A replica missing a blob it once announced is never sent to itself.
  await a.zone.holding(digest, 60_000);
  await leaseOf(await a.zone.claimFill(digest)).release();
});

test('a lease of an earlier run of this process (same peer url) is taken over, not followed', async () => {
  const digest = newDigest();
  await raw.set(`${PREFIX}fill:${digest}`, 'http://same:1 earlier-token', 'PX', 10_000);
  const a = await replica('http://same:1');
  await leaseOf(await a.zone.claimFill(digest)).release();
});

test('without a peer url the replica fetches alone and takes no zone lease', async () => {
  const a = await replica('');
  const digest = newDigest();
  await leaseOf(await a.zone.claimFill(digest)).release();
  assert.equal(await raw.exists(`${PREFIX}fill:${digest}`), 0);
});

test('close() releases the leases still held, so a sibling claims at once', async () => {
  const a = await replica('http://a:5');
  const b = await replica('http://b:5');
  const digest = newDigest();
  leaseOf(await a.zone.claimFill(digest));
  await a.zone.close();
  await leaseOf(await b.zone.claimFill(digest)).release();
});

test('facts: tags, membership and decisions reach the other replicas and end with their TTL', async () => {
  const a = await replica('http://a:6');
  const b = await replica('http://b:6');
  const mapping = { digest: newDigest(), mediaType: 'application/vnd.oci.image.manifest.v1+json', confirmedAt: 1_700_000_000_000 };
  await a.zone.putTag('library/alpine:3', mapping, 60_000);
  assert.deepEqual(await b.zone.getTag('library/alpine:3'), mapping);
  assert.equal(await b.zone.getTag('library/alpine:4'), undefined);

  const [d1, d2] = [newDigest(), newDigest()];
  await a.zone.addMembers('ghcr.io/org/app', [d1, d2], 60_000);
  assert.equal(await b.zone.hasMember('ghcr.io/org/app', d1), true);
  assert.equal(await b.zone.hasMember('ghcr.io/org/app', d2), true);
  assert.equal(await b.zone.hasMember('ghcr.io/org/other', d1), false, 'another repository is not a member');

  await a.zone.putDecision('ghcr.io key', 60_000);
  assert.equal(await b.zone.hasDecision('ghcr.io key'), true);
  assert.equal(await b.zone.hasDecision('docker.io key'), false);

  await a.zone.putTag('short:1', mapping, 150);
  await a.zone.addMembers('short', [d1], 150);
  await a.zone.putDecision('short', 150);
  assert.ok((await raw.pttl(`${PREFIX}tag:short:1`)) <= 150, 'the tag carries its TTL');
  await waitFor(async () => !(await b.zone.getTag('short:1')) && !(await b.zone.hasMember('short', d1)) && !(await b.zone.hasDecision('short')), { what: 'short facts to expire' });

  await raw.set(`${PREFIX}tag:bad:1`, '{"digest":"sha256:nothex","mediaType":"x","confirmedAt":1}');
  assert.equal(await b.zone.getTag('bad:1'), undefined, 'a malformed mapping is not used');
});

test('claimOnce is true for exactly one caller zone-wide', async () => {
  const replicas = await Promise.all(['http://a:7', 'http://b:7', 'http://c:7'].map((u) => replica(u)));
  const answers = await Promise.all(replicas.flatMap((r) => [r.zone.claimOnce('event-1', 60_000), r.zone.claimOnce('event-1', 60_000)]));
  assert.equal(answers.filter(Boolean).length, 1);
  assert.equal(await (replicas[0] as Replica).zone.claimOnce('event-2', 60_000), true, 'another id is claimed');
});

test('Redis stopped: every call resolves at once with the lone answer, counted and warned once; sharing resumes when it is back', async () => {
  const a = await replica('http://a:8');
  const b = await replica('http://b:8');
  const held = leaseOf(await a.zone.claimFill(newDigest()));
  await redis.stop();
  await waitFor(async () => (await gauge(a.metrics, 'zoneRedisUp')) === 0, { what: 'a to see redis gone' });
  const bound = 4 * TIMEOUT_MS;
  for (let round = 0; round < 3; round++) {
    const digest = newDigest();
    leaseOf(await within(bound, a.zone.claimFill(digest), 'claimFill'));
    leaseOf(await within(bound, a.zone.takeOver(digest, 'http://b:8'), 'takeOver'));
    assert.equal(await within(bound, a.zone.getTag('x:1'), 'getTag'), undefined);
    await within(bound, a.zone.putTag('x:1', { digest, mediaType: 'm', confirmedAt: 1 }, 1000), 'putTag');
    assert.equal(await within(bound, a.zone.hasMember('x', digest), 'hasMember'), false);
    await within(bound, a.zone.addMembers('x', [digest], 1000), 'addMembers');
    assert.equal(await within(bound, a.zone.hasDecision('x'), 'hasDecision'), false);
    await within(bound, a.zone.putDecision('x', 1000), 'putDecision');
    assert.equal(await within(bound, a.zone.claimOnce(`down-${round}`, 1000), 'claimOnce'), true, 'a lone edge claims it');
    assert.equal(await within(bound, a.zone.claimOnce(`down-${round}`, 1000), 'claimOnce'), false, 'and still refuses a duplicate within the process');
  }
  await within(bound, held.release(), 'release');
  assert.ok((await gauge(a.metrics, 'zoneRedisErrors')) >= 30, 'each call answered alone is counted');
  const warns = a.logLines().filter((l) => l.level === 40 && /unreachable/.test(l.msg));
  assert.equal(warns.length, 1, 'one warn line per zone.warn_interval');

  await redis.start();
  await waitFor(async () => (await gauge(a.metrics, 'zoneRedisUp')) === 1 && (await gauge(b.metrics, 'zoneRedisUp')) === 1, { what: 'both replicas back on redis' });
  assert.equal(a.logLines().filter((l) => l.level === 30 && /answering again/.test(l.msg)).length, 1, 'one info line when it is back');
  const mapping = { digest: newDigest(), mediaType: 'm', confirmedAt: 2 };
  await a.zone.putTag('back:1', mapping, 60_000);
  assert.deepEqual(await b.zone.getTag('back:1'), mapping);
  const digest = newDigest();
  const lease = leaseOf(await a.zone.claimFill(digest));
  assert.deepEqual(await b.zone.claimFill(digest), { kind: 'peer', peer: 'http://a:8' }, 'leases shared again');
  await lease.release();
});

test('Redis stalled (stops answering, connection open): calls give the lone answer within zone.redis.timeout, then skip it until it answers', async () => {
  const a = await replica('http://a:9');
  const b = await replica('http://b:9');
  redis.pause();
  try {
    const bound = 4 * TIMEOUT_MS;
    leaseOf(await within(bound, a.zone.claimFill(newDigest()), 'claimFill on a stalled server'));
    for (let i = 0; i < 5; i++) assert.equal(await within(bound, a.zone.hasMember('x', newDigest()), 'hasMember'), false);
    assert.equal(await gauge(a.metrics, 'zoneRedisUp'), 0);
    assert.ok((await gauge(a.metrics, 'zoneRedisErrors')) >= 6);
  } finally {
    redis.resume();
  }
  // Calls while stalled probe the server; the first answered probe resumes sharing.
  await waitFor(async () => {
    await a.zone.hasDecision('probe');
    return (await gauge(a.metrics, 'zoneRedisUp')) === 1;
  }, { what: 'a to resume after the stall' });
  await a.zone.putDecision('after-stall', 60_000);
  assert.equal(await b.zone.hasDecision('after-stall'), true);
});
