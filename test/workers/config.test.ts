// The workers key: a count or auto, and what it requires of the zone keys; worker n's peer
// listener and URL in a zone.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { cpuQuota, workerCount } from '../../src/workers/primary.js';
import { shiftedPeer } from '../../src/workers/worker.js';
import { envProblems } from '../helpers/config-problems.js';
import { availableParallelism } from 'node:os';

test('workers takes a count from 1 to 256 or auto (one per core); nothing else', () => {
  assert.equal(workerCount(loadConfig({ env: {} })), 1);
  assert.equal(workerCount(loadConfig({ env: { REGISTRY_EDGE_WORKERS: '4' } })), 4);
  assert.equal(workerCount(loadConfig({ env: { REGISTRY_EDGE_WORKERS: 'auto' } })), availableParallelism());
  for (const bad of ['0', '257', 'many', '-1', '1.5']) {
    assert.match(envProblems({ REGISTRY_EDGE_WORKERS: bad }).join('\n'), /^workers \(env REGISTRY_EDGE_WORKERS\): .* is not allowed; expected an integer \(from 1 to 256\) or auto$/m, bad);
  }
});

test('workers: auto stays within a container\'s CPU limit (cgroup v2 cpu.max)', () => {
  const auto = loadConfig({ env: { REGISTRY_EDGE_WORKERS: 'auto' } });
  assert.equal(cpuQuota('max 100000'), undefined);
  assert.equal(cpuQuota('150000 100000'), 2, 'a limit of 1.5 cores rounds up');
  assert.equal(cpuQuota('100000 100000\n'), 1);
  assert.equal(cpuQuota(''), undefined);
  assert.equal(cpuQuota('garbage'), undefined);
  assert.equal(workerCount(auto, '100000 100000'), 1);
  assert.equal(workerCount(auto, 'max 100000'), availableParallelism());
  assert.equal(workerCount(auto, `${1000 * 100000} 100000`), availableParallelism(), 'never more than the cores');
  assert.equal(workerCount(loadConfig({ env: { REGISTRY_EDGE_WORKERS: '3' } }), '100000 100000'), 3, 'a count is taken as given');
});

test('in a zone, workers above 1 need a peer listener on a set port; a peer listener needs the zone', () => {
  const zone = { REGISTRY_EDGE_WORKERS: '2', REGISTRY_EDGE_ZONE_REDIS_URL: 'redis://127.0.0.1:6379', REGISTRY_EDGE_ZONE_SECRET: 's', REGISTRY_EDGE_ZONE_PEER_URL: 'http://10.0.3.7:5002' };
  assert.match(envProblems(zone).join('\n'), /^zone\.peer\.addr: with workers above 1 in a zone/m);
  assert.match(envProblems({ ...zone, REGISTRY_EDGE_ZONE_PEER_ADDR: '0.0.0.0:0' }).join('\n'), /^zone\.peer\.addr \(env REGISTRY_EDGE_ZONE_PEER_ADDR\): with workers above 1 in a zone/m);
  assert.deepEqual(envProblems({ ...zone, REGISTRY_EDGE_ZONE_PEER_ADDR: '0.0.0.0:5002' }), []);
  assert.match(envProblems({ REGISTRY_EDGE_WORKERS: '2', REGISTRY_EDGE_ZONE_SECRET: 's', REGISTRY_EDGE_ZONE_PEER_ADDR: '0.0.0.0:5002' }).join('\n'), /^zone\.peer\.addr \(env REGISTRY_EDGE_ZONE_PEER_ADDR\): a peer listener without zone\.redis\.url/m);
});

test('worker n of a replica listens on the peer port + n - 1 and names itself so', () => {
  const peer = { addr: '0.0.0.0:5002', url: 'http://10.0.3.7:5002', tls: false, timeout: 2 };
  assert.deepEqual(shiftedPeer(peer, 1), peer);
  assert.deepEqual(shiftedPeer(peer, 3), { ...peer, addr: '0.0.0.0:5004', url: 'http://10.0.3.7:5004' });
  assert.equal(shiftedPeer({ ...peer, addr: '[::]:7000', url: 'https://edge-0.zone-a:7000' }, 2).url, 'https://edge-0.zone-a:7001');
  assert.equal(shiftedPeer({ ...peer, addr: '[::]:443', url: 'https://edge-0.zone-a' }, 2).addr, '[::]:444');
  assert.equal(shiftedPeer({ ...peer, addr: '[::]:443', url: 'https://edge-0.zone-a' }, 2).url, 'https://edge-0.zone-a:444');
});
