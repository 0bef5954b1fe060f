// The pure parts of warming: envelopes as registry:2 sends them, globs, platforms, image references, the bounded queue.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isEnvelopeType, parseEnvelope } from '../../src/prewarm/envelope.js';
import { compileGlob, globProblem } from '../../src/prewarm/glob.js';
import { parseImageRef } from '../../src/prewarm/image-ref.js';
import { parsePlatform, platformWanted } from '../../src/prewarm/platforms.js';
import { Selection } from '../../src/prewarm/selection.js';
import { WorkQueue } from '../../src/prewarm/work-queue.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const push = (over: Record<string, unknown> = {}, target: Record<string, unknown> = {}): Record<string, unknown> => ({
  id: 'e1',
  timestamp: '2026-12-02T10:00:00Z',
  action: 'push',
  target: { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', digest: DIGEST, size: 528, length: 528, repository: 'team/app', url: 'https://hub.example.internal/v2/team/app/manifests/' + DIGEST, tag: 'v1', ...target },
  request: { id: 'r1', addr: '10.0.0.9:5123', host: 'Hub.Example.Internal', method: 'PUT', useragent: 'docker/24' },
  actor: {},
  source: { addr: 'registry-1:5000', instanceID: 'i1' },
  ...over,
});
const envelope = (...events: unknown[]): Buffer => Buffer.from(JSON.stringify({ events }, null, '   '));

describe('envelope', () => {
  test('a tagged manifest push is taken, with the hosts it names in lower case', () => {
    const [event] = parseEnvelope(envelope(push())) as ReturnType<typeof parseEnvelope> & unknown[];
    assert.deepEqual(event, { kind: 'push', id: 'e1', repository: 'team/app', tag: 'v1', digest: { algorithm: 'sha256', hex: 'ab'.repeat(32), value: DIGEST }, hosts: ['hub.example.internal', 'hub.example.internal'] });
  });

  test('pulls, blobs, pushes by digest only are ignored; malformed events invalid; the others still judged', () => {
    const judged = parseEnvelope(envelope(
      push({ action: 'pull' }),
      push({}, { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', tag: undefined }),
      push({}, { tag: undefined }),
      push({}, { repository: '../etc' }),
      push({}, { digest: 'sha256:short' }),
      push({ id: undefined }),
      'not an event',
      push({ id: 'e2' }, { mediaType: 'application/vnd.oci.image.index.v1+json' }),
    ));
    assert.ok(Array.isArray(judged));
    assert.deepEqual(judged.map((e) => e.kind), ['ignored', 'ignored', 'ignored', 'invalid', 'invalid', 'invalid', 'invalid', 'push']);
  });

  test('a body that is no envelope says why; an empty one has no events', () => {
    assert.equal(parseEnvelope(Buffer.from('{"events": {}}')), 'events is not a list');
    assert.equal(parseEnvelope(Buffer.from('nope')), 'the body is not JSON');
    assert.deepEqual(parseEnvelope(Buffer.from('{}')), []);
  });

  test('media types: v1 (registry 2.x), v2 (distribution 3), plain JSON; nothing else', () => {
    assert.ok(isEnvelopeType('application/vnd.docker.distribution.events.v1+json'));
    assert.ok(isEnvelopeType('application/vnd.docker.distribution.events.v2+json; charset=utf-8'));
    assert.ok(isEnvelopeType('application/json'));
    assert.ok(!isEnvelopeType('text/plain'));
    assert.ok(!isEnvelopeType(undefined));
  });
});

describe('globs and the selection', () => {
  test('* stays in a component, ** crosses them, ? is one character', () => {
    assert.ok(compileGlob('team/*')('team/app'));
    assert.ok(!compileGlob('team/*')('team/app/sub'));
    assert.ok(compileGlob('team/**')('team/app/sub'));
    assert.ok(compileGlob('**/base')('base'));
    assert.ok(compileGlob('a/**/b')('a/b') && compileGlob('a/**/b')('a/x/y/b'));
    assert.ok(compileGlob('app?')('app1') && !compileGlob('app?')('app/'));
    assert.ok(compileGlob('**')('anything/at/all'));
    assert.ok(!compileGlob('team.app')('teamxapp'), 'a dot is a dot');
  });

  test('globs that would not mean what they say are refused', () => {
    assert.equal(globProblem('team/**'), undefined);
    assert.match(globProblem('team/a**') ?? '', /whole path components/);
    assert.match(globProblem('***') ?? '', /more than two/);
    assert.match(globProblem('') ?? '', /empty/);
  });

  test('include, then exclude; a glob with a colon sees the tag', () => {
    const s = new Selection(['team/**', 'base:*'], ['team/private/**', '*/*:*-rc*']);
    assert.ok(s.admits('team/app', 'v1'));
    assert.ok(s.admits('base', 'anything'));
    assert.ok(!s.admits('other/app', 'v1'), 'not included');
    assert.ok(!s.admits('team/private/x', 'v1'), 'excluded by repository');
    assert.ok(!s.admits('team/app', 'v2-rc1'), 'excluded by tag');
  });
});

describe('platforms and image references', () => {
  test('os/arch[/variant]; a wanted platform without a variant takes every variant', () => {
    const arm = parsePlatform('linux/arm64');
    assert.deepEqual(parsePlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.equal(parsePlatform('linux'), undefined);
    assert.ok(arm && platformWanted([arm], { os: 'linux', architecture: 'arm64', variant: 'v8' }));
    assert.ok(arm && !platformWanted([arm], { os: 'linux', architecture: 'amd64', variant: undefined }));
    assert.ok(arm && !platformWanted([arm], undefined), 'an entry with no platform (an attestation) is not a wanted platform');
    assert.ok(platformWanted([], undefined), 'none wanted: all');
  });

  test('[host/]name[:tag|@digest], the host only when it is an origin', () => {
    const hosts = new Set(['ghcr.io', '10.0.0.5:5000']);
    assert.deepEqual(parseImageRef('ghcr.io/org/app:1', hosts), { host: 'ghcr.io', name: 'org/app', reference: { kind: 'tag', tag: '1' } });
    assert.deepEqual(parseImageRef('10.0.0.5:5000/app', hosts), { host: '10.0.0.5:5000', name: 'app', reference: { kind: 'tag', tag: 'latest' } });
    const byDigest = parseImageRef(`team/app@${DIGEST}`, hosts);
    assert.ok(typeof byDigest !== 'string' && byDigest.reference.kind === 'digest' && byDigest.reference.digest.value === DIGEST);
    assert.match(parseImageRef('quay.io/org/app:1', hosts) as string, /quay\.io is not one of the origins/);
    assert.match(parseImageRef('team/app@sha256:12', hosts) as string, /not a digest/);
    assert.match(parseImageRef('team/app:bad tag', hosts) as string, /not a tag/);
  });
});

describe('work queue', () => {
  test('at most `concurrency` at once, refuses beyond `capacity`, close drops the waiting and aborts the running', async () => {
    const releases: Array<() => void> = [];
    let running = 0;
    let most = 0;
    const signals: AbortSignal[] = [];
    const depths: number[] = [];
    const queue = new WorkQueue<number>({ capacity: 2, concurrency: 2 }, async (_n, signal) => {
      signals.push(signal);
      running++;
      most = Math.max(most, running);
      await new Promise<void>((resolve) => releases.push(resolve));
      running--;
    }, (n) => depths.push(n));
    assert.ok(queue.offer(1) && queue.offer(2), 'two run');
    assert.ok(queue.offer(3) && queue.offer(4), 'two wait');
    assert.equal(queue.offer(5), false, 'full');
    (releases.shift() as () => void)();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(running, 2, 'a waiting one started when one ended');
    assert.ok(queue.offer(5), 'room again');
    const closed = queue.close();
    assert.ok(signals.every((s) => s.aborted));
    for (const release of releases.splice(0)) release();
    await closed;
    assert.equal(most, 2);
    assert.equal(queue.offer(6), false, 'closed');
    assert.equal(depths.at(-1), 0);
  });
});
