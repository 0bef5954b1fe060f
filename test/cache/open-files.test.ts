// OpenFiles: blob descriptors kept open between requests (nginx open_file_cache), on real files.
import assert from 'node:assert/strict';
import { fstatSync, readSync, unlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { OpenFiles } from '../../src/cache/open-files.js';
import { removeDir, tempDir, waitFor } from '../helpers/proc.js';

function isOpen(fd: number): boolean {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

function readAll(fd: number, size: number): string {
  const buf = Buffer.alloc(size);
  readSync(fd, buf, 0, size, 0);
  return buf.toString();
}

/** Files named `names` holding "bytes of <name>" in a temp directory removed after the test, by name. */
function files<N extends string>(t: { after(fn: () => void): void }, names: readonly N[]): Record<N, string> {
  const dir = tempDir('re-open-files-');
  t.after(() => removeDir(dir));
  const out = {} as Record<N, string>;
  for (const name of names) {
    out[name] = path.join(dir, name);
    writeFileSync(out[name], `bytes of ${name}`);
  }
  return out;
}

for (const how of ['openNow', 'openLater'] as const) {
  test(`${how}: a second open of a key reuses the descriptor, which stays open while idle`, async (t) => {
    const { a } = files(t, ['a']);
    const cache = new OpenFiles({ max: 4, idleSeconds: 60 });
    t.after(() => cache.close());
    const first = await cache[how]('a', a);
    assert.equal(first.size, 'bytes of a'.length);
    first.release();
    assert.ok(isOpen(first.fd), 'kept open once released');
    // The path is gone: only the kept descriptor can answer.
    unlinkSync(a);
    const second = await cache[how]('a', a);
    assert.equal(second.fd, first.fd);
    assert.equal(readAll(second.fd, second.size), 'bytes of a');
    second.release();
  });
}

test('a dropped key is closed at once when idle, and on its last release when in use', async (t) => {
  const { a, b } = files(t, ['a', 'b']);
  const cache = new OpenFiles({ max: 4, idleSeconds: 60 });
  t.after(() => cache.close());
  const idle = cache.openNow('a', a);
  idle.release();
  cache.drop('a');
  assert.equal(isOpen(idle.fd), false);

  const one = cache.openNow('b', b);
  const two = cache.openNow('b', b);
  assert.equal(one.fd, two.fd);
  cache.drop('b');
  one.release();
  assert.ok(isOpen(two.fd), 'still in use by the second copy');
  assert.equal(readAll(two.fd, two.size), 'bytes of b');
  two.release();
  two.release();
  assert.equal(isOpen(two.fd), false);
  // A new open after the drop opens the file again.
  const three = cache.openNow('b', b);
  assert.equal(readAll(three.fd, three.size), 'bytes of b');
  three.release();
});

test('beyond max the least recently used idle descriptor is closed', async (t) => {
  const { a, b, c } = files(t, ['a', 'b', 'c']);
  const cache = new OpenFiles({ max: 2, idleSeconds: 60 });
  t.after(() => cache.close());
  const fa = cache.openNow('a', a);
  fa.release();
  const fb = cache.openNow('b', b);
  fb.release();
  cache.openNow('a', a).release(); // a is now the most recently used
  const fc = cache.openNow('c', c);
  fc.release();
  assert.equal(isOpen(fb.fd), false, 'b was the least recently used');
  assert.ok(isOpen(fa.fd) && isOpen(fc.fd));
});

test('an idle descriptor is closed after idleSeconds', async (t) => {
  const { a } = files(t, ['a']);
  const cache = new OpenFiles({ max: 4, idleSeconds: 0.05 });
  t.after(() => cache.close());
  const f = cache.openNow('a', a);
  f.release();
  await waitFor(() => !isOpen(f.fd), { timeoutMs: 5000, what: 'the idle descriptor to be closed' });
});

test('max 0: every open has its own descriptor, closed on release', async (t) => {
  const { a } = files(t, ['a']);
  const cache = new OpenFiles({ max: 0, idleSeconds: 60 });
  t.after(() => cache.close());
  const one = cache.openNow('a', a);
  const two = await cache.openLater('a', a);
  assert.notEqual(one.fd, two.fd);
  one.release();
  assert.equal(isOpen(one.fd), false);
  two.release();
  assert.equal(isOpen(two.fd), false);
});

test('close() closes the idle descriptors', async (t) => {
  const { a } = files(t, ['a']);
  const cache = new OpenFiles({ max: 4, idleSeconds: 60 });
  const f = cache.openNow('a', a);
  f.release();
  cache.close();
  assert.equal(isOpen(f.fd), false);
});

test('a missing file throws, and nothing is cached for it', async (t) => {
  const { a } = files(t, ['a']);
  const cache = new OpenFiles({ max: 4, idleSeconds: 60 });
  t.after(() => cache.close());
  assert.throws(() => cache.openNow('x', `${a}.missing`), { code: 'ENOENT' });
  await assert.rejects(cache.openLater('x', `${a}.missing`), { code: 'ENOENT' });
});

test('a kept descriptor whose file another process unlinked is dropped within a second: the next open finds the file gone', async (t) => {
  const { a } = files(t, ['a']);
  const cache = new OpenFiles({ max: 4, idleSeconds: 60 });
  t.after(() => cache.close());
  const first = cache.openNow('a', a);
  const fd = first.fd;
  first.release();
  assert.ok(isOpen(fd), 'kept while idle');
  unlinkSync(a);
  await waitFor(() => !isOpen(fd) || undefined, { what: 'the unlinked file\'s descriptor to be closed', timeoutMs: 5_000 });
  assert.throws(() => cache.openNow('a', a), /ENOENT/);
});
