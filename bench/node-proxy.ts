// The floor for a Node.js edge built on the chosen packages: TLS termination and undici
// forwarding every request to one upstream, the body streamed through, nothing cached,
// hashed or written. Nobody would run it; cold-pull-ab uses it to show what any Node.js
// process in the path costs a pull before it does any of the edge's work.
//
// With --blobs (the edge's blob directory), a blob GET or HEAD whose file is there is
// answered from it with the edge's own file pump and nothing else: no routing, auth,
// index, metrics or log. warm-ab uses that as the floor of a Node.js cache hit.
//
//   node dist/bench/node-proxy.js --upstream http://127.0.0.1:PORT --cert FILE --key FILE --port N [--blobs DIR]
import * as fs from 'node:fs';
import * as https from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import * as path from 'node:path';
import { pipeline } from 'node:stream';
import { parseArgs } from 'node:util';
import { Pool, type Dispatcher } from 'undici';
import { pumpFile } from '../src/cache/pump.js';

const BLOB_PATH = /^\/v2\/.+\/blobs\/(sha256):([0-9a-f]{64})$/;
/** The edge's default: event-loop reads while each takes at most 1 ms. */
const SYNC_READS = { maxNs: 1e6, onSlow: () => undefined };

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
    blobs: { type: 'string' },
  },
});
if (values.upstream === undefined || values.cert === undefined || values.key === undefined || values.port === undefined) {
  throw new Error('--upstream, --cert, --key and --port are required');
}

/** True when the request was a blob this directory holds (and it is answered). */
function servedFromFile(dir: string, req: IncomingMessage, res: ServerResponse): boolean {
  const m = BLOB_PATH.exec(req.url ?? '');
  if (!m || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
  const [, algorithm = '', hex = ''] = m;
  let fd: number;
  try {
    fd = fs.openSync(path.join(dir, algorithm, hex.slice(0, 2), hex), 'r');
  } catch {
    return false;
  }
  const size = fs.fstatSync(fd).size;
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size, 'docker-content-digest': `${algorithm}:${hex}` });
  if (req.method === 'HEAD') {
    fs.closeSync(fd);
    res.end();
  } else {
    pumpFile(fd, 0, size, res, () => fs.closeSync(fd), SYNC_READS);
  }
  return true;
}

const blobs = values.blobs;
const pool = new Pool(values.upstream, { connections: 16 });
const server = https.createServer({ cert: fs.readFileSync(values.cert), key: fs.readFileSync(values.key) }, (req, res) => {
  if (blobs !== undefined && servedFromFile(blobs, req, res)) return;
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
