// keepServing: an error nothing caught is logged (error level, with its stack) and
// counted, and the process goes on answering. Run in a child process of its own
// (test/runtime/uncaught-child.ts), because the point is that the process survives.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { logLines, parseMetric } from '../helpers/edge.js';
import { httpRequest, removeDir, startProcess, tempDir, waitFor } from '../helpers/proc.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'uncaught-child.js');
const work = tempDir('re-uncaught-');
after(() => removeDir(work));

interface Line {
  msg?: string;
  level?: number;
  kind?: string;
  port?: number;
  err?: { message?: string; stack?: string };
}

test('errors thrown from a timer, a request handler and an unhandled rejection are logged, counted and survived', async () => {
  const proc = startProcess(process.execPath, [CHILD], { logFile: path.join(work, 'child.log') });
  try {
    const lines = (): Line[] => logLines<Line>(proc.logs());
    const uncaught = (message: string): Line | undefined =>
      lines().find((l) => l.msg?.startsWith('uncaught error') && l.err?.message === message);
    const port = await waitFor(
      () => {
        if (!proc.running()) throw new Error(`the child exited:\n${proc.logs()}`);
        return lines().find((l) => l.msg === 'listening')?.port;
      },
      { what: 'the child to listen' },
    );
    const base = `http://127.0.0.1:${port}`;
    await waitFor(() => uncaught('thrown from a timer') && uncaught('a rejection nobody handles'), { what: 'the start-up errors to be logged' });
    const thrown = await httpRequest(`${base}/throw`);
    assert.equal(thrown.status, 200);
    await waitFor(() => uncaught('thrown by a request handler'), { what: 'the handler error to be logged' });

    for (const [message, kind] of [
      ['thrown from a timer', 'exception'],
      ['thrown by a request handler', 'exception'],
      ['a rejection nobody handles', 'rejection'],
    ] as const) {
      const line = uncaught(message);
      assert.equal(line?.level, 50, `${message}: error level`);
      assert.equal(line?.kind, kind);
      assert.match(line?.err?.stack ?? '', /uncaught-child\.js:\d+/, `${message}: the stack is in the line`);
    }
    // Still serving, and the counter says what happened.
    const res = await httpRequest(`${base}/metrics`);
    assert.equal(res.status, 200);
    const text = res.body.toString('utf8');
    assert.equal(parseMetric(text, 'registry_edge_uncaught_errors_total', { kind: 'exception' }), 2);
    assert.equal(parseMetric(text, 'registry_edge_uncaught_errors_total', { kind: 'rejection' }), 1);
    assert.equal(proc.running(), true);
  } finally {
    await proc.stop();
  }
});
