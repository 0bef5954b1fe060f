// Small filesystems a fault test makes for the cache (disk full, read-only), mounted
// under the test's temp directory and unmounted on every path.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './proc.js';

export interface SmallFs {
  readonly dir: string;
  /** Remounts the filesystem read-only (true) or read-write (false), keeping its files. */
  setReadOnly(readOnly: boolean): Promise<void>;
  /** Unmounts (lazily if busy); safe to call twice. */
  unmount(): Promise<void>;
}

async function mountCmd(args: string[]): Promise<void> {
  const r = await run('mount', args, { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`mount ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
}

/** A tmpfs of `bytes` at `<parent>/<name>`; needs root (CI and the dev machines run as root). */
export async function mountTmpfs(parent: string, name: string, bytes: number): Promise<SmallFs> {
  if (process.getuid?.() !== 0) throw new Error('the disk fault tests mount a tmpfs and must run as root');
  const dir = join(parent, name);
  mkdirSync(dir, { recursive: true });
  await mountCmd(['-t', 'tmpfs', '-o', `size=${bytes},mode=0755`, 'tmpfs', dir]);
  let mounted = true;
  return {
    dir,
    setReadOnly: (readOnly) => mountCmd(['-o', `remount,${readOnly ? 'ro' : 'rw'}`, dir]),
    async unmount() {
      if (!mounted) return;
      mounted = false;
      const r = await run('umount', [dir], { timeoutMs: 10_000 });
      if (r.code !== 0) await run('umount', ['-l', dir], { timeoutMs: 10_000 });
    },
  };
}

/** Runs `fn` with a tmpfs mounted, and unmounts it however `fn` ends. */
export async function withTmpfs<T>(parent: string, name: string, bytes: number, fn: (fs: SmallFs) => Promise<T>): Promise<T> {
  const fs = await mountTmpfs(parent, name, bytes);
  try {
    return await fn(fs);
  } finally {
    await fs.unmount();
  }
}
