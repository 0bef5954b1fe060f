// /proc readers: resident set (now and peak) and CPU time of processes, and the children of a process.
import * as fs from 'node:fs';
import * as os from 'node:os';

/** A `kB` field of /proc/<pid>/status in bytes, or undefined when the process is gone. */
function statusBytes(pid: number, field: 'VmHWM' | 'VmRSS'): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB$`, 'm').exec(text);
  return m?.[1] === undefined ? undefined : Number(m[1]) * 1024;
}

/** VmHWM (peak resident set) of `pid` in bytes, or undefined when it is gone. */
export function peakRssBytes(pid: number): number | undefined {
  return statusBytes(pid, 'VmHWM');
}

/** VmRSS (resident set now) of `pid` in bytes, or undefined when it is gone. */
export function rssBytes(pid: number): number | undefined {
  return statusBytes(pid, 'VmRSS');
}

interface Stat {
  comm: string;
  ppid: number;
  /** utime + stime of every thread, in clock ticks. */
  cpuTicks: number;
  /** cutime + cstime: children that exited and were waited for, in clock ticks. */
  childTicks: number;
}

function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split at the last ')'.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const rest = text.slice(close + 2).split(' ');
  // Fields 14 to 17 (utime, stime, cutime, cstime) are rest[11] to rest[14].
  return {
    comm: text.slice(open + 1, close),
    ppid: Number(rest[1]),
    cpuTicks: Number(rest[11]) + Number(rest[12]),
    childTicks: Number(rest[13]) + Number(rest[14]),
  };
}

/** CPU seconds (user + system, all threads) `pids` have used so far; gone processes count 0. */
export function cpuSeconds(pids: number[]): number {
  // USER_HZ is 100 on every Linux build Node.js runs on.
  return pids.reduce((a, p) => a + (readStat(p)?.cpuTicks ?? 0), 0) / 100;
}

/** CPU seconds used by this process's children that have exited and been reaped (clients run to completion). */
export function reapedChildrenCpuSeconds(): number {
  return (readStat(process.pid)?.childTicks ?? 0) / 100;
}

/** CPU seconds the whole machine has spent busy (not idle, not waiting for I/O) since boot, over all cores. */
function machineBusySeconds(): number {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  // "cpu user nice system idle iowait irq softirq steal ...", in USER_HZ ticks.
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - (ticks[3] ?? 0) - (ticks[4] ?? 0)) / 100;
}

/**
 * Starts measuring how busy the whole machine is; the function returned gives the share
 * of all cores that were busy over `wallSeconds` since (near 1: the work was bound by CPU).
 */
export function machineBusyMeter(): (wallSeconds: number) => number {
  const before = machineBusySeconds();
  return (wallSeconds) => (machineBusySeconds() - before) / (wallSeconds * os.cpus().length);
}

/** Direct children of `pid` (scans /proc). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const child = Number(name);
    if (readStat(child)?.ppid === pid) out.push(child);
  }
  return out;
}

/** True while `pid` exists and its command name is `comm` (guards against reused pids). */
export function isRunningAs(pid: number, comm: string): boolean {
  return readStat(pid)?.comm === comm;
}

/** The soft limit on open descriptors of `pid` (/proc/<pid>/limits), or undefined when it is gone or unlimited. */
export function openFilesSoftLimit(pid: number): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/limits`, 'utf8');
  } catch {
    return undefined;
  }
  const m = /^Max open files\s+(\d+)\s/m.exec(text);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}
