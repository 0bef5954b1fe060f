// The primary's answers to its workers' coordinator calls: one lease per digest, the others
// told where to follow it, a dead worker's leases free at once, facts with their TTLs.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HostState } from '../../src/workers/host-state.js';
import { waitFor } from '../helpers/proc.js';

const D = 'sha256:' + 'a'.repeat(64);
const ONE = 'http://127.0.0.1:4001';
const TWO = 'http://127.0.0.1:4002';

describe('HostState', () => {
  test('the first claim of a digest gets the lease; another worker is sent to the holder until it releases', () => {
    const host = new HostState();
    assert.deepEqual(host.answer(1, { op: 'claimFill', digest: D, peer: ONE }), { kind: 'lease' });
    assert.deepEqual(host.answer(2, { op: 'claimFill', digest: D, peer: TWO }), { kind: 'peer', peer: ONE });
    // Only the holder's release counts.
    host.answer(2, { op: 'release', digest: D });
    assert.deepEqual(host.answer(2, { op: 'claimFill', digest: D, peer: TWO }), { kind: 'peer', peer: ONE });
    host.answer(1, { op: 'release', digest: D });
    assert.equal(host.leaseCount, 0);
    assert.deepEqual(host.answer(2, { op: 'claimFill', digest: D, peer: TWO }), { kind: 'lease' });
  });

  test('a holder that cannot be reached is taken over only if it still holds the lease', () => {
    const host = new HostState();
    host.answer(1, { op: 'claimFill', digest: D, peer: ONE });
    assert.deepEqual(host.answer(2, { op: 'takeOver', digest: D, peer: TWO, dead: ONE }), { kind: 'lease' });
    // Worker 3 thought worker 1 was the holder; worker 2 is now: it is sent there.
    assert.deepEqual(host.answer(3, { op: 'takeOver', digest: D, peer: 'http://127.0.0.1:4003', dead: ONE }), { kind: 'peer', peer: TWO });
  });

  test('a blob a worker just committed sends another worker there, not to the origin, until that worker does not serve it', () => {
    const host = new HostState();
    host.answer(1, { op: 'claimFill', digest: D, peer: ONE });
    // Announced before the release: no moment without one or the other.
    host.answer(1, { op: 'holding', digest: D, peer: ONE, ttlMs: 60_000 });
    host.answer(1, { op: 'release', digest: D });
    assert.deepEqual(host.answer(2, { op: 'claimFill', digest: D, peer: TWO }), { kind: 'peer', peer: ONE });
    // Worker 1 itself missing it again (evicted): it leads.
    assert.deepEqual(host.answer(1, { op: 'claimFill', digest: D, peer: ONE }), { kind: 'lease' });
    host.answer(1, { op: 'release', digest: D });
    // Worker 1 answered 404: worker 2 takes over and fetches.
    assert.deepEqual(host.answer(2, { op: 'takeOver', digest: D, peer: TWO, dead: ONE }), { kind: 'lease' });
  });

  test('a worker that exits loses its leases at once', () => {
    const host = new HostState();
    host.answer(1, { op: 'claimFill', digest: D, peer: ONE });
    host.answer(1, { op: 'claimFill', digest: 'sha256:' + 'b'.repeat(64), peer: ONE });
    host.answer(2, { op: 'claimFill', digest: 'sha256:' + 'c'.repeat(64), peer: TWO });
    host.forget(1);
    assert.equal(host.leaseCount, 1);
    assert.deepEqual(host.answer(2, { op: 'claimFill', digest: D, peer: TWO }), { kind: 'lease' });
  });

  test('tags keep the freshest confirmation; facts and claims expire with their TTL', async () => {
    const host = new HostState();
    const mapping = (confirmedAt: number) => ({ digest: D, mediaType: 'application/vnd.oci.image.manifest.v1+json', confirmedAt });
    host.answer(1, { op: 'putTag', key: 'team/app:1', mapping: mapping(200), ttlMs: 60_000 });
    host.answer(2, { op: 'putTag', key: 'team/app:1', mapping: mapping(100), ttlMs: 60_000 });
    assert.deepEqual(host.answer(2, { op: 'getTag', key: 'team/app:1' }), mapping(200));
    assert.equal(host.answer(1, { op: 'getTag', key: 'team/app:2' }), null);
    host.answer(1, { op: 'addMembers', repo: 'team/app', digests: [D], ttlMs: 60_000 });
    assert.equal(host.answer(2, { op: 'hasMember', repo: 'team/app', digest: D }), true);
    assert.equal(host.answer(2, { op: 'hasMember', repo: 'team/other', digest: D }), false);
    host.answer(1, { op: 'putDecision', key: 'k', ttlMs: 30 });
    assert.equal(host.answer(2, { op: 'hasDecision', key: 'k' }), true);
    assert.equal(host.answer(1, { op: 'claimOnce', id: 'event-1', ttlMs: 30 }), true);
    assert.equal(host.answer(2, { op: 'claimOnce', id: 'event-1', ttlMs: 30 }), false);
    await waitFor(() => host.answer(2, { op: 'hasDecision', key: 'k' }) === false || undefined, { what: 'the decision to expire', timeoutMs: 2_000 });
    assert.equal(host.answer(2, { op: 'claimOnce', id: 'event-1', ttlMs: 30 }), true);
  });
});
