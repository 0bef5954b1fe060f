// `registry-edge cache`: against a cache a real edge filled (and keeps running on), the
// listings parse and agree with what was pulled, verify finds a flipped byte and removes
// that blob, gc keeps the most recently used within the size, rm removes, tmp/ untouched.
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdirSync, openSync, readSync, statSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EDGE_BIN } from '../helpers/edge.js';
import { hexOf, makeOciLayout, pullImage, pushImage, type ImageInfo } from '../helpers/image.js';
import { run, type RunResult } from '../helpers/proc.js';
import { startStack, type Stack } from '../helpers/stack.js';

const KiB = 1024;
const cache = (args: string[]): Promise<RunResult> => run(process.execPath, [EDGE_BIN, 'cache', ...args], { timeoutMs: 60_000 });

interface Stats {
  blobs: { count: number; bytes: number };
  manifests: { count: number; bytes: number };
  tags: number;
  repositories: number;
  inProgressBytes: number;
  hitRatio?: Record<string, { hits: number; lookups: number; ratio: number }>;
}
interface Row {
  digest: string;
  size: number;
  lastAccess: string;
  repositories: string[];
}

describe('cache stats|ls|verify|gc|rm next to a running edge', () => {
  let stack: Stack;
  let image: ImageInfo;
  let dir: string;
  const blobFile = (digest: string): string => path.join(dir, 'blobs', 'sha256', hexOf(digest).slice(0, 2), hexOf(digest));
  const tmpFile = (): string => path.join(dir, 'tmp', 'a-fill-in-progress');

  before(async () => {
    stack = await startStack('re-cache-cli-', {
      before: async ({ work, registry }) => {
        image = await makeOciLayout(path.join(work, 'layout'), { layers: [300 * KiB, 120 * KiB, 40 * KiB], tag: '1.0' });
        await pushImage(image.layoutDir, '1.0', `${registry.host}/team/app:1.0`);
      },
    });
    dir = stack.edge.cacheDir;
    const pulled = await pullImage(`${stack.edge.host}/team/app:1.0`, path.join(stack.work, 'pull-1'));
    assert.equal(pulled.code, 0, pulled.stderr);
    // A fill in progress as the edge would have it: no command may touch it.
    mkdirSync(path.join(dir, 'tmp'), { recursive: true });
    writeFileSync(tmpFile(), 'partial');
  });

  after(async () => {
    await stack?.stop();
  });

  const digests = (): string[] => [...image.layers.map((l) => l.digest), image.configDigest];

  test('stats: counts and bytes of what was pulled; with --admin the edge\'s hit ratios', async () => {
    const again = await pullImage(`${stack.edge.host}/team/app:1.0`, path.join(stack.work, 'pull-2'));
    assert.equal(again.code, 0, again.stderr);
    const r = await cache(['stats', '--dir', dir, '--json', '--admin', stack.edge.adminUrl]);
    assert.equal(r.code, 0, r.stderr);
    const stats = JSON.parse(r.stdout) as Stats;
    assert.equal(stats.blobs.count, digests().length);
    assert.equal(stats.blobs.bytes, image.layers.reduce((t, l) => t + l.size, 0) + image.configBytes.length);
    assert.ok(stats.manifests.count >= 1);
    assert.equal(stats.tags, 1);
    assert.equal(stats.repositories, 1);
    assert.equal(stats.inProgressBytes, 'partial'.length);
    const blob = stats.hitRatio?.blob;
    assert.ok(blob && blob.hits >= image.layers.length, `the second pull hit the cache: ${JSON.stringify(stats.hitRatio)}`);
    assert.equal(blob.ratio, blob.hits / blob.lookups);

    // By --config: its cache.dir, and the use against its cache.maxsize.
    const file = path.join(stack.work, 'cache-cli.yaml');
    writeFileSync(file, `cache:\n  dir: ${dir}\n  maxsize: 1GiB\n`);
    const text = await cache(['stats', '--config', file]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^blobs: ${digests().length} \\(`, 'm'));
    assert.match(text.stdout, /^used: [\d.]+ KiB of 1\.0 GiB \(cache\.maxsize, 0\.0%\)$/m);
    const both = await cache(['stats', '--config', file, '--dir', dir]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /give --config or --dir, not both/);
  });

  test('ls: every blob with its size, last access and repository; --repositories totals per repository', async () => {
    const r = await cache(['ls', '--dir', dir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as Row[];
    assert.deepEqual(rows.map((row) => row.digest).sort(), digests().sort());
    for (const l of image.layers) {
      const row = rows.find((x) => x.digest === l.digest);
      assert.equal(row?.size, l.size);
      assert.deepEqual(row?.repositories, ['team/app']);
      assert.ok(Math.abs(Date.parse(row?.lastAccess ?? '') - Date.now()) < 3_600_000);
    }
    const repos = await cache(['ls', '--dir', dir, '--repositories', '--json']);
    const [entry, ...more] = JSON.parse(repos.stdout) as Array<{ repository: string; blobs: number; bytes: number }>;
    assert.deepEqual(more, []);
    assert.equal(entry?.repository, 'team/app');
    assert.ok((entry?.blobs ?? 0) >= image.layers.length);
    const plain = await cache(['ls', '--dir', dir]);
    assert.ok(plain.stdout.split('\n').some((line) => line.startsWith(`${image.layers[0]?.digest}\t${image.layers[0]?.size}\t`)));
  });

  test('verify: a flipped byte is found, that blob removed, exit 1; plain lines off a terminal, a bar on one', async () => {
    const victim = image.layers[1]?.digest as string;
    const fd = openSync(blobFile(victim), 'r+');
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, 1000);
    writeSync(fd, Buffer.from([byte[0]! ^ 0xff]), 0, 1, 1000);
    closeSync(fd);
    const r = await cache(['verify', '--dir', dir]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^damaged blob ${victim}: removed`, 'm'));
    assert.match(r.stderr, /^verified \d+\/\d+ files, /m);
    assert.doesNotMatch(r.stderr, /\r/, 'no bar drawn into a pipe');
    assert.match(r.stdout, /1 damaged and removed/);
    assert.equal(existsSync(blobFile(victim)), false);
    for (const d of digests().filter((x) => x !== victim)) assert.ok(existsSync(blobFile(d)), `${d} is intact and stays`);
    assert.ok(existsSync(tmpFile()), 'tmp/ untouched');

    // On a terminal (script(1) gives it one) the bar is redrawn in place.
    const tty = await run('script', ['-qec', `${process.execPath} ${EDGE_BIN} cache verify --dir ${dir}`, '/dev/null'], { timeoutMs: 60_000 });
    assert.equal(tty.code, 0, tty.stdout);
    assert.match(tty.stdout, /\r\[#+\] verified \d+\/\d+ files/);
  });

  test('gc --max-size: the least recently used blobs go until the cache fits; the newest stay', async () => {
    const present = image.layers.filter((l) => existsSync(blobFile(l.digest)));
    // Oldest first: the largest layer was used longest ago.
    const order = [...present].sort((a, b) => b.size - a.size);
    order.forEach((l, i) => utimesSync(blobFile(l.digest), new Date(Date.UTC(2020, 0, 1 + i)), new Date(Date.UTC(2020, 0, 1 + i))));
    const before = JSON.parse((await cache(['stats', '--dir', dir, '--json'])).stdout) as Stats;
    const limit = before.blobs.bytes + before.manifests.bytes - 1;
    const r = await cache(['gc', '--dir', dir, '--max-size', String(limit)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync(blobFile(order[0]?.digest as string)), false, 'the least recently used went');
    for (const l of order.slice(1)) assert.ok(existsSync(blobFile(l.digest)), 'the rest fit and stay');
    const after = JSON.parse((await cache(['stats', '--dir', dir, '--json'])).stdout) as Stats;
    assert.ok(after.blobs.bytes + after.manifests.bytes <= limit);
    assert.ok(existsSync(tmpFile()), 'tmp/ untouched');
    const bad = await cache(['gc', '--dir', dir, '--max-size', 'lots']);
    assert.equal(bad.code, 2);
  });

  test('rm DIGEST removes the blob; a digest not in the cache is exit 1', async () => {
    const config = image.configDigest;
    assert.ok(statSync(blobFile(config)).isFile());
    const r = await cache(['rm', config, '--dir', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `removed blob ${config}\n`);
    assert.equal(existsSync(blobFile(config)), false);
    const again = await cache(['rm', config, '--dir', dir]);
    assert.equal(again.code, 1);
    const bad = await cache(['rm', 'sha256:xyz', '--dir', dir]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /"sha256:xyz" is not a digest/);
  });
});
