// The process test/runtime/uncaught.test.ts starts: a small HTTP server with the serving
// process's uncaught-error handlers installed, as `serve` installs them. It throws from a
// timer and leaves a rejection unhandled at start, and GET /throw throws from inside the
// request handler after answering. GET /metrics answers the counter's exposition.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../../src/log/logger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { keepServing } from '../../src/runtime/uncaught.js';

const log = createLogger({ level: 'info', sync: true });
const metrics = new Metrics();
keepServing(log, (kind) => metrics.uncaughtErrors.inc({ kind }));

const server = createServer((req, res) => {
  if (req.url === '/throw') {
    res.end('answered, then threw\n');
    throw new Error('thrown by a request handler');
  }
  void metrics.registry.metrics().then((text) => res.end(text));
});
server.listen(0, '127.0.0.1', () => {
  log.info({ port: (server.address() as AddressInfo).port }, 'listening');
  setTimeout(() => {
    throw new Error('thrown from a timer');
  }, 0);
  void Promise.reject(new Error('a rejection nobody handles'));
});
