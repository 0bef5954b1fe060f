/**
 * The primary of a host's workers (workers: N), as nginx's master process: it starts the
 * workers (the first one alone, so a start-up failure is one line, then the rest), starts
 * another when one dies, passes SIGHUP and SIGTERM on, answers the workers' coordinator
 * calls (host-state.ts) and relays the shared cache directory's events between the
 * owner (worker 1) and the others. It serves admin.addr itself: /metrics summed over the
 * workers (prom-client's AggregatorRegistry), everything else from worker 1's admin
 * listener. It serves no client: the workers share the client listeners (node:cluster).
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { AggregatorRegistry, type PrometheusContentType } from 'prom-client';
import { underKey } from '../config/problem.js';
import type { Config } from '../config/schema.js';
import { closeServer, listen, splitAddr } from '../http/listen.js';
import type { Logger } from '../log/logger.js';
import { HostState } from './host-state.js';
import { WORKER_ID_ENV, WORKER_SECRET_ENV, isWorkerMessage, type PrimaryMessage, type WorkerMessage, type WorkerReady } from './messages.js';

/** A worker that dies right after it started is not restarted in a tight loop. */
const RESTART_DELAY_MS = 1_000;
/** Past a worker's own shutdown deadline and abort grace (edge.ts), how long the primary waits before it kills what is left. */
const STOP_MARGIN_MS = 4_000;
/** The worker that owns the cache directory (budget, eviction, index snapshot) and the admin routes. */
const OWNER = 1;

/**
 * `auto`: one worker per core this process may use. In a container with a CPU limit
 * (Kubernetes `resources.limits.cpu`) that is the cgroup's quota, not the node's cores,
 * which os.availableParallelism() reports on Node 20.
 */
export function workerCount(config: Config, cpuMax = readCpuMax()): number {
  if (config.workers !== 'auto') return config.workers;
  const cores = availableParallelism();
  const quota = cpuQuota(cpuMax);
  return quota === undefined ? cores : Math.max(1, Math.min(cores, quota));
}

/** Cores granted by a cgroup v2 `cpu.max` line (`<quota> <period>` or `max <period>`), rounded up; undefined: no limit. */
export function cpuQuota(cpuMax: string | undefined): number | undefined {
  const [quota, period] = (cpuMax ?? '').trim().split(/\s+/);
  const q = Number(quota);
  const p = Number(period);
  if (!quota || quota === 'max' || !Number.isFinite(q) || !Number.isFinite(p) || q <= 0 || p <= 0) return undefined;
  return Math.ceil(q / p);
}

function readCpuMax(): string | undefined {
  try {
    return readFileSync('/sys/fs/cgroup/cpu.max', 'utf8');
  } catch {
    return undefined;
  }
}

interface Slot {
  readonly worker: Worker;
  ready?: WorkerReady;
}

export interface RunningPrimary {
  /** Resolves once every worker has exited after SIGTERM/SIGINT and the admin listener is closed. */
  readonly stopped: Promise<void>;
}

export async function runPrimary(config: Config, count: number, log: Logger): Promise<RunningPrimary> {
  // Fills a crash left behind, of any worker of an earlier run; each worker then keeps its own tmp/<n>.
  await underKey('cache.dir', 'cannot prepare its tmp/', rm(join(resolve(config.cache.dir), 'tmp'), { recursive: true, force: true }));
  const secret = randomBytes(32).toString('hex');
  const state = new HostState();
  const metrics = new AggregatorRegistry<PrometheusContentType>();
  const slots = new Map<number, Slot>();
  let stopping = false;
  let started = false;
  let onReady: (() => void) | undefined;
  let onEarlyExit: ((code: number) => void) | undefined;

  const send = (slot: Slot | undefined, message: PrimaryMessage): void => {
    if (slot?.worker.isConnected()) slot.worker.send(message);
  };
  const onMessage = (id: number, message: WorkerMessage): void => {
    const slot = slots.get(id);
    switch (message.type) {
      case 'registry-edge:call':
        send(slot, { type: 'registry-edge:answer', id: message.id, answer: state.answer(id, message.call) });
        return;
      case 'registry-edge:directory':
        if (id !== OWNER) send(slots.get(OWNER), message);
        else for (const [other, s] of slots) if (other !== OWNER) send(s, message);
        return;
      case 'registry-edge:ready':
        if (slot) slot.ready = message.ready;
        onReady?.();
        return;
    }
  };
  const fork = (id: number): void => {
    const worker = cluster.fork({ [WORKER_ID_ENV]: String(id), [WORKER_SECRET_ENV]: secret });
    const slot: Slot = { worker };
    slots.set(id, slot);
    worker.on('message', (message: unknown) => {
      if (isWorkerMessage(message)) onMessage(id, message);
    });
    worker.on('exit', (code, signal) => {
      if (slots.get(id) !== slot) return;
      slots.delete(id);
      state.forget(id);
      if (stopping) {
        if (slots.size === 0) allExited();
        return;
      }
      if (!started) {
        onEarlyExit?.(code);
        return;
      }
      log.error({ worker: id, pid: worker.process.pid, code, signal }, 'worker exited; starting another');
      setTimeout(() => {
        if (!stopping) fork(id);
      }, RESTART_DELAY_MS).unref();
    });
  };
  /** Forks `ids` and resolves once each says it listens; rejects with the exit code of one that ends first. */
  const start = (ids: readonly number[]): Promise<void> =>
    new Promise((resolvePromise, reject) => {
      onReady = () => {
        if (ids.every((id) => slots.get(id)?.ready)) resolvePromise();
      };
      onEarlyExit = (code) => reject(new WorkerStartFailed(code));
      for (const id of ids) fork(id);
    });

  let allExited: () => void = () => undefined;
  const exited = new Promise<void>((resolvePromise) => {
    allExited = resolvePromise;
  });
  const stopAll = (signal: NodeJS.Signals): void => {
    stopping = true;
    if (slots.size === 0) allExited();
    for (const slot of slots.values()) slot.worker.process.kill(signal);
    const killAfter = Math.round(config.http.shutdown_timeout * 1000) + STOP_MARGIN_MS;
    setTimeout(() => {
      for (const slot of slots.values()) slot.worker.process.kill('SIGKILL');
    }, killAfter).unref();
  };

  try {
    await start([OWNER]);
    await start(Array.from({ length: count - 1 }, (_, i) => i + 2));
  } catch (err) {
    stopAll('SIGTERM');
    await exited;
    throw err;
  }
  started = true;
  onReady = undefined;

  const admin = createServer((req, res) => serveAdmin(req, res, metrics, slots.get(OWNER)?.ready?.adminAddress));
  const adminAddress = await underKey('admin.addr', `cannot listen on ${config.admin.addr}`, listen(admin, config.admin.addr));
  admin.on('error', (err) => log.error({ err, key: 'admin.addr' }, 'admin listener error'));
  const first = slots.get(OWNER)?.ready;
  log.info(
    { httpAddress: first?.httpAddress, plainAddress: first?.plainAddress, adminAddress, tls: first?.tls, workers: count, pids: [...slots.values()].map((s) => s.worker.process.pid), cacheDir: resolve(config.cache.dir) },
    'registry-edge listening',
  );

  let stopSignal: NodeJS.Signals | undefined;
  const stopped = new Promise<void>((resolvePromise) => {
    const stop = (signal: NodeJS.Signals): void => {
      if (stopSignal) return;
      stopSignal = signal;
      log.info({ signal, workers: slots.size }, 'shutting down: stopping the workers');
      stopAll(signal);
      void exited.then(() => closeServer(admin, 0)).then(resolvePromise);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  // As nginx's master: each worker re-reads the file and applies what can change without a restart.
  process.on('SIGHUP', () => {
    for (const slot of slots.values()) slot.worker.process.kill('SIGHUP');
  });
  return { stopped };
}

export class WorkerStartFailed extends Error {
  readonly code: number;
  constructor(code: number) {
    super(`a worker exited with code ${code} while starting`);
    this.code = code;
  }
}

function serveAdmin(req: IncomingMessage, res: ServerResponse, metrics: AggregatorRegistry<PrometheusContentType>, ownerAdmin: string | undefined): void {
  if ((req.url ?? '').split('?')[0] === '/metrics') {
    metrics.clusterMetrics().then(
      (text: string) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
      (err: Error) => res.writeHead(503, { 'content-type': 'text/plain' }).end(`metrics of the workers not collected: ${err.message}\n`),
    );
    return;
  }
  if (!ownerAdmin) {
    res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' }).end('worker 1 is starting\n');
    return;
  }
  forward(req, res, ownerAdmin);
}

/** The owner worker's admin listener answers (status page, /readyz, /notify, /prefetch's stream). */
function forward(req: IncomingMessage, res: ServerResponse, addr: string): void {
  const { host, port } = splitAddr(addr);
  const upstream = request({ host, port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  upstream.on('error', () => {
    if (res.headersSent) res.destroy();
    else res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' }).end('worker 1 did not answer\n');
  });
  // A client that goes (a prefetch it no longer watches) lets the worker know.
  res.on('close', () => upstream.destroy());
  req.pipe(upstream);
}

