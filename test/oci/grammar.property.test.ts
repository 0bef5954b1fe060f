// Properties of the request grammar: parseDistributionPath throws nothing but
// RegistryError, accepts exactly what the distribution spec's grammar accepts, and no
// name, tag or digest it lets through yields a cache path outside the cache directory.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { CacheLayout } from '../../src/cache/layout.js';
import { RegistryError } from '../../src/oci/errors.js';
import { parseDigest } from '../../src/oci/grammar.js';
import { parseDistributionPath, type DistributionRequest } from '../../src/oci/request.js';

// The grammar as the distribution spec writes it (spec.md, "Pulling manifests"), and the
// digest grammar of the image spec (descriptor.md, "Digests") with its registered algorithms.
const SPEC_NAME = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;
const SPEC_NAME_MAX = 255;
const SPEC_TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const SPEC_DIGEST = /^[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const REGISTERED = { sha256: /^[a-f0-9]{64}$/, sha512: /^[a-f0-9]{128}$/ } as const;

const specName = (name: string): boolean => name.length <= SPEC_NAME_MAX && SPEC_NAME.test(name);
const specDigest = (text: string): boolean => {
  if (!SPEC_DIGEST.test(text)) return false;
  const [algorithm = '', encoded = ''] = text.split(':');
  return (algorithm === 'sha256' || algorithm === 'sha512') && REGISTERED[algorithm].test(encoded);
};

const RUNS = { numRuns: 1000 };

const chars = (set: string): fc.Arbitrary<string> => fc.constantFrom(...set.split(''));
const alnum = fc.string({ unit: chars('abcxyz0189'), minLength: 1, maxLength: 6 });
const separator = fc.constantFrom('.', '_', '__', '-', '--', '---');
const component = fc.tuple(alnum, fc.array(fc.tuple(separator, alnum), { maxLength: 3 })).map(([head, rest]) => head + rest.map(([s, a]) => s + a).join(''));
const validName = fc.array(component, { minLength: 1, maxLength: 4 }).map((parts) => parts.join('/'));
/** What hostile or careless clients send: encodings, dot segments, case, separators in the wrong place. */
const nasty = fc.constantFrom(
  'A', 'Z', '.', '..', '/', '//', '/../', '/./', '%2e', '%2E%2e', '%2F', '%2f', '%5c', '%', '%z', '%00', '%61', '-', '_', '___', ' ', '\\', ':',
  '@', '\u00e9', '\u0130', '\uff0e', '\0', '\n', '?', '#', 'manifests', 'blobs', 'uploads', 'tags/list', '_catalog',
);
/** A string with a piece of `extra` spliced in at a random place. */
const spliced = (base: fc.Arbitrary<string>, extra: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc.tuple(base, extra, fc.nat()).map(([b, e, at]) => b.slice(0, at % (b.length + 1)) + e + b.slice(at % (b.length + 1)));
const longName = fc.tuple(component, fc.integer({ min: 200, max: 300 })).map(([c, n]) => `${c}/${'n'.repeat(n)}`.slice(0, n));
const anyName = fc.oneof(validName, spliced(validName, nasty), spliced(spliced(validName, nasty), nasty), longName, fc.string({ maxLength: 40 }));

const tagHead = chars('abzABZ019_');
const tagTail = fc.string({ unit: chars('abzABZ019_.-'), maxLength: 130 });
const validTag = fc.tuple(tagHead, tagTail).map(([h, t]) => (h + t).slice(0, 128));
const anyTag = fc.oneof(validTag, fc.tuple(tagHead, tagTail).map(([h, t]) => h + t), spliced(validTag, nasty), fc.string({ maxLength: 20 }));

const hex = (n: number, set = '0123456789abcdef'): fc.Arbitrary<string> => fc.string({ unit: chars(set), minLength: n, maxLength: n });
const validDigest = fc.oneof(hex(64).map((h) => `sha256:${h}`), hex(128).map((h) => `sha512:${h}`));
const anyDigest = fc.oneof(
  validDigest,
  fc.tuple(fc.constantFrom('sha256', 'sha512', 'sha384', 'md5', 'SHA256', 'sha256+b64', 'blake3', ''), fc.oneof(hex(64), hex(128), hex(63), hex(64, '0123456789ABCDEF'), hex(32), fc.string({ maxLength: 70 })))
    .map(([a, h]) => `${a}:${h}`),
  spliced(validDigest, nasty),
  fc.string({ maxLength: 20 }),
);

function outcome(p: string): DistributionRequest | RegistryError | undefined {
  try {
    return parseDistributionPath(p);
  } catch (err) {
    // Anything else would escape the handler as a 500.
    assert.ok(err instanceof RegistryError, `${JSON.stringify(p)} threw ${String(err)}`);
    return err;
  }
}

const malformedPercent = (p: string): boolean => /%(?![0-9A-Fa-f]{2})/.test(p);

/** `/v2/<name>/manifests/` and the like, with nothing after the route word, are no route at all. */
function noRoute(got: ReturnType<typeof outcome>, p: string): void {
  assert.ok(got instanceof RegistryError, p);
  assert.deepEqual([got.status, got.code], [404, 'NAME_UNKNOWN'], p);
}

test('parseDistributionPath throws nothing but RegistryError, for any string', () => {
  const segment = fc.oneof(anyName, anyTag, anyDigest, nasty, fc.string({ unit: 'binary', maxLength: 12 }));
  const paths = fc.oneof(
    fc.array(segment, { maxLength: 8 }).map((s) => `/v2/${s.join('/')}`),
    fc.string({ unit: 'binary', maxLength: 300 }).map((s) => `/v2/${s}`),
    fc.string({ unit: 'binary', maxLength: 300 }),
  );
  fc.assert(fc.property(paths, (p) => void outcome(p)), { numRuns: 2000 });
});

test('manifest paths: accepted exactly when the name, tag or digest is in the spec grammar', () => {
  const reference = fc.oneof(anyTag, anyDigest).filter((r) => !r.includes('/'));
  fc.assert(fc.property(anyName, reference, (name, ref) => {
    const p = `/v2/${name}/manifests/${ref}`;
    const got = outcome(p);
    if (malformedPercent(p)) return void assert.equal(got instanceof RegistryError && got.status, 400, p);
    if (ref === '') return noRoute(got, p);
    if (!specName(name)) return void assert.equal(got instanceof RegistryError && got.code, 'NAME_INVALID', p);
    if (ref.includes(':')) {
      if (!specDigest(ref)) return void assert.equal(got instanceof RegistryError && got.code, 'DIGEST_INVALID', p);
      return void assert.deepEqual(got, { route: 'manifest', name, reference: { kind: 'digest', digest: parseDigest(ref) } }, p);
    }
    if (!SPEC_TAG.test(ref)) {
      assert.ok(got instanceof RegistryError, p);
      return void assert.deepEqual([got.status, got.code], [404, 'MANIFEST_UNKNOWN'], p);
    }
    assert.deepEqual(got, { route: 'manifest', name, reference: { kind: 'tag', tag: ref } }, p);
  }), RUNS);
});

test('blob and referrers paths: accepted exactly when the name and digest are in the spec grammar', () => {
  const reference = anyDigest.filter((r) => !r.includes('/') && r !== 'uploads');
  fc.assert(fc.property(anyName, reference, fc.constantFrom('blobs', 'referrers'), (name, ref, route) => {
    const p = `/v2/${name}/${route}/${ref}`;
    const got = outcome(p);
    if (malformedPercent(p)) return void assert.equal(got instanceof RegistryError && got.status, 400, p);
    if (ref === '') return noRoute(got, p);
    if (!specName(name)) return void assert.equal(got instanceof RegistryError && got.code, 'NAME_INVALID', p);
    if (specDigest(ref)) return void assert.deepEqual(got, { route: route === 'blobs' ? 'blob' : 'referrers', name, digest: parseDigest(ref) }, p);
    assert.ok(got instanceof RegistryError, p);
    // Text not shaped like a digest names no blob (404); a malformed digest is refused (400).
    const expected = route === 'blobs' && !ref.includes(':') ? 'BLOB_UNKNOWN' : 'DIGEST_INVALID';
    assert.equal(got.code, expected, p);
  }), RUNS);
});

test('tags, uploads and the catalogue: the name decides', () => {
  const suffix = fc.constantFrom('/tags/list', '/blobs/uploads/', '/blobs/uploads', '/blobs/uploads/5b0c2b2e-1a2b-4c3d-9e8f-0a1b2c3d4e5f');
  fc.assert(fc.property(anyName, suffix, (name, rest) => {
    const p = `/v2/${name}${rest}`;
    const got = outcome(p);
    if (malformedPercent(p)) return void assert.equal(got instanceof RegistryError && got.status, 400, p);
    if (!specName(name)) return void assert.equal(got instanceof RegistryError && got.code, 'NAME_INVALID', p);
    assert.ok(got && !(got instanceof RegistryError), p);
    assert.equal('name' in got && got.name, name, p);
  }), RUNS);
});

test('no name, tag or digest that passes the grammar yields a cache path outside the cache directory', () => {
  const rootSegment = fc.oneof(fc.string({ unit: chars('abc019._-'), minLength: 1, maxLength: 8 }), fc.constantFrom('..', '.', 'cache dir', 'blobs'));
  const root = fc.tuple(fc.boolean(), fc.array(rootSegment, { minLength: 1, maxLength: 5 })).map(([absolute, parts]) => (absolute ? '/' : '') + parts.join('/'));
  const paths = fc.oneof(
    fc.tuple(anyName, anyDigest).map(([n, d]) => `/v2/${n}/blobs/${d}`),
    fc.tuple(anyName, anyDigest).map(([n, d]) => `/v2/${n}/referrers/${d}`),
    fc.tuple(anyName, fc.oneof(anyTag, anyDigest)).map(([n, r]) => `/v2/${n}/manifests/${r}`),
  );
  fc.assert(fc.property(root, paths, (dir, p) => {
    const got = outcome(p);
    if (!got || got instanceof RegistryError) return;
    const layout = new CacheLayout(dir);
    const base = path.resolve(dir);
    const files: string[] = [];
    if (got.route === 'blob' || got.route === 'referrers') files.push(layout.blobPath(got.digest), layout.manifestPath(got.digest));
    if (got.route === 'manifest' && got.reference.kind === 'digest') files.push(layout.manifestPath(got.reference.digest), layout.blobPath(got.reference.digest));
    if (got.route === 'manifest' && got.reference.kind === 'tag') files.push(layout.tagPath(got.name, got.reference.tag));
    for (const file of files) {
      const rel = path.relative(base, path.resolve(file));
      assert.ok(rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel), `${p} under ${dir} gave ${file}`);
      // Exactly three levels under blobs/ or manifests/ (alg, two hex, hex), or one under tags/.
      assert.equal(rel.split(path.sep).length, got.route === 'manifest' && got.reference.kind === 'tag' ? 2 : 4, `${p} gave ${rel}`);
    }
  }), RUNS);
});
