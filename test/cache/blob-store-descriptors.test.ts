// A cached blob that cannot be opened because the process is out of descriptors is
// still cached: the failure is the process's, not the file's, and must not forget it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, mkdirSync, openSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, test } from 'node:test';
import { BlobStore } from '../../src/cache/blob-store.js';
import { CacheLayout } from '../../src/cache/layout.js';
import { parseDigest } from '../../src/oci/grammar.js';
import { removeDir, run, tempDir } from '../helpers/proc.js';

const dir = tempDir('re-store-fds-');
after(() => removeDir(dir));

async function hardLimit(): Promise<string> {
  return (await run('prlimit', ['--pid', String(process.pid), '--nofile', '--output', 'HARD', '--noheadings'])).stdout.trim();
}

/** Sets this process's soft RLIMIT_NOFILE (prlimit on our own pid; the tests run as root). */
async function softLimit(n: number, hard: string): Promise<void> {
  const r = await run('prlimit', ['--pid', String(process.pid), `--nofile=${n}:${hard}`]);
  assert.equal(r.code, 0, r.stderr);
}

/**
 * Puts the soft limit back to `hard` when told. It is started while descriptors are free:
 * spawning a process needs pipes, and once the limit is down there may be none to make them.
 */
function restorer(hard: string): { restore(): Promise<void> } {
  const child = spawn('sh', ['-c', `read _ && exec prlimit --pid ${process.pid} --nofile=${hard}:${hard}`], { stdio: ['pipe', 'ignore', 'inherit'] });
  const exited = once(child, 'exit');
  return {
    async restore() {
      child.stdin.end('\n');
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0, 'prlimit restored the limit');
    },
  };
}

test('EMFILE on opening a cached blob fails that request and keeps the blob indexed', async () => {
  const layout = new CacheLayout(dir);
  const store = new BlobStore(layout, { maxSize: 1 << 20, maxBlobSize: 1 << 19, fsync: false, syncReadMax: 0.001, openFiles: { max: 0, idleSeconds: 1 } }, {
    onSizeChange: () => undefined,
    onEvict: () => undefined,
    onSlowRead: () => undefined,
  });
  after(() => store.close());
  const bytes = randomBytes(4096);
  const digest = parseDigest(`sha256:${createHash('sha256').update(bytes).digest('hex')}`);
  assert.ok(digest);
  // On disk before the start: init indexes it as a committed blob.
  mkdirSync(dirname(layout.blobPath(digest)), { recursive: true });
  writeFileSync(layout.blobPath(digest), bytes);
  await store.init();
  assert.equal(store.has(digest), true);

  // The limit comes down to just above the highest descriptor open, and /dev/null fills every
  // number still free below it: the next open has nowhere to go.
  const hard = await hardLimit();
  const back = restorer(hard);
  const highest = Math.max(...readdirSync('/proc/self/fd').map(Number));
  await softLimit(highest + 1, hard);
  const fillers: number[] = [];
  let failure: unknown;
  try {
    for (let i = 0; i < 100_000; i++) fillers.push(openSync('/dev/null', 'r'));
  } catch {
    // EMFILE: every number below the limit is taken
  }
  try {
    await store.open(digest);
  } catch (err) {
    failure = err;
  } finally {
    fillers.forEach((fd) => closeSync(fd));
    await back.restore();
  }
  assert.equal((failure as NodeJS.ErrnoException | undefined)?.code, 'EMFILE');
  assert.equal(store.has(digest), true, 'still indexed');
  const blob = await store.open(digest);
  assert.ok(blob, 'opens once descriptors are back');
  assert.equal(blob.size, bytes.length);
  blob.close();
});
