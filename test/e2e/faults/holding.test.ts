// The faults the edge already survived when it was first attacked (issue 11), kept
// holding: resets under followers, throttling answers, crashes during several fills,
// smuggling and oversized headers, traversal in raw paths, odd ranges and methods.
// After each, the cache holds only blobs that hash to their names, no temp file, and
// the edge is back to the descriptors it had.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cacheProblems, descriptors, descriptorsBackTo, type Descriptors } from '../../helpers/cache-invariants.js';
import { startEdge } from '../../helpers/edge.js';
import { fetchBlob, type BlobFetch } from '../../helpers/fetch-blob.js';
import { pushBlob, randomFile } from '../../helpers/image.js';
import { httpRequest, waitFor } from '../../helpers/proc.js';
import { rawRequest, statusLines } from '../../helpers/raw-http.js';
import { startStack, type Stack } from '../../helpers/stack.js';

const MiB = 1024 * 1024;
const repo = 'faults/holding';

describe('faults that hold: the cache stays right and the edge lets go of what it opened', () => {
  let stack: Stack;
  let blobs = 0;
  let baseline: Descriptors;

  async function newBlob(size: number): Promise<string> {
    const file = path.join(stack.work, `blob-${++blobs}.bin`);
    await randomFile(file, size);
    return (await pushBlob(stack.registry.url, repo, file)).digest;
  }

  const blobUrl = (digest: string): string => `${stack.edge.url}/v2/${repo}/blobs/${digest}`;

  async function assertClean(): Promise<void> {
    assert.deepEqual(await cacheProblems(stack.edge.cacheDir), { wrongBlobs: [], tempFiles: [] });
    await descriptorsBackTo(stack.edge.proc.pid, baseline);
  }

  before(async () => {
    stack = await startStack('re-faults-holding-');
    // One request first, so the upstream pool and the log stream are part of the baseline.
    const warm = await newBlob(1024);
    assert.equal((await fetchBlob(blobUrl(warm))).digest, warm);
    baseline = descriptors(stack.edge.proc.pid);
  });

  after(async () => {
    await stack?.stop();
  });

  test('an upstream reset in the middle of a fill with 8 followers: every transfer fails, nothing is kept, a retry is right', async () => {
    const size = 4 * MiB;
    const digest = await newBlob(size);
    stack.shim.reset();
    // Slow enough that all eight have joined the one fill before it is cut at 1 MiB.
    stack.shim.setFault({ kind: 'slow-body', pathPattern: /\/blobs\//, method: 'GET', bytesPerSecond: 512 * 1024, times: 1 });
    stack.shim.addFault({ kind: 'truncate', pathPattern: /\/blobs\//, method: 'GET', afterBytes: MiB, times: 1 });
    const followersBefore = await stack.edge.metric('registry_edge_fill_followers_total');
    const pending = Array.from({ length: 8 }, () => fetchBlob(blobUrl(digest)));
    await waitFor(async () => (await stack.edge.metric('registry_edge_fill_followers_total')) - followersBefore >= 7, { what: 'seven followers on the fill' });
    const cut = await Promise.all(pending);
    for (const r of cut) assert.ok(!r.complete || r.digest === digest, 'never a complete transfer with wrong bytes');
    assert.ok(cut.every((r) => !r.complete), 'every transfer of the cut fill ends broken');
    assert.equal(stack.shim.stats.blobGets(digest), 1, 'the followers shared the one fetch');
    assert.equal(stack.shim.stats.count('HEAD', /\/blobs\//), 0, 'followers under the same name ask the upstream nothing');
    await assertClean();
    stack.shim.setFault(null);
    const again = await fetchBlob(blobUrl(digest));
    assert.equal(again.digest, digest);
    assert.equal(again.complete, true);
    await assertClean();
  });

  test('a kept-alive upstream connection reset as the request goes out: the GET is sent again and the client gets its blob', async () => {
    const digest = await newBlob(64 * 1024);
    stack.shim.reset();
    stack.shim.setFault({ kind: 'reset', pathPattern: /\/blobs\//, method: 'GET', times: 1 });
    const r = await fetchBlob(blobUrl(digest));
    assert.equal(r.status, 200);
    assert.equal(r.digest, digest);
    assert.equal(stack.shim.stats.blobGets(digest), 2, 'the reset request and its one retry');
    stack.shim.setFault(null);
    await assertClean();
  });

  for (const declared of [true, false]) {
    const what = declared ? 'a body longer than the blob (its Content-Length grown to match)' : 'bytes past its Content-Length';
    test(`an upstream sending ${what}: the client gets exactly the blob or a failed transfer, nothing wrong is kept`, async () => {
      const size = 256 * 1024;
      const digest = await newBlob(size);
      const next = await newBlob(64 * 1024);
      stack.shim.reset();
      stack.shim.setFault({ kind: 'extra-bytes', bytes: 4096, declared, method: 'GET', pathPattern: new RegExp(`/blobs/${digest}$`), times: 1 });
      let first: BlobFetch;
      try {
        first = await fetchBlob(blobUrl(digest));
      } finally {
        stack.shim.setFault(null);
      }
      assert.ok(stack.shim.stats.requests.some((r) => r.faults.includes('extra-bytes')), 'the extra bytes were sent');
      if (first.complete) {
        assert.equal(first.status, 200);
        assert.equal(first.bytes, size, 'a complete response has the blob\'s bytes, no more');
        assert.equal(first.digest, digest);
      }
      // Longer than the blob, the body cannot hash to its digest: it is never delivered as complete.
      // Past Content-Length, the body is the blob: it is delivered, and the bytes after it are no part of it.
      assert.equal(first.complete, !declared, declared ? 'the longer body was cut' : 'the blob was delivered');
      await assertClean();
      // The connection the extra bytes came on answers nothing else: the next miss gets its own blob.
      const other = await fetchBlob(blobUrl(next));
      assert.equal(other.complete, true);
      assert.equal(other.digest, next);
      const again = await fetchBlob(blobUrl(digest));
      assert.equal(again.complete, true);
      assert.equal(again.bytes, size);
      assert.equal(again.digest, digest);
      assert.equal(stack.shim.stats.blobGets(digest), declared ? 2 : 1, declared ? 'the longer body was not kept: fetched again' : 'the blob was kept: served from the cache');
      await assertClean();
    });
  }

  test('429 with Retry-After from the upstream reaches the client as it is, and nothing is cached', async () => {
    const digest = await newBlob(64 * 1024);
    stack.shim.setFault({ kind: 'status', status: 429, headers: { 'retry-after': '7' }, pathPattern: /\/blobs\//, method: 'GET', times: 1 });
    const limited = await httpRequest(blobUrl(digest));
    assert.equal(limited.status, 429);
    assert.equal(limited.headers['retry-after'], '7');
    const ok = await fetchBlob(blobUrl(digest));
    assert.equal(ok.digest, digest);
    await assertClean();
  });

  test('SIGKILL during four fills: no partial blob after the restart, and all four fill again right', async () => {
    const digests = await Promise.all([1, 2, 3, 4].map((n) => newBlob(n * 4 * MiB)));
    stack.shim.reset();
    stack.shim.setFault({ kind: 'slow-body', pathPattern: /\/blobs\//, bytesPerSecond: MiB });
    const pending = digests.map((d) => fetchBlob(blobUrl(d)));
    await waitFor(async () => (await stack.edge.metric('registry_edge_fills_in_flight')) >= 4, { what: 'four fills in progress' });
    await waitFor(() => stack.shim.stats.blobBodyBytes > 0, { what: 'bytes of the fills on their way' });
    stack.edge.proc.child.kill('SIGKILL');
    await stack.edge.proc.exited;
    for (const r of await Promise.all(pending)) assert.equal(r.complete, false);
    stack.shim.setFault(null);
    stack.edge = await startEdge({ workDir: stack.work, upstreams: [stack.shim.url], cacheDir: stack.edge.cacheDir });
    assert.deepEqual(await cacheProblems(stack.edge.cacheDir), { wrongBlobs: [], tempFiles: [] });
    for (const d of digests) assert.equal((await fetchBlob(blobUrl(d))).digest, d);
    for (const d of digests) assert.equal(stack.shim.stats.blobGets(d), 2, `${d} fetched again after the crash`);
    // A new process: its own baseline, taken once it has served.
    baseline = descriptors(stack.edge.proc.pid);
    await assertClean();
  });

  test('request smuggling (Content-Length with chunked, two lengths) is refused and nothing reaches the upstream', async () => {
    stack.shim.reset();
    const host = stack.edge.host;
    const smuggled = `GET /v2/${repo}/manifests/smuggled HTTP/1.1\r\nHost: x\r\n\r\n`;
    const attempts = [
      `POST /v2/${repo}/blobs/uploads/ HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      `POST /v2/${repo}/blobs/uploads/ HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 0\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`,
      `POST /v2/${repo}/blobs/uploads/ HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled}`,
    ];
    for (const attempt of attempts) {
      // Every answer to the attempt comes before the sentinel's: one 400, and the connection closed after it.
      const answer = await rawRequest(host, attempt);
      assert.deepEqual(statusLines(answer.text), [400], attempt.split('\r\n').slice(2, 4).join(' | '));
      assert.equal(answer.closed, true, 'nothing after the refused request is read as a request');
    }
    // The count can see a second answer: two honest pipelined requests get two, before the sentinel's.
    const pipelined = await rawRequest(host, `GET /v2/ HTTP/1.1\r\nHost: ${host}\r\n\r\n`.repeat(2));
    assert.deepEqual(statusLines(pipelined.text), [200, 200]);
    assert.equal(pipelined.closed, false, 'the sentinel was answered on the kept connection');
    assert.equal(stack.shim.stats.requests.filter((r) => r.path.includes('smuggled')).length, 0, 'no smuggled request was forwarded');
    assert.equal(stack.shim.stats.requests.length, 0, 'no refused request was forwarded');
    await assertClean();
  });

  test('headers beyond the limit get 431 and the edge keeps serving', async () => {
    const answer = await rawRequest(stack.edge.host, `GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
    assert.equal(answer.status, 431);
    assert.equal((await httpRequest(`${stack.edge.url}/v2/`)).status, 200);
    await assertClean();
  });

  test('traversal in raw paths, in every encoding tried, reaches no file (upload session ids are the registry\'s to judge)', async () => {
    const hex = '0'.repeat(64);
    const paths = [
      `/v2/../../../etc/passwd/blobs/sha256:${hex}`,
      `/v2/a/../../blobs/sha256:${hex}`,
      `/v2/%2e%2e/%2e%2e/etc/blobs/sha256:${hex}`,
      `/v2/%252e%252e/blobs/sha256:${hex}`,
      `/v2/a%2f..%2f..%2fetc/blobs/sha256:${hex}`,
      `/v2/a/blobs/sha256:..%2f..%2f..%2fetc%2fpasswd`,
      `/v2/a/blobs/sha256%3a${hex}`,
      `/v2/a/blobs/sha256:${hex}%00`,
      `/v2/a\\..\\..\\etc/blobs/sha256:${hex}`,
      `/v2/%c0%ae%c0%ae/blobs/sha256:${hex}`,
      `/v2/a/manifests/..%2f..%2ftags`,
      `/v2/a/blobs/uploads/..%2f..%2f`,
    ];
    stack.shim.reset();
    for (const p of paths) {
      const answer = await rawRequest(stack.edge.host, `GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      // An upload session id is the registry's to judge (it is forwarded, never a file name here).
      if (p.includes('/blobs/uploads/')) {
        assert.ok(answer.status > 0 && answer.status < 500, `${p}: ${answer.status}`);
        continue;
      }
      assert.ok([400, 404].includes(answer.status), `${p}: ${answer.status}`);
      const body = answer.text.slice(answer.text.indexOf('\r\n\r\n') + 4);
      if (answer.status !== 400 || body.length > 0) {
        const errors = (JSON.parse(body) as { errors?: Array<{ code: string }> }).errors;
        assert.ok(errors?.[0]?.code, `${p}: OCI error JSON`);
      }
    }
    // An upload path is passed through as the registry's to judge; nothing else may reach it.
    assert.deepEqual(stack.shim.stats.requests.filter((r) => !r.path.includes('/blobs/uploads/')).map((r) => r.path), []);
    const top = readdirSync(stack.edge.cacheDir).sort();
    assert.deepEqual(top.filter((n) => !['blobs', 'index', 'manifests', 'membership.log', 'tags', 'tmp'].includes(n)), [], 'nothing new at the top of cache.dir');
    await assertClean();
  });

  test('odd ranges: one byte, the last byte, reversed and multiple ranges (whole blob), past the end (416)', async () => {
    const size = 1000;
    const digest = await newBlob(size);
    assert.equal((await fetchBlob(blobUrl(digest))).digest, digest);
    const get = (range: string) => httpRequest(blobUrl(digest), { headers: { range } });
    const first = await get('bytes=0-0');
    assert.equal(first.status, 206);
    assert.equal(first.body.length, 1);
    assert.equal(first.headers['content-range'], `bytes 0-0/${size}`);
    const last = await get('bytes=-1');
    assert.equal(last.status, 206);
    assert.equal(last.headers['content-range'], `bytes ${size - 1}-${size - 1}/${size}`);
    for (const ignored of ['bytes=5-2', 'bytes=0-1,3-4', 'items=0-1', 'bytes=abc']) {
      const whole = await get(ignored);
      assert.equal(whole.status, 200, ignored);
      assert.equal(whole.body.length, size, ignored);
    }
    const past = await get(`bytes=${size}-`);
    assert.equal(past.status, 416);
    assert.equal(past.headers['content-range'], `bytes */${size}`);
    assert.equal((await get(`bytes=${size - 10}-${size * 5}`)).body.length, 10, 'an end past the blob is cut to it');
    await assertClean();
  });

  test('odd methods: known ones a route lacks get 405 UNSUPPORTED, unknown ones 400, none reaches the upstream', async () => {
    stack.shim.reset();
    for (const method of ['TRACE', 'OPTIONS', 'PROPFIND']) {
      const answer = await rawRequest(stack.edge.host, `${method} /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.equal(answer.status, 405, method);
      assert.match(answer.text, /UNSUPPORTED/, method);
    }
    // The edge is no forward proxy: CONNECT gets the connection closed, no tunnel.
    const tunnel = await rawRequest(stack.edge.host, `CONNECT ${stack.shim.host} HTTP/1.1\r\nHost: ${stack.shim.host}\r\n\r\n`);
    assert.equal(tunnel.closed, true);
    assert.doesNotMatch(tunnel.text, /^HTTP\/1\.1 200/);
    const unknown = await rawRequest(stack.edge.host, 'FROB /v2/ HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(unknown.status, 400);
    assert.equal(stack.shim.stats.requests.length, 0);
    assert.equal((await httpRequest(`${stack.edge.url}/v2/`)).status, 200, 'still serving');
    await assertClean();
  });
});
