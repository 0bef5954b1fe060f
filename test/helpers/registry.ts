// Runs a real CNCF distribution registry (Debian's docker-registry, 2.8) as
// the "central registry" the edge sits in front of.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  AbortPolling,
  httpRequest,
  onFreePort,
  removeDir,
  startProcess,
  tempDir,
  waitFor,
  which,
  type ManagedProcess,
} from './proc.js';

export const REGISTRY_INSTALL_HINT = 'apt-get install -y docker-registry';

export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue | undefined };
export type YamlObject = { [key: string]: YamlValue | undefined };

export interface RegistryOptions {
  /** Storage root directory; a temp dir is created (and removed by dispose()) when omitted. */
  rootDir?: string;
  port?: number;
  /**
   * Merged into the generated config. Plain objects are merged recursively so
   * e.g. `{http: {headers: ...}}` keeps the generated addr; `null` deletes a key;
   * new top-level sections (auth, proxy, notifications) are simply added.
   */
  config?: Record<string, unknown>;
  /** Registry log level (default warn). */
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  readyTimeoutMs?: number;
  /**
   * Sends the registry's notifications (notifications.endpoints) to `url` with
   * `Authorization: Bearer <token>`, retried every `backoff` (default 200ms) after a failure.
   */
  notify?: { url: string; token: string; backoff?: string };
}

export interface Registry {
  readonly url: string;
  readonly port: number;
  /** host:port, the form used in image references. */
  readonly host: string;
  readonly rootDir: string;
  /** Holds config.yml and registry.log. */
  readonly workDir: string;
  readonly configFile: string;
  /** Current process; replaced by restart(). */
  readonly proc: ManagedProcess;
  logs(): string;
  stop(): Promise<void>;
  /** Stops, then starts again on the same port and storage. */
  restart(): Promise<void>;
  /** stop() plus removal of every directory this helper created. */
  dispose(): Promise<void>;
}

export function registryBinary(): string {
  const override = process.env['DOCKER_REGISTRY_BIN'];
  const found = (override && which(override)) || which('docker-registry') || which('/usr/bin/docker-registry');
  if (!found) {
    throw new Error(`docker-registry binary not found (set DOCKER_REGISTRY_BIN or install it):\n${REGISTRY_INSTALL_HINT}`);
  }
  return found;
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  const bin = registryBinary();
  const workDir = tempDir('re-registry-');
  const ownsRoot = opts.rootDir === undefined;
  const rootDir = opts.rootDir ?? path.join(workDir, 'storage');
  fs.mkdirSync(rootDir, { recursive: true });
  const configFile = path.join(workDir, 'config.yml');
  const logFile = path.join(workDir, 'registry.log');
  const readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;

  const writeConfig = (port: number): void => {
    const base: YamlObject = {
      version: '0.1',
      log: { level: opts.logLevel ?? 'warn', accesslog: { disabled: true } },
      storage: {
        filesystem: { rootdirectory: rootDir },
        delete: { enabled: true },
        // The purger would otherwise walk storage in the background at start-up.
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: { addr: `127.0.0.1:${port}`, secret: crypto.randomBytes(16).toString('hex') },
    };
    if (opts.notify) base['notifications'] = notificationsTo(opts.notify);
    const merged = deepMerge(base, toYamlObject(opts.config ?? {}, 'config'));
    fs.writeFileSync(configFile, toYaml(merged));
  };

  const launch = async (port: number): Promise<ManagedProcess> => {
    writeConfig(port);
    const proc = startProcess(bin, ['serve', configFile], { logFile });
    try {
      await waitFor(
        async () => {
          if (!proc.running()) throw new AbortPolling(new Error(`docker-registry exited early:\n${proc.logs()}`));
          const r = await httpRequest(`http://127.0.0.1:${port}/v2/`, { timeoutMs: 2_000 });
          return r.status > 0;
        },
        { timeoutMs: readyTimeoutMs, what: `docker-registry on port ${port}` },
      );
    } catch (err) {
      await proc.stop();
      throw err;
    }
    return proc;
  };

  const started = await onFreePort(launch, opts.port).catch((err: unknown) => {
    removeDir(workDir);
    throw err;
  });
  const { port } = started;
  let proc = started.server;

  const reg: Registry = {
    url: `http://127.0.0.1:${port}`,
    port,
    host: `127.0.0.1:${port}`,
    rootDir,
    workDir,
    configFile,
    get proc() {
      return proc;
    },
    logs: () => proc.logs(),
    stop: () => proc.stop(),
    restart: async () => {
      await proc.stop();
      proc = await launch(port);
    },
    dispose: async () => {
      await proc.stop();
      removeDir(workDir);
      if (!ownsRoot) return;
      removeDir(rootDir);
    },
  };
  return reg;
}

/** registry:2's notifications section with one endpoint, as an operator writes it for the edge. */
function notificationsTo(notify: NonNullable<RegistryOptions['notify']>): YamlObject {
  const endpoint: YamlObject = {
    name: 'edge',
    url: notify.url,
    headers: { Authorization: [`Bearer ${notify.token}`] },
    timeout: '2s',
    threshold: 3,
    backoff: notify.backoff ?? '200ms',
    // As the README tells operators: the edge acts on pushes only.
    ignore: { actions: ['pull', 'mount', 'delete'] },
  };
  return { endpoints: [endpoint] };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}

function toYamlValue(v: unknown, where: string): YamlValue | undefined {
  if (v === undefined) return undefined;
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`${where}: non-finite number`);
    return v;
  }
  if (Array.isArray(v)) return v.map((x, i) => toYamlValue(x, `${where}[${i}]`) ?? null);
  if (isPlainObject(v)) return toYamlObject(v, where);
  throw new Error(`${where}: unsupported value of type ${typeof v}`);
}

function toYamlObject(v: Record<string, unknown>, where: string): YamlObject {
  const out: YamlObject = {};
  for (const [k, x] of Object.entries(v)) out[k] = toYamlValue(x, `${where}.${k}`);
  return out;
}

export function deepMerge(base: YamlObject, over: YamlObject): YamlObject {
  const out: YamlObject = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    if (v === null) {
      delete out[k];
      continue;
    }
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? deepMerge(b as YamlObject, v as YamlObject) : v;
  }
  return out;
}

/**
 * Minimal block-style YAML emitter. Strings are always double-quoted with
 * JSON escaping (a JSON string literal is a valid YAML double-quoted scalar),
 * so values like "0.1", "yes" or "127.0.0.1:5000" never change type.
 */
export function toYaml(value: YamlValue, indent = 0): string {
  const pad = ' '.repeat(indent);
  if (Array.isArray(value)) {
    if (value.length === 0) return `${pad}[]\n`;
    return value
      .map((item) => {
        if (isComposite(item)) {
          // "- " followed by the nested block, first line joined onto the dash.
          const nested = toYaml(item, indent + 2);
          return `${pad}- ${nested.slice(indent + 2)}`;
        }
        return `${pad}- ${scalar(item)}\n`;
      })
      .join('');
  }
  if (isPlainObject(value)) {
    const entries = Object.entries(value as YamlObject).filter((e): e is [string, YamlValue] => e[1] !== undefined);
    if (entries.length === 0) return `${pad}{}\n`;
    return entries
      .map(([k, v]) => {
        const key = /^[A-Za-z_][A-Za-z0-9_.-]*$/.test(k) ? k : JSON.stringify(k);
        if (isComposite(v)) return `${pad}${key}:\n${toYaml(v, indent + 2)}`;
        return `${pad}${key}: ${scalar(v)}\n`;
      })
      .join('');
  }
  return `${pad}${scalar(value)}\n`;
}

function isComposite(v: YamlValue): boolean {
  if (Array.isArray(v)) return v.length > 0;
  return isPlainObject(v) && Object.values(v).some((x) => x !== undefined);
}

function scalar(v: YamlValue): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return '[]';
  return '{}';
}
