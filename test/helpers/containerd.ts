// A private containerd daemon (Debian's containerd 1.6) for end-to-end tests,
// driven with `ctr`: its own root/state/socket under a temp dir, no CRI
// plugin, `native` snapshotter for unpacking (works as root in a container
// without overlayfs). Pulls go through a hosts directory (`--hosts-dir`)
// whose hosts.toml makes a mirror (e.g. the edge) the host for pulls.
//
// Behaviour of containerd 1.6 worth knowing when asserting on a mirror:
// - requests to a [host."..."] mirror carry `?ns=<registry host>` (the host
//   named in the image reference) on every /v2/<name>/... URL;
// - if a mirror fails (connection refused, 5xx, 404) containerd silently
//   tries the next host and finally `server`, so a pull that "works" does not
//   prove the mirror served it: make the mirror the `server` (writeHostsToml
//   with no mirrors), or check what the mirror saw;
// - 1.6.20 cannot parse a hosts.toml that has `server` but no `host` table
//   ("failed to decode hosts.toml" error="invalid `host` tree"), and ctr then
//   just logs that and pulls *directly* from the reference's host. hostsToml()
//   therefore writes an empty `[host]` table when there are no mirrors;
// - ctr 1.6 has no `images pull --skip-unpack` (use `ctr content fetch`).
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  AbortPolling,
  removeDir,
  run,
  startProcess,
  tempDir,
  waitFor,
  which,
  type ManagedProcess,
  type RunResult,
} from './proc.js';

export const CONTAINERD_INSTALL_HINT = 'apt-get install -y containerd';

export interface ContainerdBinaries {
  containerd: string;
  ctr: string;
}

/** Locates containerd and ctr (CONTAINERD_BIN / CTR_BIN override); throws with an install hint. */
export function containerdBinaries(): ContainerdBinaries {
  const containerd = which(process.env['CONTAINERD_BIN'] ?? 'containerd') ?? which('/usr/bin/containerd');
  const ctr = which(process.env['CTR_BIN'] ?? 'ctr') ?? which('/usr/bin/ctr');
  if (!containerd || !ctr) {
    throw new Error(`containerd/ctr not found (set CONTAINERD_BIN/CTR_BIN or install them):\n${CONTAINERD_INSTALL_HINT}`);
  }
  return { containerd, ctr };
}

export interface StartContainerdOptions {
  /** containerd log level (default info; the log is the daemon's only trace). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  readyTimeoutMs?: number;
}

export interface CtrOptions {
  /** containerd namespace (default 'default'). */
  namespace?: string;
  /** Kill ctr after this long (default 120 s). */
  timeoutMs?: number;
}

export interface Containerd {
  /** The gRPC unix socket (what `ctr --address` takes). */
  readonly address: string;
  readonly dir: string;
  readonly root: string;
  readonly state: string;
  readonly configFile: string;
  readonly proc: ManagedProcess;
  logs(): string;
  /** `ctr --address <address> [--namespace ns] ...args`. */
  ctr(args: string[], opts?: CtrOptions): Promise<RunResult>;
  /** Stops the daemon (SIGTERM, then SIGKILL) and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** Plugins this fixture never needs; disabling them keeps start-up quiet and fast. */
const DISABLED_PLUGINS = [
  'io.containerd.grpc.v1.cri',
  'io.containerd.internal.v1.tracing',
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.zfs',
];

const q = (s: string): string => JSON.stringify(s); // a JSON string is a valid TOML basic string

export async function startContainerd(opts: StartContainerdOptions = {}): Promise<Containerd> {
  const bins = containerdBinaries();
  const dir = tempDir('re-containerd-');
  const root = path.join(dir, 'root');
  const state = path.join(dir, 'state');
  const address = path.join(dir, 'containerd.sock');
  const configFile = path.join(dir, 'config.toml');
  const logFile = path.join(dir, 'containerd.log');
  fs.writeFileSync(
    configFile,
    [
      'version = 2',
      `root = ${q(root)}`,
      `state = ${q(state)}`,
      `disabled_plugins = [${DISABLED_PLUGINS.map(q).join(', ')}]`,
      '',
      '[grpc]',
      `  address = ${q(address)}`,
      '[ttrpc]',
      `  address = ${q(`${address}.ttrpc`)}`,
      '[debug]',
      '  address = ""',
      `  level = ${q(opts.logLevel ?? 'info')}`,
      '[metrics]',
      '  address = ""',
      '',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = ${q(path.join(dir, 'opt'))}`,
      '',
    ].join('\n'),
  );

  const ctrIn = (args: string[], o: CtrOptions = {}): Promise<RunResult> =>
    run(bins.ctr, ['--address', address, '--namespace', o.namespace ?? 'default', ...args], {
      timeoutMs: o.timeoutMs ?? 120_000,
    });

  const proc = startProcess(bins.containerd, ['--config', configFile], { logFile });
  try {
    await waitFor(
      async () => {
        if (!proc.running()) throw new AbortPolling(new Error(`containerd exited early:\n${proc.logs()}`));
        if (!fs.existsSync(address)) return false;
        const r = await ctrIn(['version'], { timeoutMs: 5_000 });
        if (r.code !== 0) throw new Error(r.stderr.trim());
        return true;
      },
      { timeoutMs: opts.readyTimeoutMs ?? 20_000, intervalMs: 50, what: `containerd on ${address}` },
    );
  } catch (err) {
    await proc.stop();
    removeDir(dir);
    throw err;
  }

  let stopping: Promise<void> | undefined;
  return {
    address,
    dir,
    root,
    state,
    configFile,
    proc,
    logs: () => proc.logs(),
    ctr: ctrIn,
    stop: () => {
      stopping ??= proc.stop().then(() => removeDir(dir));
      return stopping;
    },
  };
}

/** `ctr --address <address> ...args` without a Containerd object. */
export function ctr(address: string, args: string[], opts: CtrOptions = {}): Promise<RunResult> {
  return run(containerdBinaries().ctr, ['--address', address, '--namespace', opts.namespace ?? 'default', ...args], {
    timeoutMs: opts.timeoutMs ?? 120_000,
  });
}

export interface CtrPullOptions extends CtrOptions {
  /** Default 'native' (overlayfs is not usable in every container). */
  snapshotter?: string;
  /**
   * Fetch content only (no snapshot/unpack). ctr 1.6 has no
   * `images pull --skip-unpack` (1.7 added it), so this runs `ctr content
   * fetch`, which fetches the same content and records the image too.
   */
  skipUnpack?: boolean;
  /**
   * Default true: `--plain-http`, so hosts without a scheme (and a missing
   * hosts.toml) mean http://. Hosts in a hosts.toml carry their own scheme.
   */
  plainHttp?: boolean;
  /**
   * user:password for the registry. containerd 1.6 then asks the token
   * service with the OAuth2 POST form (grant_type=password) first and retries
   * with GET + Basic auth when that answers 400/401/404.
   */
  user?: string;
  /** `--refresh`: a refresh token (containerd POSTs grant_type=refresh_token). */
  refreshToken?: string;
  /** `--http-dump`: every registry request/response to stderr (debugging). */
  httpDump?: boolean;
  /** e.g. 'linux/amd64'; default: ctr's own platform. */
  platform?: string;
  allPlatforms?: boolean;
}

function pullFlags(hostsDir: string | undefined, opts: CtrPullOptions): string[] {
  const args: string[] = [];
  if (hostsDir !== undefined) args.push('--hosts-dir', hostsDir);
  if (opts.plainHttp ?? true) args.push('--plain-http');
  if (opts.user !== undefined) args.push('--user', opts.user);
  if (opts.refreshToken !== undefined) args.push('--refresh', opts.refreshToken);
  if (opts.httpDump) args.push('--http-dump');
  if (opts.platform !== undefined) args.push('--platform', opts.platform);
  if (opts.allPlatforms) args.push('--all-platforms');
  return args;
}

/**
 * `ctr images pull` of `ref` (e.g. 127.0.0.1:5000/team/app:v1). With a hostsDir,
 * the hosts.toml in `<hostsDir>/<ref host>/` decides where requests go. Never
 * throws on a failed pull: assert on `code` (stderr says why).
 */
export function ctrPull(address: string, ref: string, hostsDir?: string, opts: CtrPullOptions = {}): Promise<RunResult> {
  if (opts.skipUnpack) return ctrFetch(address, ref, hostsDir, opts);
  const args = ['images', 'pull', ...pullFlags(hostsDir, opts), '--snapshotter', opts.snapshotter ?? 'native', ref];
  return ctr(address, args, opts);
}

/** `ctr content fetch`: all content of the image plus its image record, no unpack. */
export function ctrFetch(address: string, ref: string, hostsDir?: string, opts: CtrPullOptions = {}): Promise<RunResult> {
  return ctr(address, ['content', 'fetch', ...pullFlags(hostsDir, opts), ref], opts);
}

export interface CtrImage {
  ref: string;
  mediaType: string;
  digest: string;
}

/** `ctr images ls`, parsed. */
export async function ctrImages(address: string, opts: CtrOptions = {}): Promise<CtrImage[]> {
  const r = await ctr(address, ['images', 'ls'], opts);
  if (r.code !== 0) throw new Error(`ctr images ls failed (code ${r.code}): ${r.stderr}`);
  return r.stdout
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols.length >= 3 && cols[2]?.startsWith('sha256:'))
    .map(([ref = '', mediaType = '', digest = '']) => ({ ref, mediaType, digest }));
}

/** Digests of every blob in the content store (`ctr content ls -q`). */
export async function ctrContentDigests(address: string, opts: CtrOptions = {}): Promise<string[]> {
  const r = await ctr(address, ['content', 'ls', '-q'], opts);
  if (r.code !== 0) throw new Error(`ctr content ls failed (code ${r.code}): ${r.stderr}`);
  return r.stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('sha256:'));
}

/** Removes an image record and all content, so the next pull fetches everything again. */
export async function ctrForget(address: string, opts: CtrOptions = {}): Promise<void> {
  const images = await ctrImages(address, opts);
  if (images.length > 0) {
    const r = await ctr(address, ['images', 'rm', '--sync', ...images.map((i) => i.ref)], opts);
    if (r.code !== 0) throw new Error(`ctr images rm failed (code ${r.code}): ${r.stderr}`);
  }
  const digests = await ctrContentDigests(address, opts);
  if (digests.length > 0) {
    const r = await ctr(address, ['content', 'rm', ...digests], opts);
    if (r.code !== 0) throw new Error(`ctr content rm failed (code ${r.code}): ${r.stderr}`);
  }
}

export interface MirrorHost {
  /** Full URL with scheme, e.g. http://127.0.0.1:8080 */
  url: string;
  /** Default ['pull', 'resolve']. */
  capabilities?: Array<'pull' | 'resolve' | 'push'>;
  skipVerify?: boolean;
  /** CA file(s) for an https mirror. */
  ca?: string | string[];
  /** Extra request headers. */
  header?: Record<string, string | string[]>;
  /** The URL already contains the /v2-equivalent path (e.g. http://h/v2/prefix). */
  overridePath?: boolean;
}

export interface HostsTomlOptions {
  /**
   * Fallback host (full URL). Default: http://<registryHost>. Give the
   * mirror here with no `mirrors` to make it the only host.
   */
  server?: string;
  /** Tried in order before `server`. */
  mirrors?: Array<string | MirrorHost>;
}

/** The text of a hosts.toml (containerd's registry host configuration). */
export function hostsToml(registryHost: string, opts: HostsTomlOptions = {}): string {
  const lines = [`server = ${q(opts.server ?? `http://${registryHost}`)}`];
  const mirrors = opts.mirrors ?? [];
  // containerd 1.6.20 rejects a file without a `host` tree (see the top of this file).
  if (mirrors.length === 0) lines.push('', '[host]');
  for (const m of mirrors) {
    const h: MirrorHost = typeof m === 'string' ? { url: m } : m;
    lines.push('', `[host.${q(h.url)}]`, `  capabilities = [${(h.capabilities ?? ['pull', 'resolve']).map(q).join(', ')}]`);
    if (h.skipVerify !== undefined) lines.push(`  skip_verify = ${h.skipVerify}`);
    if (h.ca !== undefined) {
      const cas = Array.isArray(h.ca) ? h.ca : [h.ca];
      lines.push(`  ca = [${cas.map(q).join(', ')}]`);
    }
    if (h.overridePath) lines.push('  override_path = true');
    if (h.header) {
      lines.push(`  [host.${q(h.url)}.header]`);
      for (const [k, v] of Object.entries(h.header)) {
        lines.push(`    ${q(k)} = ${Array.isArray(v) ? `[${v.map(q).join(', ')}]` : q(v)}`);
      }
    }
  }
  return lines.join('\n') + '\n';
}

/**
 * Writes `<hostsDir>/<registryHost>/hosts.toml` (registryHost as in the image
 * reference, e.g. '127.0.0.1:5000') and returns its path.
 */
export function writeHostsToml(hostsDir: string, registryHost: string, opts: HostsTomlOptions = {}): string {
  const dir = path.join(hostsDir, registryHost);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'hosts.toml');
  fs.writeFileSync(file, hostsToml(registryHost, opts));
  return file;
}
