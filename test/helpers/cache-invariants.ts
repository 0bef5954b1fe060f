// What every fault test checks after the fault: the cache holds only verified bytes,
// no fill is left half-written, and the edge has let go of what the fault made it open.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from './proc.js';

export interface CacheProblems {
  /** Files under blobs/ whose bytes do not hash to their name (or whose name is no digest). */
  readonly wrongBlobs: string[];
  /** Files left under tmp/ (fills or writes in progress). */
  readonly tempFiles: string[];
}

async function hashFile(algorithm: string, file: string): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(full));
    else out.push(full);
  }
  return out;
}

/** Hashes every committed blob against its name and lists what is left in tmp/. */
export async function cacheProblems(cacheDir: string): Promise<CacheProblems> {
  const wrongBlobs: string[] = [];
  const blobs = join(cacheDir, 'blobs');
  for (const file of filesUnder(blobs)) {
    const [algorithm, prefix, hex] = file.slice(blobs.length + 1).split('/');
    const ok = algorithm !== undefined && prefix !== undefined && hex !== undefined
      && (algorithm === 'sha256' || algorithm === 'sha512') && hex.startsWith(prefix)
      && (await hashFile(algorithm, file)) === hex;
    if (!ok) wrongBlobs.push(file);
  }
  return { wrongBlobs, tempFiles: filesUnder(join(cacheDir, 'tmp')) };
}

/** Bytes of every file under `dir` (what the cache really holds on disk). */
export function bytesOnDisk(dir: string): number {
  return filesUnder(dir).reduce((sum, f) => sum + statSync(f).size, 0);
}

export interface Descriptors {
  readonly total: number;
  readonly sockets: number;
  readonly files: number;
  /** Committed blobs kept open on purpose between requests (cache.open_files, bounded), not counted as held. */
  readonly keptBlobs: number;
}

/** Open descriptors of a process, from /proc/<pid>/fd. */
export function descriptors(pid: number): Descriptors {
  let sockets = 0;
  let files = 0;
  let keptBlobs = 0;
  const entries = readdirSync(`/proc/${pid}/fd`);
  for (const fd of entries) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed while we looked
    }
    if (target.startsWith('socket:')) sockets++;
    else if (target.startsWith('/')) files++;
    // A descriptor of an evicted (deleted) blob is held, not kept: its space cannot come back.
    if (/\/blobs\/sha(256|512)\/[0-9a-f]{2}\/[0-9a-f]+$/.test(target)) keptBlobs++;
  }
  return { total: entries.length, sockets, files, keptBlobs };
}

/**
 * Waits until the process holds no more descriptors than at `baseline` (plus `slack`,
 * for the keep-alive connections a pool may keep), and returns what it holds then.
 * Descriptors of committed blobs that cache.open_files keeps are left out on both sides.
 */
export function descriptorsBackTo(pid: number, baseline: Descriptors, slack = 2, timeoutMs = 15_000): Promise<Descriptors> {
  return waitFor(
    () => {
      const now = descriptors(pid);
      const held = now.total - now.keptBlobs;
      return held <= baseline.total - baseline.keptBlobs + slack && now.files - now.keptBlobs <= baseline.files - baseline.keptBlobs ? now : undefined;
    },
    { timeoutMs, what: `descriptors of ${pid} back to ${baseline.total} (+${slack})` },
  );
}
