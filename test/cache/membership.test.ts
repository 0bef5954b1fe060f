// Membership per origin: the default origin keeps plain repository names, another origin's
// repositories are keyed <host>/<name>, and both survive a restart (the log is replayed).
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { Membership } from '../../src/cache/membership.js';
import { removeDir, tempDir } from '../helpers/proc.js';

const dir = tempDir('re-membership-');
after(() => removeDir(dir));

const DIGEST = `sha256:${'a'.repeat(64)}`;

test("one origin's facts are not another's, and each holds across a restart", async () => {
  const file = path.join(dir, 'membership.log');
  const first = new Membership(file);
  await first.init();
  await first.of('reg-b.test:5000').add('team/app', [DIGEST]);
  await first.of('').add('library/alpine', [DIGEST]);
  const replayed = new Membership(file);
  await replayed.init();
  assert.equal(replayed.of('reg-b.test:5000').has(DIGEST, 'team/app'), true);
  assert.equal(replayed.has(DIGEST, 'team/app'), false, 'the default origin does not hold what reg-b.test:5000 holds');
  assert.equal(replayed.of('ghcr.io').has(DIGEST, 'team/app'), false);
  assert.equal(replayed.has(DIGEST, 'library/alpine'), true, 'the default origin keeps plain names');
  assert.equal(replayed.of('reg-b.test:5000').has(DIGEST, 'library/alpine'), false);
  await replayed.of('reg-b.test:5000').remove('team/app', [DIGEST]);
  const again = new Membership(file);
  await again.init();
  assert.equal(again.of('reg-b.test:5000').has(DIGEST, 'team/app'), false);
  assert.equal(again.of('reg-b.test:5000').wasRemoved(DIGEST, 'team/app'), true);
});
