// Headless Chromium (Debian `chromium`) for the pages the edge serves: the DOM after the
// page's scripts ran, or a screenshot. Each run is its own process group in a temp
// profile, killed by its PID's group on every path (the browser forks a zygote and
// renderers that would otherwise outlive a killed browser).
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { removeDir, tempDir, which } from './proc.js';

export const CHROMIUM_INSTALL_HINT = 'apt-get install -y chromium';

export function chromiumBinary(): string {
  const bin = which('chromium');
  if (!bin) throw new Error(`chromium not found: ${CHROMIUM_INSTALL_HINT}`);
  return bin;
}

export interface ChromiumResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Quiet, offline, no profile state kept: nothing but the page is fetched. */
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: the group is gone already
  }
}

/** Runs chromium with `args` (plus the fixed flags and a temp profile); rejects past `timeoutMs`. */
export async function chromium(args: readonly string[], timeoutMs = 60_000): Promise<ChromiumResult> {
  const profile = tempDir('re-chromium-');
  const child = spawn(chromiumBinary(), [...FLAGS, `--user-data-dir=${path.join(profile, 'profile')}`, ...args], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid;
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  let timer: NodeJS.Timeout | undefined;
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`chromium did not finish within ${timeoutMs} ms:\n${Buffer.concat(err).toString('utf8').slice(-2000)}`)), timeoutMs);
      child.once('error', reject);
      child.once('close', resolve);
    });
    return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
  } finally {
    clearTimeout(timer);
    if (pid !== undefined) killGroup(pid);
    removeDir(profile);
  }
}
