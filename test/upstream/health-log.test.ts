// Why an upstream instance changed health is in the log: the failure that marked it down
// (debug), and the probe's answer when its health flips (warn); the status page has the
// last failure of each instance.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { createLogger } from '../../src/log/logger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { UpstreamClient } from '../../src/upstream/client.js';
import { freePort, removeDir, tempDir } from '../helpers/proc.js';

test('a refused connection marks the instance down, and the debug line and health() say why', async (t) => {
  const dir = tempDir('re-health-');
  const logFile = path.join(dir, 'edge.log');
  const url = `http://127.0.0.1:${await freePort()}`; // nothing listens there
  const client = new UpstreamClient(
    {
      servers: [{ url, weight: 1, maxFails: 1, failTimeoutMs: 60_000, backup: false }],
      balance: 'round_robin',
      connectTimeoutMs: 2000,
      headersTimeoutMs: 2000,
      bodyTimeoutMs: 2000,
      connections: 1,
      maxRedirects: 0,
      credentials: undefined,
      realms: [],
      healthIntervalMs: 0,
      healthTimeoutMs: 1000,
    },
    new Metrics(),
    createLogger({ level: 'debug', sync: true, dest: logFile }),
  );
  t.after(async () => {
    await client.close();
    removeDir(dir);
  });
  await assert.rejects(client.request({ method: 'GET', path: '/v2/', auth: undefined }));
  const lines = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { msg: string; level: number; reason?: string });
  const down = lines.find((l) => l.msg === 'upstream marked down');
  assert.equal(down?.level, 20, 'at debug');
  assert.match(String(down?.reason), /ECONNREFUSED/);
  const [health] = client.health();
  assert.deepEqual([health?.url, health?.healthy], [url, false]);
  assert.match(String(health?.lastFailure?.reason), /ECONNREFUSED/);

  await client.probeAll();
  const probe = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { msg: string; reason?: string }).filter((l) => l.msg === 'upstream health changed');
  assert.deepEqual(probe, [], 'already down: the probe changes nothing');
  assert.match(String(client.health()[0]?.lastFailure?.reason), /^GET \/v2\/ failed: /);
});
