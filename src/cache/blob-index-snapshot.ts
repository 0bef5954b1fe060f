/**
 * The blob index on disk (`<cache.dir>/index/snapshot`): every committed blob's digest
 * and size, least recently used first, so a restart neither stats every file nor loses
 * the recency order. Text, one blob a line, between a version line and a count line:
 *
 *   registry-edge blob index 1
 *   sha256:<hex> <size>
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
const TRAILER = 'end ';
/** Lines per write: few system calls, and the event loop gets a turn between writes. */
const LINES_PER_WRITE = 8192;

export type SnapshotRead = { readonly entries: Map<string, number> } | { readonly problem: string };

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
  let lines = 0;
  let start = HEADER.length;
  for (;;) {
    const nl = buf.indexOf(10, start);
    if (nl < 0) return { problem: 'snapshot cut short (no end line)' };
    // toString of each part makes flat strings: slices of one big string would keep all of it alive.
    const space = buf.indexOf(32, start);
    if (space < 0 || space > nl) return { problem: `damaged snapshot line ${lines + 2}` };
    const key = buf.toString('latin1', start, space);
    const value = Number(buf.toString('latin1', space + 1, nl));
    if (key === TRAILER.trimEnd()) {
      if (value !== lines || nl + 1 !== buf.length) return { problem: 'snapshot end line does not match its lines' };
      return { entries };
    }
    if (!Number.isSafeInteger(value) || value < 0 || !key.includes(':')) return { problem: `damaged snapshot line ${lines + 2}` };
    // A later line of the same key is a later use: it moves to that place.
    entries.delete(key);
    entries.set(key, value);
    lines++;
    start = nl + 1;
  }
}

/**
 * Writes `entries` (oldest first; may change between writes) as the snapshot at
 * `finalPath` through `tempPath` (same filesystem); returns the lines written.
 */
export async function writeSnapshot(entries: Iterator<[string, number]>, tempPath: string, finalPath: string, fsync: boolean): Promise<number> {
  let lines = 0;
  await writeAtomic(tempPath, finalPath, async (handle) => {
    let chunk = HEADER;
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
    await handle.write(`${chunk}${TRAILER}${lines}\n`);
  }, fsync);
  return lines;
}
