/**
 * The blob index on disk (`<cache.dir>/index/snapshot`): every committed blob's digest
 * and size, least recently used first, so a restart neither stats every file nor loses
 * the recency order. Text, between a version line and a count line:
 *
 *   registry-edge blob index 1
 *   dir sha256:ab <ctime ns>     a blob directory (blobs/sha256/ab) that had not changed for a while when the snapshot was taken
 *   ...
 *   sha256:<hex> <size>          one blob a line, least recently used first
 *   ...
 *   end <number of blob lines>
 *
 * Written whole to a temp file and renamed, so a reader sees one complete snapshot or the
 * previous one. A key may come twice (a blob used while the snapshot was written): the
 * later line is its place. What the snapshot says is checked against the directory at
 * start (blob-index-scan.ts), so a stale snapshot costs order, never a wrong answer.
 */
import { readFile } from 'node:fs/promises';
import { writeAtomic } from './atomic-file.js';

const HEADER = 'registry-edge blob index 1\n';
const END = 'end';
/** Lines per write: few system calls, and the event loop gets a turn between writes. */
const LINES_PER_WRITE = 2048;

export interface Snapshot {
  /** Digest → size, oldest first. */
  readonly entries: Map<string, number>;
  /** Blob directories (as `sha256:ab`, the first characters of their keys) → their ctime in ns when the snapshot was taken. */
  readonly dirs: Map<string, bigint>;
}

export type SnapshotRead = Snapshot | { readonly problem: string };

const DIR = 'dir';

/** The entries of the snapshot at `path`, oldest first, or why there are none (absent, another version, damaged). */
export async function readSnapshot(path: string): Promise<SnapshotRead> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { problem: code === 'ENOENT' ? 'no snapshot' : `unreadable snapshot (${code ?? (err as Error).message})` };
  }
  if (buf.toString('latin1', 0, HEADER.length) !== HEADER) return { problem: 'snapshot of another format' };
  const entries = new Map<string, number>();
  const dirs = new Map<string, bigint>();
  let lines = 0;
  let start = HEADER.length;
  for (;;) {
    const nl = buf.indexOf(10, start);
    if (nl < 0) return { problem: 'snapshot cut short (no end line)' };
    const space = buf.indexOf(32, start);
    if (space < 0 || space > nl) return { problem: `damaged snapshot line ${lines + dirs.size + 2}` };
    // toString of each key makes a flat string: slices of one big string would keep all of it alive.
    const key = buf.toString('latin1', start, space);
    if (key === DIR) {
      const [dir, ctime] = buf.toString('latin1', space + 1, nl).split(' ');
      if (dir === undefined || ctime === undefined || !/^\d+$/.test(ctime)) return { problem: `damaged snapshot line ${lines + dirs.size + 2}` };
      dirs.set(dir, BigInt(ctime));
      start = nl + 1;
      continue;
    }
    const value = decimal(buf, space + 1, nl);
    if (key === END) {
      if (value !== lines || nl + 1 !== buf.length) return { problem: 'snapshot end line does not match its lines' };
      return { entries, dirs };
    }
    if (value < 0 || !key.includes(':')) return { problem: `damaged snapshot line ${lines + dirs.size + 2}` };
    const before = entries.size;
    entries.set(key, value);
    // A key seen before: this later line is a later use, its place.
    if (entries.size === before) {
      entries.delete(key);
      entries.set(key, value);
    }
    lines++;
    start = nl + 1;
  }
}

/** The decimal number in buf[start, end), or -1 when it is not one (read from the bytes: no string per line). */
function decimal(buf: Buffer, start: number, end: number): number {
  if (end === start || end - start > 15) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const digit = (buf[i] ?? 0) - 48;
    if (digit < 0 || digit > 9) return -1;
    n = n * 10 + digit;
  }
  return n;
}

/**
 * Writes `dirs` and `entries` (oldest first; may change between writes) as the snapshot
 * at `finalPath` through `tempPath` (same filesystem); returns the blob lines written.
 */
export async function writeSnapshot(dirs: ReadonlyMap<string, bigint>, entries: Iterator<[string, number]>, tempPath: string, finalPath: string, fsync: boolean): Promise<number> {
  let lines = 0;
  await writeAtomic(tempPath, finalPath, async (handle) => {
    let chunk = HEADER;
    for (const [dir, ctime] of dirs) chunk += `${DIR} ${dir} ${ctime}\n`;
    let inChunk = 0;
    for (let next = entries.next(); !next.done; next = entries.next()) {
      const [key, size] = next.value;
      chunk += `${key} ${size}\n`;
      lines++;
      if (++inChunk === LINES_PER_WRITE) {
        await handle.write(chunk);
        chunk = '';
        inChunk = 0;
      }
    }
    await handle.write(`${chunk}${END} ${lines}\n`);
  }, fsync);
  return lines;
}
