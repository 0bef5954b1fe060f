// The descriptor limit as /proc shows it, what fits under it, and how exhaustion is recognised.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { connectionCap, connectionsThatFit, descriptorLimit, exhaustionCode } from '../../src/http/descriptors.js';
import { createLogger, type Logger } from '../../src/log/logger.js';
import { removeDir, tempDir } from '../helpers/proc.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max processes             63471                63471                processes
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

const dir = tempDir('re-descriptors-');
let logs = 0;

/** A logger writing to a file, and the lines it wrote so far. */
function capturingLogger(): { log: Logger; lines: () => Array<Record<string, unknown>> } {
  const file = path.join(dir, `log-${++logs}.jsonl`);
  const log = createLogger({ level: 'info', sync: true, dest: file });
  const lines = (): Array<Record<string, unknown>> =>
    fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : [];
  return { log, lines };
}

describe('descriptors', () => {
  after(() => removeDir(dir));

  test('descriptorLimit reads the soft limit; unlimited or unreadable is undefined', () => {
    assert.equal(descriptorLimit(LIMITS), 1024);
    assert.equal(descriptorLimit(LIMITS.replace('1024 ', 'unlimited ')), undefined);
    assert.equal(descriptorLimit('no such line'), undefined);
    // This process's own, on Linux.
    assert.ok((descriptorLimit() ?? 1) > 0);
  });

  test('connectionsThatFit sets aside the rest of the edge and halves what is left, never below 1', () => {
    assert.equal(connectionsThatFit(1024, { keptFiles: 256, upstreamSockets: 128 }), 288);
    assert.equal(connectionsThatFit(65536, { keptFiles: 256, upstreamSockets: 128 }), 32544);
    assert.equal(connectionsThatFit(128, { keptFiles: 256, upstreamSockets: 128 }), 1);
  });

  test('connectionCap keeps a value that fits silently, and warns once naming the key and both numbers otherwise', () => {
    const other = { keptFiles: 16, upstreamSockets: 16 };
    const quiet = capturingLogger();
    assert.equal(connectionCap(50, other, quiet.log, 256), 50);
    assert.equal(connectionCap(4096, other, quiet.log, undefined), 4096, 'no limit known: as configured');
    assert.deepEqual(quiet.lines(), []);
    const loud = capturingLogger();
    assert.equal(connectionCap(4096, other, loud.log, 256), 80);
    const [line, ...more] = loud.lines();
    assert.deepEqual(more, []);
    assert.equal(line?.key, 'http.max_connections');
    assert.match(String(line?.msg), /http\.max_connections 4096 .*descriptor limit 256.*using 80/);
  });

  test('exhaustionCode finds EMFILE/ENFILE on an error or the causes it wraps', () => {
    const emfile = Object.assign(new Error('open'), { code: 'EMFILE' });
    assert.equal(exhaustionCode(emfile), 'EMFILE');
    assert.equal(exhaustionCode(new Error('fill failed', { cause: Object.assign(new Error('connect'), { code: 'ENFILE' }) })), 'ENFILE');
    assert.equal(exhaustionCode(Object.assign(new Error('x'), { code: 'ECONNRESET' })), undefined);
    assert.equal(exhaustionCode(undefined), undefined);
    assert.equal(exhaustionCode('EMFILE'), undefined);
  });
});
