import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, test } from 'node:test';
import { Balancer, ipHashKey, type ServerSpec, type Strategy } from '../../src/upstream/balancer.js';

function server(id: string, extra: Partial<ServerSpec> = {}): ServerSpec {
  return { id, weight: 1, maxFails: 1, failTimeoutMs: 10_000, backup: false, ...extra };
}

/** Deterministic PRNG (mulberry32), so the random client sets are the same every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomIPv4s(n: number, seed = 1): string[] {
  const r = rng(seed);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    out.push([0, 0, 0, 0].map(() => Math.floor(r() * 256)).join('.'));
  }
  return out;
}

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

function first(b: Balancer, key: string | undefined): string {
  const chosen = b.order(key)[0];
  assert.ok(chosen, 'order() returned no server');
  return chosen.id;
}

function assignment(b: Balancer, clients: readonly string[]): Map<string, string> {
  return new Map(clients.map((c) => [c, first(b, c)]));
}

function counts(assigned: Map<string, string>): Map<string, number> {
  const out = new Map<string, number>();
  for (const id of assigned.values()) out.set(id, (out.get(id) ?? 0) + 1);
  return out;
}

describe('ipHashKey', () => {
  test('IPv4 by its first three octets', () => {
    assert.equal(ipHashKey('10.1.2.3'), '10.1.2');
    assert.equal(ipHashKey('10.1.2.3'), ipHashKey('10.1.2.200'));
    assert.notEqual(ipHashKey('10.1.2.3'), ipHashKey('10.1.3.3'));
  });

  test('IPv4-mapped IPv6 uses the IPv4 rule', () => {
    assert.equal(ipHashKey('::ffff:10.1.2.3'), '10.1.2');
    assert.equal(ipHashKey('::FFFF:0a01:0203'), '10.1.2');
  });

  test('IPv6 by the whole normalised address', () => {
    assert.equal(ipHashKey('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
    assert.equal(ipHashKey('[2001:db8::1]'), '2001:db8::1');
    assert.notEqual(ipHashKey('2001:db8::1'), ipHashKey('2001:db8::2'));
  });

  test('anything else is used as it is, without throwing', () => {
    assert.equal(ipHashKey('not-an-ip'), 'not-an-ip');
    assert.equal(ipHashKey(''), '');
  });
});

describe('ip_hash (rendezvous)', () => {
  const three = [server('a'), server('b'), server('c')];
  const clients = randomIPv4s(10_000);

  test('the same key always gets the same server, also across instances', () => {
    const b1 = new Balancer(three, 'ip_hash');
    const b2 = new Balancer(three, 'ip_hash');
    for (const c of clients.slice(0, 500)) {
      const id = first(b1, c);
      for (let i = 0; i < 3; i++) assert.equal(first(b1, c), id);
      assert.equal(first(b2, c), id);
    }
    // Clients of one /24 share a server.
    assert.equal(first(b1, '192.0.2.1'), first(b1, '192.0.2.254'));
  });

  test('10 000 random clients spread over 3 equal servers within ±10%', () => {
    const b = new Balancer(three, 'ip_hash');
    const c = counts(assignment(b, clients));
    const expected = clients.length / 3;
    for (const id of ['a', 'b', 'c']) {
      const n = c.get(id) ?? 0;
      assert.ok(Math.abs(n - expected) <= expected * 0.1, `${id}: ${n} of ${clients.length}`);
    }
  });

  test('weights 1:2 give shares roughly 1:2', () => {
    const b = new Balancer([server('a'), server('b', { weight: 2 })], 'ip_hash');
    const c = counts(assignment(b, clients));
    const a = c.get('a') ?? 0;
    assert.ok(Math.abs(a - clients.length / 3) <= (clients.length / 3) * 0.1, `a: ${a}`);
    assert.equal(a + (c.get('b') ?? 0), clients.length);
  });

  test('order lists every healthy server once, chosen first', () => {
    const b = new Balancer([...three, server('z', { backup: true })], 'ip_hash');
    const ids = b.order('198.51.100.7').map((s) => s.id);
    assert.equal(ids.length, 4);
    assert.deepEqual(ids.slice(0, 3).sort(), ['a', 'b', 'c']);
    assert.equal(ids[3], 'z');
  });

  test('removing a server moves only its clients', () => {
    const before = assignment(new Balancer(three, 'ip_hash'), clients);
    const after = assignment(new Balancer([server('a'), server('c')], 'ip_hash'), clients);
    let moved = 0;
    for (const c of clients) {
      if (before.get(c) === 'b') {
        moved++;
        assert.notEqual(after.get(c), 'b');
      } else {
        assert.equal(after.get(c), before.get(c), c);
      }
    }
    assert.ok(moved > 0);
  });

  test('marking a server down (passive or probe) moves only its clients; back up restores them', () => {
    const t = clock();
    const b = new Balancer(three, 'ip_hash', t.now);
    const before = assignment(b, clients);
    const check = (): void => {
      const during = assignment(b, clients);
      for (const c of clients) {
        if (before.get(c) === 'b') assert.notEqual(during.get(c), 'b');
        else assert.equal(during.get(c), before.get(c), c);
      }
    };

    b.reportFailure('b'); // maxFails 1
    assert.equal(b.isHealthy('b'), false);
    check();
    t.advance(10_000);
    assert.deepEqual(assignment(b, clients), before);

    b.setProbeHealthy('b', false);
    check();
    b.setProbeHealthy('b', true);
    assert.deepEqual(assignment(b, clients), before);
  });

  test('the fallback order is the rendezvous order without the down server', () => {
    const b = new Balancer([...three, server('d')], 'ip_hash');
    for (const c of clients.slice(0, 200)) {
      const full = b.order(c).map((s) => s.id);
      const down = full[1] as string;
      b.setProbeHealthy(down, false);
      assert.deepEqual(b.order(c).map((s) => s.id), full.filter((id) => id !== down));
      b.setProbeHealthy(down, true);
    }
  });

  test('adding a 4th server moves only the clients that now land on it (~1/4)', () => {
    const before = assignment(new Balancer(three, 'ip_hash'), clients);
    const b4 = new Balancer(three, 'ip_hash');
    b4.update([...three, server('d')]);
    const after = assignment(b4, clients);
    let moved = 0;
    for (const c of clients) {
      if (after.get(c) !== before.get(c)) {
        moved++;
        assert.equal(after.get(c), 'd', c);
      }
    }
    assert.ok(moved > clients.length * 0.2 && moved < clients.length * 0.3, `moved ${moved}`);
  });

  test('without a client key it falls back to round robin', () => {
    const b = new Balancer(three, 'ip_hash');
    assert.deepEqual([first(b, undefined), first(b, undefined), first(b, undefined), first(b, '')], ['a', 'b', 'c', 'a']);
  });

  test('selection is fast', () => {
    const servers = ['a', 'b', 'c', 'd', 'e'].map((id) => server(`https://registry-${id}.example:5000`));
    const b = new Balancer(servers, 'ip_hash');
    const keys = clients.slice(0, 1000);
    const start = performance.now();
    let sink = 0;
    for (let i = 0; i < 100_000; i++) sink += b.order(keys[i % keys.length] as string).length;
    const ms = performance.now() - start;
    assert.equal(sink, 500_000);
    // Generous bound (a few µs per call is expected); only catches a pathological hash.
    assert.ok(ms < 5_000, `100k orders took ${ms} ms`);
  });
});

describe('round_robin', () => {
  test('weights 5:1:1 give nginx smooth sequence a a b a c a a', () => {
    const b = new Balancer([server('a', { weight: 5 }), server('b'), server('c')], 'round_robin');
    const seq = Array.from({ length: 14 }, () => first(b, '10.0.0.1'));
    assert.deepEqual(seq, ['a', 'a', 'b', 'a', 'c', 'a', 'a', 'a', 'a', 'b', 'a', 'c', 'a', 'a']);
  });

  test('skips a down server and lists the others as fallbacks', () => {
    const b = new Balancer([server('a'), server('b'), server('c')], 'round_robin');
    b.setProbeHealthy('b', false);
    for (let i = 0; i < 6; i++) {
      const ids = b.order(undefined).map((s) => s.id);
      assert.equal(ids.length, 2);
      assert.ok(!ids.includes('b'));
    }
  });
});

describe('least_conn', () => {
  test('picks the server with the fewest active requests', () => {
    const b = new Balancer([server('a'), server('b'), server('c')], 'least_conn');
    b.acquire('a');
    b.acquire('a');
    b.acquire('b');
    assert.equal(first(b, undefined), 'c');
    b.acquire('c');
    b.acquire('c');
    assert.equal(first(b, undefined), 'b');
    const ids = b.order(undefined).map((s) => s.id);
    assert.equal(ids[0], 'b');
    assert.deepEqual(ids.slice(1).sort(), ['a', 'c']);
    b.release('a');
    b.release('a');
    assert.equal(first(b, undefined), 'a');
    assert.equal(b.snapshot().find((s) => s.id === 'c')?.active, 2);
  });

  test('ties are broken by weighted round robin', () => {
    const b = new Balancer([server('a', { weight: 5 }), server('b'), server('c')], 'least_conn');
    const seq = Array.from({ length: 7 }, () => first(b, undefined));
    assert.deepEqual(seq, ['a', 'a', 'b', 'a', 'c', 'a', 'a']);
  });

  test('release never goes below zero and unknown ids are ignored', () => {
    const b = new Balancer([server('a'), server('b')], 'least_conn');
    b.release('a');
    b.acquire('nope');
    b.release('nope');
    assert.equal(b.snapshot().find((s) => s.id === 'a')?.active, 0);
  });
});

describe('passive health', () => {
  test('maxFails failures within failTimeout mark down; after failTimeout it comes back', () => {
    const t = clock();
    const b = new Balancer([server('a', { maxFails: 3, failTimeoutMs: 10_000 }), server('b')], 'round_robin', t.now);
    assert.equal(b.reportFailure('a'), false);
    t.advance(3_000);
    assert.equal(b.reportFailure('a'), false);
    assert.equal(b.isHealthy('a'), true);
    t.advance(3_000);
    assert.equal(b.reportFailure('a'), true, 'the failure that marks it down says so');
    assert.equal(b.isHealthy('a'), false);
    assert.equal(b.reportFailure('a'), false, 'one more while down does not');
    assert.deepEqual(b.order(undefined).map((s) => s.id), ['b']);
    t.advance(9_999);
    assert.equal(b.isHealthy('a'), false);
    t.advance(1);
    assert.equal(b.isHealthy('a'), true);
    assert.equal(b.order(undefined).length, 2);
  });

  test('failures spread more than failTimeout apart do not accumulate', () => {
    const t = clock();
    const b = new Balancer([server('a', { maxFails: 2, failTimeoutMs: 10_000 })], 'round_robin', t.now);
    for (let i = 0; i < 5; i++) {
      b.reportFailure('a');
      assert.equal(b.isHealthy('a'), true, `failure ${i}`);
      t.advance(10_001);
    }
  });

  test('a success resets the count', () => {
    const t = clock();
    const b = new Balancer([server('a', { maxFails: 2 })], 'round_robin', t.now);
    b.reportFailure('a');
    b.reportSuccess('a');
    b.reportFailure('a');
    assert.equal(b.isHealthy('a'), true);
    b.reportFailure('a');
    assert.equal(b.isHealthy('a'), false);
  });

  test('after coming back, one failure before any success marks it down again (nginx)', () => {
    const t = clock();
    const b = new Balancer([server('a', { maxFails: 3, failTimeoutMs: 1_000 })], 'round_robin', t.now);
    for (let i = 0; i < 3; i++) b.reportFailure('a');
    t.advance(1_000);
    assert.equal(b.isHealthy('a'), true);
    b.reportFailure('a');
    assert.equal(b.isHealthy('a'), false);
    t.advance(1_000);
    b.reportSuccess('a');
    b.reportFailure('a');
    assert.equal(b.isHealthy('a'), true);
  });

  test('maxFails 0 disables accounting', () => {
    const b = new Balancer([server('a', { maxFails: 0 })], 'round_robin', clock().now);
    for (let i = 0; i < 100; i++) b.reportFailure('a');
    assert.equal(b.isHealthy('a'), true);
  });

  test('a failed probe overrides until a probe succeeds', () => {
    const t = clock();
    const b = new Balancer([server('a'), server('b')], 'round_robin', t.now);
    b.setProbeHealthy('a', false);
    b.reportSuccess('a');
    t.advance(1_000_000);
    assert.equal(b.isHealthy('a'), false);
    b.setProbeHealthy('a', true);
    assert.equal(b.isHealthy('a'), true);
    assert.equal(b.snapshot()[0]?.probeHealthy, true);
  });
});

describe('backup and all-down', () => {
  const strategies: Strategy[] = ['ip_hash', 'round_robin', 'least_conn'];
  for (const strategy of strategies) {
    test(`${strategy}: backup only when every primary is down`, () => {
      const t = clock();
      const b = new Balancer([server('a'), server('b'), server('z', { backup: true })], strategy, t.now);
      for (let i = 0; i < 10; i++) assert.notEqual(first(b, `10.0.${i}.1`), 'z');
      b.reportFailure('a');
      for (let i = 0; i < 10; i++) assert.equal(first(b, `10.0.${i}.1`), 'b');
      b.setProbeHealthy('b', false);
      assert.deepEqual(b.order('10.0.0.1').map((s) => s.id), ['z']);
      t.advance(10_000); // a is back
      assert.equal(first(b, '10.0.0.1'), 'a');
      assert.deepEqual(b.order('10.0.0.1').map((s) => s.id), ['a', 'z']);
    });

    test(`${strategy}: all down returns every server, primaries first`, () => {
      const b = new Balancer([server('a'), server('z', { backup: true }), server('b')], strategy, clock().now);
      for (const id of ['a', 'b', 'z']) b.setProbeHealthy(id, false);
      const ids = b.order('10.9.8.7').map((s) => s.id);
      assert.equal(ids.length, 3);
      assert.deepEqual(ids.slice(0, 2).sort(), ['a', 'b']);
      assert.equal(ids[2], 'z');
    });
  }
});

describe('update and snapshot', () => {
  test('update keeps the state of ids that remain and drops the others', () => {
    const t = clock();
    const b = new Balancer([server('a'), server('b'), server('c')], 'least_conn', t.now);
    b.reportFailure('a');
    b.acquire('b');
    b.setProbeHealthy('c', false);
    b.update([server('b'), server('a'), server('d')]);
    const snap = new Map(b.snapshot().map((s) => [s.id, s]));
    assert.deepEqual([...snap.keys()], ['b', 'a', 'd']);
    assert.equal(snap.get('a')?.healthy, false);
    assert.equal(snap.get('a')?.fails, 1);
    assert.equal(snap.get('b')?.active, 1);
    assert.equal(snap.get('d')?.healthy, true);
    assert.equal(snap.get('d')?.probeHealthy, null);
    assert.equal(b.isHealthy('c'), false); // unknown now
    b.update([server('c')]);
    assert.equal(b.isHealthy('c'), true); // re-added fresh
  });

  test('invalid lists are rejected and change nothing', () => {
    const b = new Balancer([server('a')], 'round_robin');
    assert.throws(() => b.update([server('x'), server('x')]), /duplicate.*"x"/);
    assert.throws(() => b.update([server('x', { weight: 0 })]), /weight/);
    assert.throws(() => new Balancer([server('x', { maxFails: -1 })], 'round_robin'), /maxFails/);
    assert.deepEqual(b.servers().map((s) => s.id), ['a']);
  });

  test('an empty list orders nothing', () => {
    assert.deepEqual(new Balancer([], 'ip_hash').order('10.0.0.1'), []);
  });
});
