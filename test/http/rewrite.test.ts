// Upstream URLs as clients see them: on the edge's base, pinned, never on a Host the client made up.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PIN_PARAM, publicBase, rewriteLink, rewriteLocation, withPrefix } from '../../src/http/rewrite.js';
import type { Instance } from '../../src/upstream/client.js';

const instance = { url: 'http://10.0.0.5:5000', origin: 'http://10.0.0.5:5000', basePath: '', key: 'k1', label: '10.0.0.5:5000' } as unknown as Instance;
const base = publicBase('https://hub.example.internal', false, 'evil.example');

describe('rewrite', () => {
  test('http.host is the base whatever Host the client sent', () => {
    assert.equal(base, 'https://hub.example.internal');
    assert.equal(publicBase('', true, 'edge:5000'), 'https://edge:5000');
  });

  test('an upload Location on the instance, on the base or on the client\'s Host moves to the base and is pinned', () => {
    const path = '/v2/a/blobs/uploads/u1?_state=s';
    for (const from of ['http://10.0.0.5:5000', 'https://hub.example.internal', 'http://evil.example', '']) {
      assert.equal(rewriteLocation(`${from}${path}`, instance, base, 'evil.example'), `${base}${path}&${PIN_PARAM}=k1`, from);
    }
  });

  test('a redirect elsewhere (object storage) is left as it is', () => {
    const s3 = 'https://s3.example/bucket/blob?X-Amz-Signature=1';
    assert.equal(rewriteLocation(s3, instance, base, 'evil.example'), s3);
  });

  test('under a host prefix, absolute URLs on the base and relative Link targets carry the prefix; other URLs do not', () => {
    assert.equal(withPrefix('</v2/team/app/tags/list?last=a&n=1>; rel="next"', base, 'ghcr.io'), '</v2/ghcr.io/team/app/tags/list?last=a&n=1>; rel="next"');
    assert.equal(withPrefix(`${base}/v2/team/app/blobs/uploads/u1?_state=s`, base, 'ghcr.io'), `${base}/v2/ghcr.io/team/app/blobs/uploads/u1?_state=s`);
    assert.equal(withPrefix(`<${base}/v2/_catalog?n=1>; rel="next"`, base, 'ghcr.io'), `<${base}/v2/ghcr.io/_catalog?n=1>; rel="next"`);
    const s3 = 'https://s3.example/v2/bucket/blob';
    assert.equal(withPrefix(s3, base, 'ghcr.io'), s3);
    assert.equal(withPrefix('</v2/team/app/tags/list?last=a>; rel="next"', base, ''), '</v2/team/app/tags/list?last=a>; rel="next"');
  });

  test('Link targets on the client\'s Host move to the base', () => {
    assert.equal(rewriteLink('<http://evil.example/v2/_catalog?last=a&n=1>; rel="next"', instance, base, 'evil.example'), `<${base}/v2/_catalog?last=a&n=1>; rel="next"`);
  });
});
