// serve --pretty: pino's JSON lines as a person reads them; log.timestamp: iso.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { createLogger } from '../../src/log/logger.js';
import { prettyDestination, prettyLine } from '../../src/log/pretty.js';
import { EDGE_BIN } from '../helpers/edge.js';
import { removeDir, startProcess, tempDir, waitFor } from '../helpers/proc.js';

test('an access line: time, level, message, method, path, status, duration lead; the rest as key=value', () => {
  const line = JSON.stringify({
    level: 30, time: Date.UTC(2026, 11, 2, 10, 11, 12, 345), pid: 1, hostname: 'h', service: 'registry-edge', msg: 'request',
    method: 'GET', path: '/v2/team/app/blobs/sha256:ab', route: 'blob', origin: '', status: 200, bytes: 1024, durationMs: 1.5,
    cache: 'hit', requestId: 'req-1', userAgent: 'docker/27.0 go/1.22', subject: undefined,
  });
  assert.equal(
    prettyLine(line),
    '10:11:12.345 INFO  request GET /v2/team/app/blobs/sha256:ab 200 1.5ms  route=blob origin="" bytes=1024 cache=hit requestId=req-1 userAgent="docker/27.0 go/1.22"',
  );
});

test('an error: its message on the line, its stack indented below; ISO times read too; colour on request', () => {
  const line = JSON.stringify({ level: 50, time: '2026-12-02T10:11:12.345Z', msg: 'listener error', err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at x (y.js:1:1)' } });
  assert.equal(prettyLine(line), '10:11:12.345 ERROR listener error  err=boom\n    Error: boom\n        at x (y.js:1:1)');
  assert.equal(prettyLine(JSON.stringify({ level: 40, time: 0, msg: 'm' }), true), '00:00:00.000 \x1b[33mWARN \x1b[0m m');
});

test('what is not a JSON line passes as it is', () => {
  assert.equal(prettyLine('plain text'), undefined);
  const out: string[] = [];
  prettyDestination({ write: (t: string) => out.push(t) }, false).write('not json\n');
  assert.deepEqual(out, ['not json\n']);
});

test('log.timestamp iso: the time field is an ISO 8601 string', (t) => {
  const dir = tempDir('re-log-');
  t.after(() => removeDir(dir));
  const file = path.join(dir, 'edge.log');
  createLogger({ level: 'info', sync: true, dest: file, timestamp: 'iso' }).info('hello');
  createLogger({ level: 'info', sync: true, dest: file }).info('epoch');
  const [iso, epoch] = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { time: unknown }).time);
  assert.match(String(iso), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(typeof epoch, 'number');
});

test('serve --pretty: the edge itself writes its lines pretty, with ISO times asked for', async (t) => {
  const dir = tempDir('re-pretty-');
  const config = path.join(dir, 'edge.yaml');
  fs.writeFileSync(config, 'log:\n  timestamp: iso\n');
  const proc = startProcess(process.execPath, [EDGE_BIN, 'serve', '--pretty', '--config', config], {
    logFile: path.join(dir, 'edge.log'),
    env: { ...process.env, REGISTRY_EDGE_HTTP_ADDR: '127.0.0.1:0', REGISTRY_EDGE_ADMIN_ADDR: '127.0.0.1:0', REGISTRY_EDGE_UPSTREAMS: 'http://127.0.0.1:9', REGISTRY_EDGE_CACHE_DIR: path.join(dir, 'cache') },
  });
  t.after(async () => {
    await proc.stop();
    removeDir(dir);
  });
  const line = await waitFor(() => proc.logs().split('\n').find((l) => l.includes('registry-edge listening')), { what: 'the listening line' });
  assert.match(line, /^\d\d:\d\d:\d\d\.\d{3} INFO {2}registry-edge listening {2}httpAddress=127\.0\.0\.1:\d+ /);
  assert.ok(!proc.logs().includes('{"level"'), 'no JSON line');
});
