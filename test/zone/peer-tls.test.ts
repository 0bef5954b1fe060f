// The peer listener with zone.peer.tls: the http.tls.* pair (from `registry-edge certs init`)
// serves it, a peer trusting the CA reads through it, plain HTTP does not get an answer.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { Agent } from 'undici';
import { loadConfig } from '../../src/config/load.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { PeerRegistry } from '../../src/zone/peer-registry.js';
import { SoloCoordinator } from '../../src/zone/solo.js';
import { createZonePeers, type ZonePeers } from '../../src/zone/zone-peers.js';
import { EDGE_BIN } from '../helpers/edge.js';
import { httpRequest, removeDir, run, tempDir } from '../helpers/proc.js';
import { SECRET, digestOf, silent, startReplica, type Replica } from './peer-fixture.js';

const dir = tempDir('re-peer-tls-');
let replica: Replica;
let peers: ZonePeers;
let address: string;
const agent = new Agent();
let trusting: Agent;

before(async () => {
  const made = await run(process.execPath, [EDGE_BIN, 'certs', 'init', '--hosts', '127.0.0.1', '--out', dir], { timeoutMs: 60_000 });
  assert.equal(made.code, 0, made.stderr);
  replica = await startReplica();
  const config = loadConfig({
    env: {
      REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: path.join(dir, 'server.crt'),
      REGISTRY_EDGE_HTTP_TLS_KEY: path.join(dir, 'server.key'),
      REGISTRY_EDGE_ZONE_PEER_ADDR: '127.0.0.1:0',
      REGISTRY_EDGE_ZONE_PEER_TLS: 'true',
      REGISTRY_EDGE_ZONE_SECRET: SECRET,
    },
  });
  peers = await createZonePeers({ config, coordinator: new SoloCoordinator(), blobCache: replica.cache, manifestStore: replica.manifests, metrics: new Metrics(), log: silent });
  const bound = await peers.listen();
  assert.ok(bound);
  address = bound;
  trusting = new Agent({ connect: { ca: readFileSync(path.join(dir, 'ca.crt'), 'utf8') } });
});

after(async () => {
  await peers.stopListening(0);
  await peers.close();
  await Promise.all([agent.close(), trusting.close()]);
  await replica.close();
  removeDir(dir);
});

test('a peer trusting the CA reads a held blob over TLS; one that does not trust it counts it unreachable; plain HTTP gets no answer', async () => {
  const data = randomBytes(100_000);
  const digest = digestOf(data);
  const found = await replica.cache.lookup(digest, async () => ({ body: Readable.from([data]), size: data.length }));
  assert.ok(found.kind === 'fill');
  await found.fill.done;
  const url = `https://${address}`;
  const reader = new PeerRegistry(url, { secret: SECRET, timeoutMs: 5_000, maxManifestBytes: 1 << 20, dispatcher: trusting });
  assert.equal(await reader.statBlob('', digest), data.length);
  const wrongSecret = new PeerRegistry(url, { secret: 'other', timeoutMs: 5_000, maxManifestBytes: 1 << 20, dispatcher: trusting });
  await assert.rejects(wrongSecret.statBlob('', digest), (err: { status?: number }) => err.status === 502);
  const untrusting = new PeerRegistry(url, { secret: SECRET, timeoutMs: 5_000, maxManifestBytes: 1 << 20, dispatcher: agent });
  await assert.rejects(untrusting.statBlob('', digest), { name: 'PeerUnreachable' });
  await assert.rejects(httpRequest(`http://${address}/zone/v1/blobs/${digest.value}`, { headers: { authorization: `Bearer ${SECRET}` }, timeoutMs: 5_000 }));
});
