/**
 * The files a valid config points at, checked before `serve` binds anything and by
 * `config check`: the TLS pair loads and matches, cache.dir is (or can be made) a
 * writable directory, the token root bundle and the htpasswd file read and parse.
 * Each problem is one line naming the key, as the loader's are. The checks share one
 * deadline (startup.timeout), so a mount that never answers fails start-up instead of
 * hanging it.
 */
import { spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, readFile, rmdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { createSecureContext } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { Htpasswd } from '../auth/htpasswd.js';
import { TokenVerifier } from '../auth/token-verifier.js';
import { ConfigError } from './load.js';
import { describeCause, underKey } from './problem.js';
import type { Config } from './schema.js';

const CHILD = fileURLToPath(new URL('./preflight-child.js', import.meta.url));

export interface PreflightOptions {
  /**
   * true (serve): the directories made for cache.dir stay, as start-up uses them.
   * false (config check): they are made to prove they can be, then removed again.
   */
  readonly keep: boolean;
}

interface Check {
  readonly key: string;
  readonly run: () => Promise<void>;
}

/**
 * Every problem found, one line each; empty when start-up may go on.
 *
 * The checks run in a child process: a read or stat on a hung mount (or a named pipe
 * nobody writes) blocks a libuv thread in the kernel, and a process with such a thread
 * cannot even exit (exit joins the thread pool). The child is killed at the deadline;
 * this process never touches the files and stays free to report and exit 2.
 */
export async function checkFiles(config: Config, options: PreflightOptions): Promise<string[]> {
  const pending = new Set(plannedChecks(config, options).map((c) => c.key));
  const problems: string[] = [];
  const child = spawn(process.execPath, [CHILD], { stdio: ['pipe', 'pipe', 'ignore'] });
  const closed = new Promise<number | null | Error>((resolveClosed) => {
    child.once('error', resolveClosed);
    child.once('close', resolveClosed);
  });
  // A child that died before reading its input is reported below, by the keys it never answered.
  child.stdin.on('error', () => undefined);
  child.stdin.end(JSON.stringify({ config, options } satisfies ChildInput));
  createInterface({ input: child.stdout }).on('line', (line) => {
    const done = JSON.parse(line) as CheckDone;
    pending.delete(done.key);
    problems.push(...done.problems);
  });
  const seconds = config.startup.timeout;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'expired'>((resolveExpired) => {
    timer = setTimeout(() => resolveExpired('expired'), seconds * 1000);
  });
  try {
    const outcome = await Promise.race([closed, expired]);
    if (outcome instanceof Error) throw outcome;
    if (outcome === 'expired') {
      child.kill('SIGKILL');
      for (const key of pending) problems.push(`${key}: no answer from the filesystem within ${seconds}s (startup.timeout); is it a hung mount?`);
    } else {
      for (const key of pending) problems.push(`${key}: the check ended without an answer (exit ${outcome})`);
    }
  } finally {
    clearTimeout(timer);
  }
  return problems;
}

/** What the child (preflight-child.ts) is given on stdin. */
export interface ChildInput {
  readonly config: Config;
  readonly options: PreflightOptions;
}

/** One line of the child's stdout per check, as it finishes. */
export interface CheckDone {
  readonly key: string;
  readonly problems: readonly string[];
}

/** Runs every check in this process, reporting each as it finishes (the child's side). */
export async function runChecks(config: Config, options: PreflightOptions, report: (done: CheckDone) => void): Promise<void> {
  await Promise.all(
    plannedChecks(config, options).map(async (check) => {
      try {
        await check.run();
        report({ key: check.key, problems: [] });
      } catch (err) {
        report({ key: check.key, problems: err instanceof ConfigError ? err.problems : [`${check.key}: ${describeCause(err)}`] });
      }
    }),
  );
}

function plannedChecks(config: Config, options: PreflightOptions): Check[] {
  const checks: Check[] = [{ key: 'cache.dir', run: () => checkCacheDir(config.cache.dir, options.keep) }];
  const { certificate, key } = config.http.tls;
  if (certificate && key) checks.push({ key: 'http.tls.certificate', run: () => checkTlsPair(certificate, key) });
  for (const { auth: { mode, token, htpasswd }, keyPrefix: at } of config.origins) {
    if (mode === 'token') {
      checks.push({
        key: `${at}auth.token.rootcertbundle`,
        run: async () => {
          const pem = await underKey(`${at}auth.token.rootcertbundle`, `cannot read ${token.rootcertbundle}`, readFile(token.rootcertbundle, 'utf8'));
          // The verifier's own constructor is the parser start-up will use.
          const parse = async (): Promise<TokenVerifier> => new TokenVerifier({ issuer: token.issuer, service: token.service, rootCertBundlePem: pem, leewaySeconds: token.leeway });
          await underKey(`${at}auth.token.rootcertbundle`, token.rootcertbundle, parse());
        },
      });
    }
    if (mode === 'public' && htpasswd.path) {
      checks.push({
        key: `${at}auth.htpasswd.path`,
        run: async () => {
          await underKey(`${at}auth.htpasswd.path`, `cannot read ${htpasswd.path}`, readFile(htpasswd.path));
          await underKey(`${at}auth.htpasswd.path`, 'not an htpasswd file', Htpasswd.load(htpasswd.path, 0));
        },
      });
    }
  }
  return checks;
}

async function checkTlsPair(certificate: string, key: string): Promise<void> {
  const [certRead, keyRead] = await Promise.allSettled([
    underKey('http.tls.certificate', `cannot read ${certificate}`, readFile(certificate)),
    underKey('http.tls.key', `cannot read ${key}`, readFile(key)),
  ]);
  const problems: string[] = [];
  let cert: X509Certificate | undefined;
  let privateKey: KeyObject | undefined;
  if (certRead.status === 'rejected') problems.push(...(certRead.reason as ConfigError).problems);
  else {
    try {
      cert = new X509Certificate(certRead.value);
    } catch (err) {
      problems.push(`http.tls.certificate: ${certificate} is not a PEM certificate: ${describeCause(err)}`);
    }
  }
  if (keyRead.status === 'rejected') problems.push(...(keyRead.reason as ConfigError).problems);
  else {
    try {
      privateKey = createPrivateKey(keyRead.value);
    } catch (err) {
      problems.push(`http.tls.key: ${key} is not a PEM private key: ${describeCause(err)}`);
    }
  }
  if (cert && privateKey && !cert.checkPrivateKey(privateKey)) {
    problems.push(`http.tls.key: ${key} does not match the certificate in ${certificate} (http.tls.certificate)`);
  }
  if (problems.length === 0 && certRead.status === 'fulfilled' && keyRead.status === 'fulfilled') {
    // The listener's own loader has the last word (a chain OpenSSL refuses, say).
    try {
      createSecureContext({ cert: certRead.value, key: keyRead.value });
    } catch (err) {
      problems.push(`http.tls.certificate: ${certificate} with ${key} does not load: ${describeCause(err)}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
}

async function checkCacheDir(dir: string, keep: boolean): Promise<void> {
  const root = resolve(dir);
  const made: string[] = [];
  try {
    await makeDirs(root, made);
    await underKey('cache.dir', `${root} is not writable`, access(root, constants.W_OK | constants.X_OK));
  } finally {
    if (!keep) for (const d of made.reverse()) await rmdir(d).catch(() => undefined);
  }
}

/**
 * Makes `root` and its missing parents one level at a time, adding each made to `made`
 * (top first) as it goes, so a caller can undo a half-made path. Not `mkdir -p` (recursive: true): where mkdir answers ENOENT under a parent
 * that exists, as under /proc, Node 20's recursive mkdir retries forever.
 */
async function makeDirs(root: string, made: string[]): Promise<void> {
  const missing: string[] = [];
  for (let at = root; ; at = dirname(at)) {
    const found = await stat(at).catch((err: NodeJS.ErrnoException) => {
      // ENOTDIR: a parent is a file; walking up finds it and says so.
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
      throw new ConfigError([`cache.dir: cannot create ${root}: ${describeCause(err)}`]);
    });
    if (found?.isDirectory()) break;
    if (found) {
      throw new ConfigError([at === root ? `cache.dir: ${root} is not a directory` : `cache.dir: cannot create ${root}: ${at} is not a directory`]);
    }
    missing.unshift(at);
    if (dirname(at) === at) break;
  }
  for (const d of missing) {
    await underKey('cache.dir', `cannot create ${d === root ? root : `${root} (at ${d})`}`, mkdir(d));
    made.push(d);
  }
}
