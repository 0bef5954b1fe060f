// QueuedWriter: background appends to a real file, in order, with a bound and errors surfaced.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { QueuedWriter } from '../../src/cache/queued-writer.js';
import { mountTmpfs } from '../helpers/mount.js';
import { removeDir, tempDir } from '../helpers/proc.js';

const dir = tempDir('re-writer-');
after(() => removeDir(dir));

test('chunks land in order, written grows to the total, and the bound asks the source to pause', async () => {
  const file = path.join(dir, 'ordered');
  const handle = await open(file, 'wx+');
  const seen: number[] = [];
  const writer = new QueuedWriter(handle, 256 * 1024, () => seen.push(writer.written));
  const chunks = Array.from({ length: 200 }, (_v, i) => randomBytes(1000 + i * 97));
  let paused = 0;
  for (const c of chunks) {
    if (writer.push(c)) {
      paused++;
      await writer.drained();
    }
  }
  await writer.flush();
  await handle.close();
  const total = chunks.reduce((a, c) => a + c.length, 0);
  assert.deepEqual(readFileSync(file), Buffer.concat(chunks));
  assert.equal(writer.written, total);
  assert.ok(paused > 0, 'over 256 KiB queued, push asked for a pause');
  // Fewer writes than chunks: what queued during a write went out in one writev.
  assert.ok(seen.length < chunks.length, `${seen.length} writes for ${chunks.length} chunks`);
  assert.deepEqual([...seen].sort((a, b) => a - b), seen, 'written only grows');
});

test('a failed write is thrown by the next push and by flush', async () => {
  const handle = await open(path.join(dir, 'failing'), 'wx+');
  // Read-only file handle: the write fails with EBADF.
  await handle.close();
  const readOnly = await open(path.join(dir, 'failing'), 'r');
  const writer = new QueuedWriter(readOnly, 1024 * 1024, () => undefined);
  writer.push(Buffer.from('first'));
  await assert.rejects(writer.flush(), /EBADF/);
  assert.throws(() => writer.push(Buffer.from('second')), /EBADF/);
  await writer.stop();
  await readOnly.close();
});

test('stop drops the queue and returns once no write is in flight', async () => {
  const file = path.join(dir, 'stopped');
  const handle = await open(file, 'wx+');
  const writer = new QueuedWriter(handle, 64 * 1024 * 1024, () => undefined);
  for (let i = 0; i < 50; i++) writer.push(randomBytes(64 * 1024));
  await writer.stop();
  // Closing now must not race a write: the file holds whole writes only, a prefix of what was pushed.
  await handle.close();
  const size = readFileSync(file).length;
  assert.equal(size, writer.written);
  assert.ok(size < 50 * 64 * 1024, 'the queued rest was dropped');
});

test('a full disk: the writer fails once, with ENOSPC, and written is exactly what the file holds', async () => {
  const small = await mountTmpfs(dir, 'tiny', 256 * 1024);
  try {
    const file = path.join(small.dir, 'full');
    const handle = await open(file, 'wx+');
    const failures: Error[] = [];
    const writer = new QueuedWriter(handle, 64 * 1024 * 1024, () => undefined, (err) => failures.push(err));
    // Many small chunks, so one writev lands partly (a short write) before the disk is full.
    for (let i = 0; i < 100; i++) writer.push(randomBytes(5000));
    await assert.rejects(writer.flush(), (err: NodeJS.ErrnoException) => err.code === 'ENOSPC');
    await writer.stop();
    await handle.close();
    assert.equal(failures.length, 1, 'reported once');
    assert.ok(writer.written > 0 && writer.written < 500_000);
    assert.equal(statSync(file).size, writer.written, 'written counts only bytes the file holds');
  } finally {
    await small.unmount();
  }
});
