import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isValidName, isValidTag, parseDigest } from '../../src/oci/grammar.js';
import { accepts, parseAccept } from '../../src/oci/media-types.js';
import { parseRange, resolveRange } from '../../src/oci/range.js';
import { parseDistributionPath } from '../../src/oci/request.js';
import { RegistryError } from '../../src/oci/errors.js';

test('repository names follow the distribution grammar', () => {
  for (const ok of ['a', 'library/alpine', 'team-a/app_1', 'a/b/c/d', 'x.y__z--w']) assert.ok(isValidName(ok), ok);
  for (const bad of ['', 'A', 'a//b', '/a', 'a/', '../a', 'a/..', 'a/./b', '-a', 'a-', 'a%2fb', 'a b', 'a/.b', 'a'.repeat(256)]) {
    assert.equal(isValidName(bad), false, bad);
  }
});

test('tags and digests', () => {
  assert.ok(isValidTag('v1.2.3-rc_1'));
  assert.ok(isValidTag('a'.repeat(128)));
  assert.equal(isValidTag('a'.repeat(129)), false);
  assert.equal(isValidTag('.x'), false);
  assert.equal(isValidTag('-x'), false);
  assert.deepEqual(parseDigest(`sha256:${'a'.repeat(64)}`), { algorithm: 'sha256', hex: 'a'.repeat(64), value: `sha256:${'a'.repeat(64)}` });
  assert.ok(parseDigest(`sha512:${'0'.repeat(128)}`));
  for (const bad of [`sha256:${'a'.repeat(63)}`, `sha256:${'A'.repeat(64)}`, `sha512:${'0'.repeat(64)}`, `md5:${'0'.repeat(32)}`, 'sha256', `sha256:../${'a'.repeat(61)}`]) {
    assert.equal(parseDigest(bad), undefined, bad);
  }
});

test('request paths parse into one validated value', () => {
  const d = `sha256:${'b'.repeat(64)}`;
  assert.deepEqual(parseDistributionPath('/v2/'), { route: 'base' });
  assert.deepEqual(parseDistributionPath('/v2/_catalog'), { route: 'catalog' });
  assert.equal(parseDistributionPath('/metrics'), undefined);
  const blob = parseDistributionPath(`/v2/library/alpine/blobs/${d}`);
  assert.equal(blob?.route, 'blob');
  // A repository may itself be called "blobs" or "manifests": the last match decides.
  const tricky = parseDistributionPath('/v2/x/manifests/y/manifests/latest');
  assert.deepEqual(tricky, { route: 'manifest', name: 'x/manifests/y', reference: { kind: 'tag', tag: 'latest' } });
  assert.deepEqual(parseDistributionPath('/v2/a/b/tags/list'), { route: 'tags', name: 'a/b' });
  assert.deepEqual(parseDistributionPath('/v2/a/blobs/uploads/'), { route: 'upload', name: 'a', session: undefined });
  assert.deepEqual(parseDistributionPath('/v2/a/blobs/uploads/abc-123'), { route: 'upload', name: 'a', session: 'abc-123' });
  const code = (p: string): string => {
    try {
      parseDistributionPath(p);
      return 'none';
    } catch (err) {
      assert.ok(err instanceof RegistryError);
      return err.code;
    }
  };
  assert.equal(code(`/v2/../etc/blobs/${d}`), 'NAME_INVALID');
  assert.equal(code('/v2/a/blobs/sha256:zz'), 'DIGEST_INVALID');
  assert.equal(code('/v2/a/manifests/sha256:zz'), 'DIGEST_INVALID');
  assert.equal(code('/v2/a/manifests/.tag'), 'MANIFEST_UNKNOWN', 'a tag outside the grammar names no manifest');
  assert.equal(code('/v2/a/manifests/bad%tag'), 'NAME_INVALID', 'a path that is not a URI');
  assert.equal(code('/v2/a/blobs/latest'), 'BLOB_UNKNOWN', 'text not shaped like a digest names no blob');
  assert.equal(code('/v2/a/unknown'), 'NAME_UNKNOWN');
});

test('Accept negotiation', () => {
  assert.equal(parseAccept(undefined), undefined);
  assert.equal(parseAccept('*/*'), undefined);
  const set = parseAccept(['application/vnd.oci.image.manifest.v1+json; q=0.5', 'application/vnd.docker.distribution.manifest.v2+json']);
  assert.ok(set && accepts(set, 'application/vnd.oci.image.manifest.v1+json'));
  assert.ok(set && !accepts(set, 'application/vnd.oci.image.index.v1+json'));
});

test('single byte ranges', () => {
  assert.deepEqual(parseRange('bytes=0-99'), { start: 0, end: 100 });
  assert.deepEqual(parseRange('bytes=100-'), { start: 100, end: undefined });
  assert.deepEqual(parseRange('bytes=-5'), { suffix: 5 });
  for (const ignored of ['bytes=5-1', 'bytes=0-1,3-4', 'items=0-1', 'bytes=-', 'bytes=x-y', undefined]) assert.equal(parseRange(ignored), undefined);
  assert.deepEqual(resolveRange({ start: 10, end: undefined }, 100), { start: 10, end: 100 });
  assert.deepEqual(resolveRange({ start: 10, end: 1000 }, 100), { start: 10, end: 100 });
  assert.deepEqual(resolveRange({ suffix: 500 }, 100), { start: 0, end: 100 });
  assert.equal(resolveRange({ start: 100, end: undefined }, 100), 'unsatisfiable');
  assert.equal(resolveRange({ suffix: 0 }, 100), 'unsatisfiable');
});
