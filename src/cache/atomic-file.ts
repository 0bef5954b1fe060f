import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/** fsyncs a directory so a rename into it survives a crash. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Moves a finished temp file to its final name: readers see the whole file or none of it. */
export async function commitFile(tempPath: string, finalPath: string, fsync: boolean): Promise<void> {
  const dir = dirname(finalPath);
  await mkdir(dir, { recursive: true });
  await rename(tempPath, finalPath);
  if (fsync) await syncDir(dir);
}

/** Writes a small file atomically (temp, fsync, rename). */
export function writeFileAtomic(tempPath: string, finalPath: string, data: Buffer | string, fsync: boolean): Promise<void> {
  return writeAtomic(tempPath, finalPath, (handle) => handle.writeFile(data), fsync);
}

/** Writes a file atomically through `write` (temp, fsync, rename); the temp file goes on failure. */
export async function writeAtomic(tempPath: string, finalPath: string, write: (handle: FileHandle) => Promise<void>, fsync: boolean): Promise<void> {
  const handle = await open(tempPath, 'wx');
  try {
    await write(handle);
    if (fsync) await handle.datasync();
  } catch (err) {
    await handle.close();
    await unlink(tempPath).catch(() => undefined);
    throw err;
  }
  await handle.close();
  try {
    await commitFile(tempPath, finalPath, fsync);
  } catch (err) {
    await unlink(tempPath).catch(() => undefined);
    throw err;
  }
}
