// The status page's memory (StatusRecorder: a window of lookups, a ring of errors, a
// bounded count of repositories) and its rendering, which escapes what clients name.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderStatus, statusPage } from '../../src/http/status-page.js';
import { StatusRecorder, type FinishedRequest, type StatusSnapshot } from '../../src/http/status.js';

const request = (over: Partial<FinishedRequest>): FinishedRequest => ({
  route: 'blob', status: 200, cache: 'hit', repository: 'team/app', bytes: 10, requestId: 'r', code: undefined, message: undefined, ...over,
});

test('the hit ratio over the window forgets lookups older than it', () => {
  let now = 1_000_000;
  const rec = new StatusRecorder({ errors: 5, repositories: 10, windowMs: 10_000 }, () => now);
  rec.request(request({ cache: 'fill' }));
  now += 5_000;
  rec.request(request({ cache: 'hit' }));
  rec.request(request({ cache: 'pass', route: 'manifest' }));
  assert.deepEqual(rec.view().window, { hits: 1, misses: 1, ratio: 0.5, seconds: 10 });
  now += 6_000;
  assert.deepEqual(rec.view().window, { hits: 1, misses: 0, ratio: 1, seconds: 10 });
  now += 10_000;
  assert.deepEqual(rec.view().window, { hits: 0, misses: 0, ratio: null, seconds: 10 });
});

test('errors: 5xx answers and fill failures, the newest first, at most status.errors', () => {
  const rec = new StatusRecorder({ errors: 2, repositories: 10, windowMs: 1000 });
  rec.request(request({ status: 404 }));
  rec.request(request({ status: 500, code: 'upstream 500', requestId: 'a' }));
  rec.fillFailed('sha256:ab', 'digest_mismatch', 'bytes do not hash');
  rec.request(request({ status: 503, code: 'UNAVAILABLE', requestId: 'c' }));
  assert.deepEqual(rec.view().errors.map((e) => [e.route, e.code]), [['blob', 'UNAVAILABLE'], ['fill', 'digest_mismatch']]);
});

test('repositories: counted up to the bound; a new one takes the least requested one\'s place', () => {
  const rec = new StatusRecorder({ errors: 1, repositories: 2, windowMs: 1000 });
  for (let i = 0; i < 3; i++) rec.request(request({ repository: 'busy', bytes: 100 }));
  rec.request(request({ repository: 'quiet' }));
  rec.request(request({ repository: 'new' }));
  assert.deepEqual(rec.view().repositories, [{ name: 'busy', requests: 3, bytes: 300 }, { name: 'new', requests: 1, bytes: 10 }]);
});

test('everything rendered is escaped: names and messages are text, never markup', () => {
  const evil = '<img src=x onerror=alert(1)>"\'&';
  const snapshot: StatusSnapshot = {
    now: '2026-12-02T10:00:00.000Z',
    startedAt: '2026-12-02T09:00:00.000Z',
    uptimeSeconds: 3600,
    cache: { sizeBytes: 1536, maxBytes: 4096, blobs: 1, writable: true },
    hits: { sinceStart: { hits: 1, misses: 1, ratio: 0.5 }, window: { hits: 0, misses: 0, ratio: null, seconds: 60 } },
    bytes: { fromCache: 0, fromFill: 0, fromUpstream: 0, upstreamReceived: 0 },
    origins: [{ host: '', instances: [{ url: `http://x/${evil}`, label: 'x', healthy: false, backup: false, fails: 1, active: 0, probeHealthy: false, lastFailure: { at: '2026-12-02T09:59:00.000Z', reason: evil } }] }],
    fills: [{ digest: `sha256:${evil}`, receivedBytes: 10, size: 20, startedAt: '2026-12-02T09:59:58.000Z' }],
    errors: [{ at: '2026-12-02T10:00:00.000Z', route: 'blob', status: 500, code: evil, message: evil, repository: evil, requestId: evil }],
    repositories: [{ name: evil, requests: 1, bytes: 1 }],
  };
  const body = renderStatus(snapshot);
  assert.ok(!body.includes('<img'), 'no markup from the snapshot');
  assert.ok(body.includes('&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;'));
  assert.ok(body.includes('<span id="cache-size" data-bytes="1536">1.5 KiB</span>'));
  assert.ok(body.includes('<b class="down" data-health="down">down</b>'));
  assert.ok(body.includes('<progress value="10" max="20"></progress>'), 'a fill\'s progress');
  // The page's script carries the same renderer, as source text.
  assert.ok(statusPage(snapshot).includes(`const renderStatus = ${renderStatus.toString()}`));
});
