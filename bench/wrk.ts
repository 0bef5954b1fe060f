// Runs wrk and reads requests/s, latency percentiles and errors from its text report.
import { run, which } from '../test/helpers/proc.js';

export const WRK_INSTALL_HINT = 'apt-get install -y wrk';

export interface WrkOptions {
  readonly url: string;
  readonly connections: number;
  readonly threads: number;
  readonly durationSeconds: number;
  readonly headers?: Record<string, string>;
}

export interface WrkResult {
  requests: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Non-2xx/3xx responses plus socket errors (connect, read, write, timeout). */
  errors: number;
  raw: string;
}

export function wrkBinary(): string {
  const found = which(process.env['WRK_BIN'] ?? 'wrk');
  if (!found) throw new Error(`wrk not found (set WRK_BIN or install it):\n${WRK_INSTALL_HINT}`);
  return found;
}

/** "1.23ms", "850.00us", "1.02s", "2.00m" -> milliseconds. */
export function durationMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m?.[1] || !m[2]) return Number.NaN;
  const v = Number(m[1]);
  const scale: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  return v * (scale[m[2]] ?? Number.NaN);
}

export function parseWrk(out: string): WrkResult {
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    return m?.[1] === undefined ? 0 : Number(m[1]);
  };
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out);
    return m?.[1] === undefined ? Number.NaN : durationMs(m[1]);
  };
  const maxM = /^\s+Latency\s+\S+\s+\S+\s+(\S+)/m.exec(out);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = socket ? [1, 2, 3, 4].reduce((a, i) => a + Number(socket[i] ?? 0), 0) : 0;
  return {
    requests: num(/^\s+(\d+) requests in/m),
    requestsPerSecond: num(/^Requests\/sec:\s+([\d.]+)/m),
    p50Ms: pct('50'),
    p99Ms: pct('99'),
    maxMs: maxM?.[1] === undefined ? Number.NaN : durationMs(maxM[1]),
    errors: num(/Non-2xx or 3xx responses: (\d+)/) + socketErrors,
    raw: out,
  };
}

export async function runWrk(opts: WrkOptions): Promise<WrkResult> {
  const args = ['-t', String(opts.threads), '-c', String(opts.connections), '-d', `${opts.durationSeconds}s`, '--latency'];
  for (const [k, v] of Object.entries(opts.headers ?? {})) args.push('-H', `${k}: ${v}`);
  args.push(opts.url);
  const r = await run(wrkBinary(), args, { timeoutMs: (opts.durationSeconds + 60) * 1000 });
  if (r.code !== 0) throw new Error(`wrk failed (code ${r.code}):\n${r.stderr}${r.stdout}`);
  return parseWrk(r.stdout);
}
