// Process, port, polling and temp-dir helpers for the end-to-end tests.
// Everything here is built on Node built-ins only so the harness has no
// dependency on what src/ pulls in.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Binds 127.0.0.1:0, reads the port the kernel chose, releases it. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('freePort: unexpected address'));
        return;
      }
      const port = addr.port;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/**
 * Starts a server with `launch` on a port freePort() chose, again on another port when
 * the one chosen was taken meanwhile (freePort() races with other processes); `port`
 * given: that port only. Returns the port and what `launch` made.
 */
export async function onFreePort<T>(launch: (port: number) => Promise<T>, port?: number): Promise<{ port: number; server: T }> {
  let chosen = port ?? (await freePort());
  for (let attempt = 0; ; attempt++) {
    try {
      return { port: chosen, server: await launch(chosen) };
    } catch (err) {
      if (!/address already in use/i.test(String(err)) || port !== undefined || attempt >= 3) throw err;
      chosen = await freePort();
    }
  }
}

export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  what?: string;
}

/**
 * Polls `fn` until it returns a truthy value (which is returned) or the
 * deadline passes. Exceptions thrown by `fn` count as "not yet" but the last
 * one is quoted in the timeout error, which usually explains the failure.
 */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | false | null> | T | undefined | false | null,
  opts: WaitForOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const intervalMs = opts.intervalMs ?? 50;
  const what = opts.what ?? 'condition';
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      lastError = undefined;
    } catch (err) {
      if (err instanceof AbortPolling) throw err.cause;
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const suffix = lastError === undefined ? '' : `; last error: ${errorMessage(lastError)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${suffix}`);
    }
    await delay(intervalMs);
  }
}

/** Throw this from a waitFor callback to fail immediately instead of retrying. */
export class AbortPolling extends Error {
  constructor(cause: unknown) {
    super(errorMessage(cause), { cause });
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export interface ManagedProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal). Never rejects. */
  readonly exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after 5 s. Safe to call repeatedly or after exit. */
  stop(): Promise<void>;
  running(): boolean;
  logs(): string;
  readonly logFile: string;
}

export interface StartProcessOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  logFile: string;
  /** Grace period between SIGTERM and SIGKILL. */
  killAfterMs?: number;
}

// Safety net: if a test forgets cleanup or crashes, do not leave daemons behind.
const live = new Set<number>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of live) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

export function startProcess(cmd: string, args: string[], opts: StartProcessOptions): ManagedProcess {
  installExitHook();
  fs.mkdirSync(path.dirname(opts.logFile), { recursive: true });
  // The child writes straight into the file: no pipes for the parent to drain,
  // and the log survives the test process for post-mortems.
  const fd = fs.openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    const spawnOpts: SpawnOptions = {
      stdio: ['ignore', fd, fd],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    };
    child = spawn(cmd, args, spawnOpts);
  } finally {
    fs.closeSync(fd);
  }
  let spawnError: Error | undefined;
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.once('error', (err) => {
      spawnError = err;
      if (exitCode === undefined) exitCode = null;
      resolve(null);
    });
    child.once('exit', (code) => {
      exitCode = code;
      resolve(code);
    });
  });
  const pid = child.pid;
  if (pid === undefined) {
    // spawn failed synchronously-visible (e.g. ENOENT); 'error' fires next tick.
    throw new Error(`failed to start ${cmd}: no pid (is it installed?)`);
  }
  live.add(pid);
  void exited.then(() => live.delete(pid));
  const killAfterMs = opts.killAfterMs ?? 5_000;
  let stopping: Promise<void> | undefined;

  const proc: ManagedProcess = {
    pid,
    child,
    exited,
    logFile: opts.logFile,
    running: () => exitCode === undefined,
    logs: () => {
      try {
        return fs.readFileSync(opts.logFile, 'utf8') + (spawnError ? `\n[spawn error] ${spawnError.message}` : '');
      } catch {
        return '';
      }
    },
    stop: () => {
      stopping ??= (async () => {
        if (exitCode !== undefined) return;
        signal(pid, 'SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), killAfterMs);
        });
        const r = await Promise.race([exited, timedOut]);
        clearTimeout(timer);
        if (r === 'timeout') {
          signal(pid, 'SIGKILL');
          await exited;
        }
      })();
      return stopping;
    },
  };
  return proc;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // ESRCH: exited between the check and the kill
  }
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Kill (SIGKILL, by pid) after this long. Default 120 s. */
  timeoutMs?: number;
  input?: string | Buffer;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a command to completion and collects its output. Rejects only if it cannot be spawned. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  installExitHook();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    const pid = child.pid;
    if (pid !== undefined) live.add(pid);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (pid !== undefined) signal(pid, 'SIGKILL');
    }, opts.timeoutMs ?? 120_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      if (pid !== undefined) live.delete(pid);
      reject(new Error(`failed to run ${cmd}: ${e.message}`));
    });
    // 'close' (not 'exit') so that all output has been read.
    child.once('close', (code) => {
      clearTimeout(timer);
      if (pid !== undefined) live.delete(pid);
      resolve({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
      });
    });
  });
}

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface HttpRequestOptions {
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  /** A Buffer/string is sent with Content-Length; a stream is piped. */
  body?: Buffer | string | Readable;
  timeoutMs?: number;
}

/**
 * One HTTP request on a fresh connection (agent: false), body buffered.
 * Unlike global fetch this leaves no pooled sockets behind and never follows
 * redirects, which is what tests asserting on raw registry answers want.
 */
export function httpRequest(url: string, opts: HttpRequestOptions = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const headers: http.OutgoingHttpHeaders = { ...opts.headers };
    const body = opts.body;
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      headers['content-length'] ??= Buffer.byteLength(body);
    }
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method: opts.method ?? 'GET',
        headers,
        agent: false,
        timeout: opts.timeoutMs ?? 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('error', reject);
        res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      },
    );
    req.once('timeout', () => req.destroy(new Error(`timeout requesting ${url}`)));
    req.once('error', reject);
    if (body === undefined) req.end();
    else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else {
      body.once('error', (e) => req.destroy(e));
      body.pipe(req);
    }
  });
}

/** Resolves once the URL answers with any HTTP status (connection refused etc. are retried). */
export async function waitForHttp(url: string, timeoutMs = 15_000): Promise<number> {
  return waitFor(
    async () => {
      const r = await httpRequest(url, { timeoutMs: 2_000 });
      return r.status;
    },
    { timeoutMs, what: `HTTP answer from ${url}` },
  );
}

export function tempDir(prefix = 're-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Finds an executable on PATH (or returns an absolute path as-is if it exists). */
export function which(name: string): string | undefined {
  if (name.includes('/')) return isExecutable(name) ? name : undefined;
  for (const dir of (process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}
