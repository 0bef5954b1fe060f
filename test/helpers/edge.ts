// Starts the real edge through its CLI contract (`node bin/registry-edge.js serve`),
// on port 0, and reads back the addresses it bound from its first log lines.
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpRequest, startProcess, waitFor, type ManagedProcess } from './proc.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const EDGE_BIN = path.join(ROOT, 'bin/registry-edge.js');

export interface EdgeOptions {
  readonly workDir: string;
  /** Sets REGISTRY_EDGE_UPSTREAMS; leave out to take the upstreams from the config file. */
  readonly upstreams?: string[];
  /** YAML text of the config file (defaults only when omitted). */
  readonly configYaml?: string;
  /** Extra REGISTRY_EDGE_* variables. */
  readonly env?: Record<string, string>;
  readonly cacheDir?: string;
  /** Node.js flags before the script (--cpu-prof, say). */
  readonly nodeArgs?: string[];
  /** A command the edge runs under, which must exec it (so `proc.pid` is the edge's): `['prlimit', '--nofile=256:256', '--']`. */
  readonly wrapper?: string[];
}

export interface Edge {
  /** http:// or https:// (when the config turns TLS on) plus host. */
  readonly url: string;
  readonly configFile: string;
  /** host:port, as image references write it. */
  readonly host: string;
  readonly adminUrl: string;
  readonly cacheDir: string;
  readonly proc: ManagedProcess;
  /** Value of one sample of /metrics (0 when absent). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

interface ListeningLine {
  msg?: string;
  tls?: boolean;
  httpAddress?: string;
  adminAddress?: string;
}

/** The edge's JSON log lines (pino), as the type the caller expects; a line still being written is skipped. */
export function logLines<T extends { msg?: string }>(logs: string): T[] {
  const out: T[] = [];
  for (const line of logs.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as T);
    } catch {
      // a partly written line: read again on the next poll
    }
  }
  return out;
}

export function parseMetric(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => have.includes(`${k}="${v}"`))) total += Number(m[3]);
  }
  return total;
}

export async function startEdge(opts: EdgeOptions): Promise<Edge> {
  const configFile = path.join(opts.workDir, 'edge.yaml');
  writeFileSync(configFile, opts.configYaml ?? 'log:\n  level: info\n');
  const cacheDir = opts.cacheDir ?? path.join(opts.workDir, 'cache');
  const command = [...(opts.wrapper ?? []), process.execPath, ...(opts.nodeArgs ?? []), EDGE_BIN, 'serve', '--config', configFile];
  const proc = startProcess(command[0] as string, command.slice(1), {
    logFile: path.join(opts.workDir, `edge-${Date.now()}.log`),
    env: {
      ...process.env,
      REGISTRY_EDGE_HTTP_ADDR: '127.0.0.1:0',
      REGISTRY_EDGE_ADMIN_ADDR: '127.0.0.1:0',
      ...(opts.upstreams ? { REGISTRY_EDGE_UPSTREAMS: opts.upstreams.join(',') } : {}),
      REGISTRY_EDGE_CACHE_DIR: cacheDir,
      ...opts.env,
    },
  });
  // An edge that never says it listens is stopped here: the caller has no handle on it yet.
  const line = await waitFor(
    () => {
      if (!proc.running()) throw new Error(`edge exited:\n${proc.logs()}`);
      return logLines<ListeningLine>(proc.logs()).find((l) => l.msg === 'registry-edge listening');
    },
    { what: 'the edge to listen' },
  ).catch(async (err: unknown) => {
    await proc.stop();
    throw err;
  });
  const host = line.httpAddress ?? '';
  const adminUrl = `http://${line.adminAddress ?? ''}`;
  return {
    url: `${line.tls ? 'https' : 'http'}://${host}`,
    configFile,
    host,
    adminUrl,
    cacheDir,
    proc,
    async metric(name, labels) {
      const res = await httpRequest(`${adminUrl}/metrics`);
      return parseMetric(res.body.toString('utf8'), name, labels);
    },
    stop: () => proc.stop(),
  };
}
