// A blob GET client run as its own process so its CPU is not the orchestrator's:
// N streams, each on its own connection, started together (optionally at an agreed
// wall-clock instant so several client processes start as one herd), counting
// bytes and, with --hash, computing each body's sha256.
//
//   node dist/bench/client.js --url URL --streams 8 [--ca FILE] [--hash] [--start-at EPOCH_MS]
//
// Prints one JSON line (ClientReport) on stdout.
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { parseArgs } from 'node:util';

export interface StreamResult {
  status: number;
  bytes: number;
  /** sha256:<hex> of the body with --hash, else ''. */
  digest: string;
  /** Epoch ms when the response ended (or failed). */
  endedAt: number;
  /** Epoch ms of the first body byte (0 if none). */
  firstByteAt: number;
  complete: boolean;
  error?: string;
}

export interface ClientReport {
  /** Epoch ms when the requests were sent. */
  startedAt: number;
  streams: StreamResult[];
  /** CPU seconds (user + system) this client process used, start-up included. */
  cpuSeconds: number;
}

function getOnce(url: URL, ca: Buffer | undefined, hash: boolean): Promise<StreamResult> {
  return new Promise((resolve) => {
    const result: StreamResult = { status: 0, bytes: 0, digest: '', endedAt: 0, firstByteAt: 0, complete: false };
    const h: Hash | undefined = hash ? createHash('sha256') : undefined;
    const done = (error?: string): void => {
      if (result.endedAt !== 0) return;
      result.endedAt = Date.now();
      if (h !== undefined) result.digest = `sha256:${h.digest('hex')}`;
      if (error !== undefined) result.error = error;
      resolve(result);
    };
    const onResponse = (res: http.IncomingMessage): void => {
      result.status = res.statusCode ?? 0;
      res.on('data', (chunk: Buffer) => {
        if (result.bytes === 0) result.firstByteAt = Date.now();
        result.bytes += chunk.length;
        if (h !== undefined) h.update(chunk);
      });
      res.once('end', () => {
        result.complete = res.complete;
        done();
      });
      res.once('error', (err) => done(err.message));
    };
    const req =
      url.protocol === 'https:'
        ? https.get(url, { agent: false, ca }, onResponse)
        : http.get(url, { agent: false }, onResponse);
    req.once('error', (err) => done(err.message));
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      streams: { type: 'string', default: '1' },
      ca: { type: 'string' },
      hash: { type: 'boolean', default: false },
      'start-at': { type: 'string' },
    },
  });
  if (values.url === undefined) throw new Error('--url is required');
  const url = new URL(values.url);
  const streams = Number(values.streams);
  const ca = values.ca === undefined ? undefined : fs.readFileSync(values.ca);
  const startAt = values['start-at'] === undefined ? 0 : Number(values['start-at']);
  const wait = startAt - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  const startedAt = Date.now();
  const results = await Promise.all(Array.from({ length: streams }, () => getOnce(url, ca, values.hash)));
  const cpu = process.cpuUsage();
  const report: ClientReport = { startedAt, streams: results, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`client: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
