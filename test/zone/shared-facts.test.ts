// The zone's facts as the services use them, over a real redis-server: keys carry the
// origin, membership taken from the zone is kept locally and not shared again, and a
// digest deleted here is never taken from a sibling. Plus the zone.* config keys.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { Membership } from '../../src/cache/membership.js';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log/logger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createCoordinator } from '../../src/zone/create.js';
import { RedisCoordinator } from '../../src/zone/redis.js';
import { SoloCoordinator } from '../../src/zone/solo.js';
import { sharedFacts, zoneMembership } from '../../src/zone/shared-facts.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { removeDir, tempDir, waitFor } from '../helpers/proc.js';

const PREFIX = 'facts:';
const TTLS = { tagMs: 60_000, membersMs: 60_000, decisionsMs: 60_000 };
const silent = createLogger({ level: 'silent', sync: true });
const dir = tempDir('re-facts-');
let redis: RedisServer;
let raw: Redis;
let zone: RedisCoordinator;

before(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url, { lazyConnect: true });
  await raw.connect();
  zone = new RedisCoordinator({ url: redis.url, prefix: PREFIX, timeoutMs: 500, leaseTtlMs: 10_000, warnIntervalMs: 60_000, reconnectMaxMs: 100, peerUrl: '' }, new Metrics(), silent);
  assert.equal(await zone.ready(5_000), true);
});

after(async () => {
  await zone.close();
  raw.disconnect();
  await redis.dispose();
  removeDir(dir);
});

const digest = (n: number): string => `sha256:${n.toString(16).padStart(64, 'a')}`;
const mapping = { digest: digest(1), mediaType: 'application/vnd.oci.image.index.v1+json', confirmedAt: Date.now() };

/** Resolves once the zone holds `key` (facts are shared without being awaited). */
async function shared(key: string): Promise<void> {
  await waitFor(async () => (await raw.exists(`${PREFIX}${key}`)) === 1, { what: `${key} in the zone` });
}

test('facts are keyed by origin: a tag, member or decision of one origin is not another\'s', async () => {
  const ghcr = sharedFacts(zone, 'ghcr.io', TTLS);
  const plain = sharedFacts(zone, '', TTLS);
  ghcr.shareTag('org/app', '1', mapping);
  ghcr.shareMembers('org/app', [digest(2)]);
  ghcr.shareDecision('hash');
  await shared('tag:ghcr.io/org/app:1');
  await shared(`member:ghcr.io/org/app ${digest(2)}`);
  await shared('decision:ghcr.io/hash');
  assert.deepEqual(await ghcr.tag('org/app', '1'), mapping);
  assert.equal(await plain.tag('org/app', '1'), undefined);
  assert.equal(await ghcr.hasMember('org/app', digest(2)), true);
  assert.equal(await plain.hasMember('org/app', digest(2)), false);
  assert.equal(await ghcr.hasDecision('hash'), true);
  assert.equal(await plain.hasDecision('hash'), false);
});

test('membership: an origin confirmation is shared; one taken from the zone is kept here and not shared again; a digest deleted here is not taken', async () => {
  const here = new Membership(path.join(dir, 'a.log'));
  await here.init();
  const facts = sharedFacts(zone, 'docker.io', { ...TTLS, membersMs: 5_000 });
  const members = zoneMembership(here.of('docker.io'), facts);

  await members.add('library/alpine', [digest(3)]);
  await shared(`member:docker.io/library/alpine ${digest(3)}`);

  const sibling = sharedFacts(zone, 'docker.io', TTLS);
  sibling.shareMembers('library/busybox', [digest(4), digest(5)]);
  await shared(`member:docker.io/library/busybox ${digest(5)}`);
  const key = `${PREFIX}member:docker.io/library/busybox ${digest(4)}`;
  await raw.pexpire(key, 5_000);
  assert.equal(members.has(digest(4), 'library/busybox'), false);
  assert.equal(await members.learntInZone(digest(4), 'library/busybox'), true);
  assert.equal(members.has(digest(4), 'library/busybox'), true, 'kept locally: the next check is synchronous');
  assert.ok((await raw.pttl(key)) <= 5_000, 'not shared again: the sibling\'s fact keeps its TTL');
  assert.equal(await members.learntInZone(digest(6), 'library/busybox'), false);

  assert.equal(await members.learntInZone(digest(5), 'library/busybox'), true);
  await members.remove('library/busybox', [digest(5)]);
  assert.equal(await members.learntInZone(digest(5), 'library/busybox'), false, 'deleted here: the zone is not believed');
});

test('zone.* keys: defaults, the env override, a URL that is not redis refused without echoing it', async () => {
  const config = loadConfig({ env: {} });
  assert.equal(config.zone.redis.url, '');
  assert.equal(config.zone.redis.timeout, 0.25);
  assert.equal(config.zone.redis.prefix, 'registry-edge:');
  assert.equal(config.zone.lease_ttl, 10);
  assert.equal(config.zone.facts_ttl, 86400);
  assert.equal(config.zone.warn_interval, 30);
  assert.ok((await createCoordinator(config, new Metrics(), silent)) instanceof SoloCoordinator, 'no url: the lone coordinator');

  const withRedis = loadConfig({ env: { REGISTRY_EDGE_ZONE_REDIS_URL: redis.url, REGISTRY_EDGE_ZONE_REDIS_PREFIX: 'zone-a:' } });
  const coordinator = await createCoordinator(withRedis, new Metrics(), silent);
  try {
    assert.ok(coordinator instanceof RedisCoordinator);
    await coordinator.putDecision('k', 60_000);
    assert.equal(await raw.exists('zone-a:decision:k'), 1, 'keys under zone.redis.prefix');
  } finally {
    await coordinator.close();
  }

  for (const url of ['http://:secret@redis:6379', 'redis://', 'not a url']) {
    assert.throws(() => loadConfig({ env: { REGISTRY_EDGE_ZONE_REDIS_URL: url } }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /zone\.redis\.url \(env REGISTRY_EDGE_ZONE_REDIS_URL\): not allowed; expected a redis:\/\/ or rediss:\/\/ URL/);
      assert.doesNotMatch(err.message, /secret/);
      return true;
    });
  }
});
