// youngGcEvery: a minor V8 collection every so many bytes, observed through perf_hooks' gc entries.
import assert from 'node:assert/strict';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { test } from 'node:test';
import { youngGcEvery } from '../../src/runtime/young-gc.js';
import { waitFor } from '../helpers/proc.js';

const MiB = 1024 * 1024;

function minorGcs(entries: PerformanceEntry[]): number {
  return entries.filter((e) => (e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR).length;
}

test('0 turns it off', () => {
  assert.equal(youngGcEvery(0), undefined);
});

test('a minor collection runs each time the byte count passes the step', async () => {
  const seen: PerformanceEntry[] = [];
  const observer = new PerformanceObserver((list) => seen.push(...list.getEntries()));
  observer.observe({ entryTypes: ['gc'] });
  try {
    const count = youngGcEvery(MiB);
    assert.ok(count, 'gc() can be exposed at run time');
    // Under the step: nothing forced. Entries arrive asynchronously, so give them a turn.
    count(MiB - 1);
    await new Promise((resolve) => setImmediate(resolve));
    const before = minorGcs(seen);
    // 3.5 MiB more in 64 KiB chunks: three more steps passed.
    for (let i = 0; i < 56; i++) count(64 * 1024);
    await waitFor(() => minorGcs(seen) >= before + 3, { what: 'three minor collections', timeoutMs: 5_000 });
    assert.ok(minorGcs(seen) >= before + 3);
  } finally {
    observer.disconnect();
  }
});
