// The floor for a Node.js edge built on the chosen packages: TLS termination and undici
// forwarding every request to one upstream, the body streamed through, nothing cached,
// hashed or written. Nobody would run it; cold-pull-ab uses it to show what any Node.js
// process in the path costs a pull before it does any of the edge's work.
//
//   node dist/bench/node-proxy.js --upstream http://127.0.0.1:PORT --cert FILE --key FILE --port N
import * as fs from 'node:fs';
import * as https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { pipeline } from 'node:stream';
import { parseArgs } from 'node:util';
import { Pool, type Dispatcher } from 'undici';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer', 'host']);

function endToEnd(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name.toLowerCase())) out[name] = value;
  }
  return out;
}

const { values } = parseArgs({
  options: {
    upstream: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    port: { type: 'string' },
  },
});
if (values.upstream === undefined || values.cert === undefined || values.key === undefined || values.port === undefined) {
  throw new Error('--upstream, --cert, --key and --port are required');
}
const pool = new Pool(values.upstream, { connections: 16 });
const server = https.createServer({ cert: fs.readFileSync(values.cert), key: fs.readFileSync(values.key) }, (req, res) => {
  const method = (req.method ?? 'GET') as Dispatcher.HttpMethod;
  const hasBody = method !== 'GET' && method !== 'HEAD';
  pool.request({ path: req.url ?? '/', method, headers: endToEnd(req.headers), ...(hasBody ? { body: req } : {}) }).then(
    ({ statusCode, headers, body }) => {
      res.writeHead(statusCode, endToEnd(headers));
      pipeline(body, res, () => undefined);
    },
    (err: unknown) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(err instanceof Error ? err.message : String(err));
    },
  );
});
server.listen(Number(values.port), '127.0.0.1');
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.once(sig, () => {
    server.close();
    server.closeAllConnections();
    void pool.close().finally(() => process.exit(0));
  });
}
