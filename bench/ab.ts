// What the interleaved A/B measurements (warm-ab, cold-pull-ab) share: their settings from
// the environment, a median, and a work directory plus the servers started in it, all
// removed on the way out, also on failure. Each runs as its own command and from
// `npm run bench` (bench/run.ts), which reports its medians beside the sequential rows.
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePort, removeDir, startProcess, tempDir, waitFor } from '../test/helpers/proc.js';

export const MiB = 1024 * 1024;

/** Rounds to run (AB_ROUNDS). */
export function abRounds(fallback: number): number {
  return Number(process.env['AB_ROUNDS'] ?? fallback);
}

/** Node.js flags for the edge under test (AB_EDGE_NODE_ARGS, space-separated), e.g. --cpu-prof. */
export function edgeNodeArgs(): string[] {
  return (process.env['AB_EDGE_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
}

/** The middle value (the upper one of an even count); 0 for none. */
export function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
}

/** True when the module at `url` is the script node was started with. */
export function isMain(url: string): boolean {
  const script = process.argv[1];
  return script !== undefined && pathToFileURL(path.resolve(script)).href === url;
}

export type Stops = Array<() => Promise<void>>;

/**
 * Runs `body` with a fresh work directory and a list it pushes stop functions to; stops
 * everything (last started first) and removes the directory when it ends, either way.
 */
export async function withWork<T>(prefix: string, body: (work: string, stops: Stops) => Promise<T>): Promise<T> {
  const work = tempDir(prefix);
  const stops: Stops = [];
  try {
    return await body(work, stops);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    removeDir(work);
  }
}

/** A command-line entry: runs `main`, printing a failure and setting a failing exit code. */
export function runCli(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}

const NODE_PROXY_JS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'node-proxy.js');

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface NodeProxy {
  readonly host: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** bench/node-proxy.ts over TLS on a free port, its log in `dir`; `blobs` makes it answer blobs from that directory. */
export async function startNodeProxy(o: { upstream: string; cert: string; key: string; dir: string; blobs?: string }): Promise<NodeProxy> {
  const port = await freePort();
  const args = [NODE_PROXY_JS, '--upstream', o.upstream, '--cert', o.cert, '--key', o.key, '--port', String(port), ...(o.blobs ? ['--blobs', o.blobs] : [])];
  const p = startProcess(process.execPath, args, { logFile: path.join(o.dir, 'node-proxy.log') });
  await waitFor(() => listening(port), { what: `node-proxy on port ${port}` }).catch(async (err: unknown) => {
    await p.stop();
    throw err;
  });
  return { host: `127.0.0.1:${port}`, pid: p.pid, stop: () => p.stop() };
}
