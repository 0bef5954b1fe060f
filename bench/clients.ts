// Client processes for the GET measurements: node clients (bench/client.ts) started at an
// agreed instant, or curl processes writing to /dev/null.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../test/helpers/proc.js';
import type { ClientReport, StreamResult } from './client.js';

const CLIENT_JS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'client.js');

export interface ClientRun {
  streams: StreamResult[];
  startedAt: number;
  endedAt: number;
  /** CPU seconds the client processes used (node clients only). */
  cpuSeconds?: number;
}

/** `streams` GETs of `url` from `procs` node client processes, all starting at one instant. */
export async function nodeClients(url: string, streams: number, procs: number, ca: string | undefined, hash: boolean): Promise<ClientRun> {
  const n = Math.max(1, Math.min(procs, streams));
  const startAt = Date.now() + 500;
  const jobs = Array.from({ length: n }, (_v, i) => {
    const mine = Math.floor(streams / n) + (i < streams % n ? 1 : 0);
    const args = [CLIENT_JS, '--url', url, '--streams', String(mine), '--start-at', String(startAt)];
    if (ca !== undefined) args.push('--ca', ca);
    if (hash) args.push('--hash');
    return run(process.execPath, args, { timeoutMs: 900_000 });
  });
  const out = await Promise.all(jobs);
  const all: StreamResult[] = [];
  let startedAt = Number.POSITIVE_INFINITY;
  let cpuSeconds = 0;
  for (const r of out) {
    if (r.code !== 0) throw new Error(`client failed (code ${r.code}): ${r.stderr.trim()}`);
    const report = JSON.parse(r.stdout) as ClientReport;
    startedAt = Math.min(startedAt, report.startedAt);
    cpuSeconds += report.cpuSeconds;
    all.push(...report.streams);
  }
  return { streams: all, startedAt, endedAt: Math.max(...all.map((x) => x.endedAt)), cpuSeconds };
}

/**
 * `streams` curl processes started together, each writing the body to /dev/null. A stream
 * is timed by curl itself (%{time_total}: connect, TLS, request, body), so the process
 * start-up is not counted; the run spans the earliest start to the latest end.
 */
export async function curlClients(url: string, streams: number, ca: string | undefined): Promise<ClientRun> {
  const starts: number[] = [];
  const one = (): Promise<StreamResult> =>
    new Promise((resolve) => {
      const args = ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}'];
      if (ca !== undefined) args.push('--cacert', ca);
      args.push(url);
      const child = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      const timer = setTimeout(() => {
        if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      }, 900_000);
      child.once('error', (e) => {
        clearTimeout(timer);
        resolve({ status: 0, bytes: 0, digest: '', endedAt: Date.now(), firstByteAt: 0, complete: false, error: e.message });
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        const [status, size, total] = out.trim().split(' ');
        const endedAt = Date.now();
        starts.push(endedAt - Number(total ?? 0) * 1000);
        const res: StreamResult = {
          status: Number(status ?? 0),
          bytes: Number(size ?? 0),
          digest: '',
          endedAt,
          firstByteAt: 0,
          complete: code === 0,
        };
        if (code !== 0) res.error = `curl exit ${code}: ${err.trim()}`;
        resolve(res);
      });
    });
  const spawnedAt = Date.now();
  const all = await Promise.all(Array.from({ length: streams }, one));
  const startedAt = Math.max(spawnedAt, Math.min(...starts.filter((x) => Number.isFinite(x))));
  return { streams: all, startedAt, endedAt: Math.max(...all.map((x) => x.endedAt)) };
}
