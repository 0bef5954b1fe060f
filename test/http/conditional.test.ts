// If-None-Match and If-Range against the edge's entity tags (RFC 9110 §13.1.2, §13.1.5):
// the comparisons the RFC names, and nothing a client sends throws.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ifNoneMatchHits, ifRangeHolds } from '../../src/http/conditional.js';

const digest = `sha256:${'ab'.repeat(32)}`;
const etag = `"${digest}"`;
const other = `"sha256:${'0'.repeat(64)}"`;

test('If-None-Match: weak comparison, *, lists with empty elements; anything else is ignored', () => {
  for (const field of [etag, `W/${etag}`, '*', ` * `, `${other}, ${etag}`, `${other},W/${etag}`, `, ${etag} ,,`, `\t${etag}\t`]) {
    assert.equal(ifNoneMatchHits(field, etag), true, field);
  }
  for (const field of [undefined, '', other, digest, `"${digest}`, `${etag} x`, `${other} ${etag}`, `${etag};`, `w/${etag}`, `"sha256:${'AB'.repeat(32)}"`, '**', `*, ${etag}`]) {
    assert.equal(ifNoneMatchHits(field, etag), false, String(field));
  }
});

test('If-Range: only the same strong tag keeps the Range; a weak tag, a date or another tag does not', () => {
  assert.equal(ifRangeHolds(undefined, etag), true);
  assert.equal(ifRangeHolds(etag, etag), true);
  assert.equal(ifRangeHolds(` ${etag} `, etag), true);
  for (const field of ['', other, `W/${etag}`, 'Wed, 21 Oct 2015 07:28:00 GMT', digest, `${etag}, ${etag}`, '*']) {
    assert.equal(ifRangeHolds(field, etag), false, field);
  }
});

test('any field value: a boolean, and a field naming the tag among other tags still matches', () => {
  const tag = fc.tuple(fc.boolean(), fc.stringMatching(/^[\x21\x23-\x7e]{0,20}$/)).map(([weak, opaque]) => `${weak ? 'W/' : ''}"${opaque}"`);
  fc.assert(fc.property(fc.string({ maxLength: 80 }), (field) => {
    assert.equal(typeof ifNoneMatchHits(field, etag), 'boolean');
    assert.equal(typeof ifRangeHolds(field, etag), 'boolean');
  }), { numRuns: 2000 });
  fc.assert(fc.property(fc.array(tag, { maxLength: 5 }), fc.array(tag, { maxLength: 5 }), fc.boolean(), (before, after, weak) => {
    const field = [...before, `${weak ? 'W/' : ''}${etag}`, ...after].join(', ');
    assert.equal(ifNoneMatchHits(field, etag), true, field);
  }), { numRuns: 1000 });
});
