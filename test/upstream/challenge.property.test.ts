// Properties of the WWW-Authenticate parser: any string an upstream sends is parsed
// without throwing, and a challenge the edge formats (after rewriting its realm) parses
// back to the same challenge.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatChallenge, parseChallenge, type Challenge } from '../../src/upstream/challenge.js';

const RUNS = { numRuns: 2000 };

const tokenChars = (set: string): fc.Arbitrary<string> => fc.constantFrom(...set.split(''));
const scheme = fc.tuple(tokenChars('bBcdxZ'), fc.string({ unit: tokenChars("aerZ09!#$%&'*+.^_`|~-"), maxLength: 8 })).map(([h, t]) => h + t);
// Parameter names as parseChallenge reads them (lower case: it folds case, as RFC 7235 makes them case-insensitive).
const paramName = fc.oneof(
  fc.string({ unit: tokenChars('abcz09_-'), minLength: 1, maxLength: 10 }),
  fc.constantFrom('realm', 'service', 'scope', 'error', '__proto__', 'constructor', 'tostring', 'hasownproperty'),
);
const paramValue = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.string({ unit: tokenChars('a"\\,= \t:/'), maxLength: 12 }),
  fc.constantFrom('https://auth.example/token', 'repository:a/b:pull,push', '', '\\', '"', '\\"'),
);
const challenge: fc.Arbitrary<Challenge> = fc.tuple(scheme, fc.uniqueArray(fc.tuple(paramName, paramValue), { selector: ([k]) => k, maxLength: 6 }))
  .map(([s, entries]) => ({ scheme: s, params: Object.fromEntries(entries) }));

test('parseChallenge never throws, whatever the upstream sends', () => {
  const headers = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.array(fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('Bearer ', 'realm=', '"', '\\', ',', '=', ' ')), { maxLength: 30 }).map((p) => p.join('')),
    challenge.map(formatChallenge),
  );
  fc.assert(fc.property(fc.option(headers, { nil: undefined }), (h) => {
    const c = parseChallenge(h);
    if (c === undefined) return;
    assert.equal(typeof c.scheme, 'string');
    for (const v of Object.values(c.params)) assert.equal(typeof v, 'string');
  }), RUNS);
});

test('parse(format(challenge)) gives the challenge back', () => {
  fc.assert(fc.property(challenge, (c) => {
    const back = parseChallenge(formatChallenge(c));
    assert.ok(back, formatChallenge(c));
    assert.equal(back.scheme, c.scheme.toLowerCase());
    assert.deepEqual(Object.entries(back.params), Object.entries(c.params), formatChallenge(c));
  }), RUNS);
});
