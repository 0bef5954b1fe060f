// Properties of Range handling: parsing never throws, and what it resolves to is a
// non-empty slice of the blob or 'unsatisfiable', never a slice past either end.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseRange, resolveRange, type RangeSpec } from '../../src/oci/range.js';

const RUNS = { numRuns: 2000 };

const number = fc.oneof(fc.nat({ max: 1000 }), fc.nat(), fc.maxSafeNat(), fc.constant(Number.MAX_SAFE_INTEGER));
const digits = fc.oneof(number.map(String), fc.string({ unit: fc.constantFrom(...'0123456789'), maxLength: 20 }), fc.constantFrom('', '00', '007', '1e3', '-1', '+1', '0x10', ' 1'));
const space = fc.constantFrom('', ' ', '\t', '  ');
/** Range headers as clients, proxies and fuzzers send them. */
const header = fc.oneof(
  fc.tuple(fc.constantFrom('bytes', 'Bytes', 'BYTES', 'items', 'byte', ''), space, digits, space, digits, space)
    .map(([unit, s, a, t, b, u]) => `${unit}${s}=${t}${a}${s}-${u}${b}${t}`),
  fc.tuple(digits, digits, digits, digits).map(([a, b, c, d]) => `bytes=${a}-${b},${c}-${d}`),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
);
const size = fc.oneof(fc.constant(0), fc.nat({ max: 100 }), fc.nat(), fc.maxSafeNat());

function checkResolved(spec: RangeSpec, blobSize: number): void {
  const r = resolveRange(spec, blobSize);
  if (r === 'unsatisfiable') return;
  assert.ok(Number.isSafeInteger(r.start) && Number.isSafeInteger(r.end), JSON.stringify(r));
  assert.ok(r.start >= 0 && r.start < r.end && r.end <= blobSize, `${JSON.stringify(spec)} of ${blobSize} bytes gave ${JSON.stringify(r)}`);
}

test('parseRange never throws; parse then resolve gives 0 <= start < end <= size, or unsatisfiable', () => {
  fc.assert(fc.property(fc.option(header, { nil: undefined }), size, (h, n) => {
    const spec = parseRange(h);
    if (spec !== undefined) checkResolved(spec, n);
  }), RUNS);
});

test('resolveRange keeps within the blob for every spec parseRange can give', () => {
  const spec: fc.Arbitrary<RangeSpec> = fc.oneof(
    number.map((suffix) => ({ suffix })),
    fc.tuple(number, fc.option(number, { nil: undefined })).filter(([s, e]) => e === undefined || e > s).map(([start, end]) => ({ start, end })),
  );
  fc.assert(fc.property(spec, size, checkResolved), RUNS);
});

test('well-formed single ranges mean what RFC 9110 says', () => {
  fc.assert(fc.property(fc.nat({ max: 10_000 }), fc.nat({ max: 10_000 }), fc.nat({ max: 10_000 }), (first, length, blobSize) => {
    const last = first + length;
    const r = resolveRange(parseRange(`bytes=${first}-${last}`) ?? assert.fail('a valid range was ignored'), blobSize);
    // §14.1.2: satisfiable when first < size; last past the end means up to the end.
    if (first >= blobSize) return void assert.equal(r, 'unsatisfiable');
    assert.deepEqual(r, { start: first, end: Math.min(last + 1, blobSize) });
    const suffix = resolveRange(parseRange(`bytes=-${length}`) ?? assert.fail('a valid suffix was ignored'), blobSize);
    if (length === 0) return void assert.equal(suffix, 'unsatisfiable');
    assert.deepEqual(suffix, { start: Math.max(0, blobSize - length), end: blobSize });
  }), RUNS);
});
