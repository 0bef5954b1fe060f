// An upstream that closes the connection after each answer (`Connection: close`: an
// HTTP/1.0 hop, a load balancer, nginx at keepalive_requests). undici 7 asserts when the
// socket ends while a response body it parsed sits unread (nodejs/undici#5360), which took
// the whole edge down for blobs a little over 64 KiB: the fill must read the body from the
// moment the answer arrives.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cacheProblems, descriptors, descriptorsBackTo, type Descriptors } from '../../helpers/cache-invariants.js';
import { fetchBlob } from '../../helpers/fetch-blob.js';
import { httpRequest, waitFor } from '../../helpers/proc.js';
import { pushRandomBlob } from '../../helpers/random-blob.js';
import { startStack, type Stack } from '../../helpers/stack.js';

const repo = 'faults/close';
const TRIES = 5;

describe('an upstream answering Connection: close', () => {
  let stack: Stack;
  let baseline: Descriptors;
  const newBlob = async (size: number): Promise<string> => (await pushRandomBlob(stack, repo, size)).digest;

  before(async () => {
    stack = await startStack('re-faults-close-');
    const warm = await newBlob(1024);
    assert.equal((await fetchBlob(`${stack.edge.url}/v2/${repo}/blobs/${warm}`)).digest, warm);
    baseline = descriptors(stack.edge.proc.pid);
  });

  after(async () => {
    await stack?.stop();
  });

  for (const size of [65_536, 100_000]) {
    test(`blobs of ${size} bytes, ${TRIES} cold pulls and a warm one each: every body right, the edge still up`, async () => {
      const digests: string[] = [];
      for (let i = 0; i < TRIES; i++) digests.push(await newBlob(size));
      stack.shim.reset();
      stack.shim.setFault({ kind: 'close-connection', pathPattern: /./ });
      try {
        for (const digest of digests) {
          for (const round of ['cold', 'warm']) {
            const r = await fetchBlob(`${stack.edge.url}/v2/${repo}/blobs/${digest}`);
            assert.equal(r.status, 200, `${round} pull of ${digest}: ${r.error ?? ''}\n${stack.edge.proc.logs().slice(-2000)}`);
            assert.equal(r.complete, true);
            assert.equal(r.bytes, size);
            assert.equal(r.digest, digest);
          }
        }
      } finally {
        stack.shim.setFault(null);
      }
      // Every cold pull went upstream over a connection the upstream then closed.
      assert.equal(stack.shim.stats.blobGets(), TRIES);
      assert.ok(stack.shim.stats.requests.every((q) => q.faults.includes('close-connection')));
      assert.equal(stack.edge.proc.running(), true, `the edge died:\n${stack.edge.proc.logs().slice(-3000)}`);
      process.kill(stack.edge.proc.pid, 0);
      assert.equal((await httpRequest(`${stack.edge.adminUrl}/healthz`)).status, 200);
      // Clients finish once the bytes are verified; the last commit (fsync, rename) may still run.
      await waitFor(async () => (await stack.edge.metric('registry_edge_fills_in_flight')) === 0, { what: 'the fills to be committed' });
      assert.deepEqual(await cacheProblems(stack.edge.cacheDir), { wrongBlobs: [], tempFiles: [] });
      await descriptorsBackTo(stack.edge.proc.pid, baseline);
    });
  }
});
