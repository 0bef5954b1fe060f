// The zone.peer.* keys: defaults, env overrides, and the start-up problems that name the key.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { envProblems } from '../helpers/config-problems.js';


test('off by default: no listener, a 2 s peer timeout', () => {
  const { zone } = loadConfig({ env: {} });
  assert.equal(zone.peer.addr, '');
  assert.equal(zone.peer.url, '');
  assert.equal(zone.peer.tls, false);
  assert.equal(zone.peer.timeout, 2);
  assert.equal(zone.secret, '');
});

test('the secret comes from REGISTRY_EDGE_ZONE_SECRET', () => {
  const { zone } = loadConfig({ env: { REGISTRY_EDGE_ZONE_PEER_ADDR: '127.0.0.1:5002', REGISTRY_EDGE_ZONE_SECRET: 's3cret' } });
  assert.equal(zone.secret, 's3cret');
  assert.equal(zone.peer.addr, '127.0.0.1:5002');
});

test('a peer listener without a secret, with TLS and no http.tls pair, or in a zone without its url, is a start-up problem naming the key', () => {
  assert.deepEqual(
    envProblems({ REGISTRY_EDGE_ZONE_PEER_ADDR: '127.0.0.1:5002' }).filter((p) => p.startsWith('zone.')),
    ['zone.secret: must be set when zone.peer.addr is set (the replicas of the zone authenticate to each other with it)'],
  );
  assert.match(envProblems({ REGISTRY_EDGE_ZONE_PEER_ADDR: '127.0.0.1:5002', REGISTRY_EDGE_ZONE_SECRET: 's', REGISTRY_EDGE_ZONE_PEER_TLS: 'true' }).join('\n'), /^zone\.peer\.tls \(env REGISTRY_EDGE_ZONE_PEER_TLS\): needs http\.tls\.certificate/m);
  assert.match(envProblems({ REGISTRY_EDGE_ZONE_PEER_URL: 'not a url' }).join('\n'), /zone\.peer\.url/);
  assert.deepEqual(
    envProblems({ REGISTRY_EDGE_ZONE_PEER_ADDR: '127.0.0.1:5002', REGISTRY_EDGE_ZONE_SECRET: 's', REGISTRY_EDGE_ZONE_REDIS_URL: 'redis://127.0.0.1:6379' }),
    ["zone.peer.url: must be set when zone.redis.url and zone.peer.addr are set (how the zone's other replicas reach this one's peer listener, e.g. http://10.0.3.7:5002)"],
  );
});
