// prewarm.* as the loader checks it: one problem line per bad glob or platform, naming the key.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { envProblems } from '../helpers/config-problems.js';


test('defaults: off without a token, every repository, every platform', () => {
  const { prewarm } = loadConfig({ env: {} });
  assert.deepEqual(prewarm, { token: '', include: ['**'], exclude: [], platforms: [], queue: 1000, concurrency: 2, dedupe_ttl: 86400, max_body: 1024 * 1024 });
});

test('a bad glob or platform is one line naming the key and its env variable', () => {
  assert.deepEqual(envProblems({ REGISTRY_EDGE_PREWARM_PLATFORMS: 'linux/amd64,linux', REGISTRY_EDGE_PREWARM_EXCLUDE: 'team/a**' }), [
    'prewarm.exclude (env REGISTRY_EDGE_PREWARM_EXCLUDE): "team/a**" is not allowed; ** must stand for whole path components (a/**, **/b, a/**/b)',
    'prewarm.platforms (env REGISTRY_EDGE_PREWARM_PLATFORMS): "linux" is not allowed; expected os/arch or os/arch/variant, e.g. linux/amd64',
  ]);
  assert.deepEqual(envProblems({ REGISTRY_EDGE_PREWARM_QUEUE: '0' }), ['prewarm.queue (env REGISTRY_EDGE_PREWARM_QUEUE): "0" is not allowed; expected an integer (at least 1)']);
});
