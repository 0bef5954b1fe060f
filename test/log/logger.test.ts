// createLogger: log.sync decides whether a line is on disk when the call returns or only after the thread pool wrote it.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { createLogger } from '../../src/log/logger.js';
import { removeDir, run, tempDir, waitFor } from '../helpers/proc.js';

function lines(file: string): Array<{ msg: string; n: number }> {
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; n: number });
}

test('sync: each line is in the file when the call returns', (t) => {
  const dir = tempDir('re-log-');
  t.after(() => removeDir(dir));
  const file = path.join(dir, 'edge.log');
  const log = createLogger({ level: 'info', sync: true, dest: file });
  log.info({ n: 1 }, 'request');
  assert.deepEqual(lines(file).map((l) => [l.msg, l.n]), [['request', 1]]);
  log.debug({ n: 2 }, 'below the level');
  log.info({ n: 3 }, 'request');
  assert.deepEqual(lines(file).map((l) => l.n), [1, 3]);
});

test('async: lines are written later, by the thread pool, in order', async (t) => {
  const dir = tempDir('re-log-');
  t.after(() => removeDir(dir));
  const file = path.join(dir, 'edge.log');
  const log = createLogger({ level: 'info', sync: false, dest: file });
  // sonic-boom opens the file asynchronously too: wait until it is there before logging.
  await waitFor(() => fs.existsSync(file), { timeoutMs: 5000, what: 'the log file to be opened' });
  // Every thread of the pool is held by an open of a FIFO that has no writer yet, queued
  // before the lines: an asynchronous write cannot run until they are let go.
  const threads = Number(process.env['UV_THREADPOOL_SIZE'] ?? 4);
  const fifos = Array.from({ length: threads }, (_, i) => path.join(dir, `hold-${i}`));
  for (const fifo of fifos) assert.equal((await run('mkfifo', [fifo])).code, 0);
  const held = fifos.map((fifo) => fs.promises.open(fifo, 'r'));
  for (let n = 1; n <= 3; n++) log.info({ n }, 'request');
  assert.equal(fs.readFileSync(file, 'utf8'), '', 'nothing is written while the thread pool is busy');
  // A writer opening each FIFO lets its reader's open return.
  for (const fifo of fifos) fs.closeSync(fs.openSync(fifo, 'w'));
  for (const handle of await Promise.all(held)) await handle.close();
  await waitFor(() => lines(file).length === 3, { timeoutMs: 5000, what: 'three lines' });
  assert.deepEqual(lines(file).map((l) => l.n), [1, 2, 3]);
  log.flush();
});
