// Restart time and eviction cost of the blob cache with 10^4, 10^5 and 10^6 cached blobs
// (issue 13), today's code against the blob index in one run. For each size it generates
// a cache directory of small files under /tmp, then:
// - starts a real `registry-edge serve` on it and times spawn to the first 200 of /readyz:
//   today's code (the commit before the index, built under /tmp), this build's first start
//   (no snapshot yet: the walk of every file), this build's restart (from the snapshot,
//   no directory changed), and its restart once every blob directory has changed (the
//   check reads them all, as after a crash of a busy edge); and times this build's
//   shutdown (which writes the snapshot);
// - in this process, opens today's BlobStore and this one on the directory, measures the
//   heap their index takes, and times 2000 evictions (each `charge` evicts one blob).
// `npm run bench:index`; BENCH_INDEX_SIZES=10000,100000 for a shorter run.
import { mkdirSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import type { BlobStore } from '../src/cache/blob-store.js';
import { EDGE_BIN, logLines } from '../test/helpers/edge.js';
import { httpRequest, removeDir, run, startProcess, tempDir, waitFor } from '../test/helpers/proc.js';
import { rssBytes } from './procfs.js';

const SIZES = (process.env['BENCH_INDEX_SIZES'] ?? '10000,100000,1000000').split(',').map(Number);
const FILE_BYTES = 4;
const EVICTIONS = 2000;
const WARM_UP = 500;
const ROOT = path.resolve(path.dirname(EDGE_BIN), '..');
const MiB = 1024 * 1024;

/** What both BlobStores offer that the bench uses. */
interface Store {
  init(): Promise<void>;
  charge(bytes: number): void;
  close(): void | Promise<void>;
}
type StoreOptions = ConstructorParameters<typeof BlobStore>[1];
type StoreEvents = ConstructorParameters<typeof BlobStore>[2];

interface Build {
  readonly label: string;
  readonly bin: string;
  /** The build's compiled src/cache/, whose BlobStore the in-process measures open. */
  readonly cacheModules: string;
}

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error('the store measures run with node --expose-gc');
  collect();
  collect();
}

/** Today's code: the commit before the blob index first appeared, built in `work`. */
async function buildToday(work: string): Promise<Build> {
  const git = async (...args: string[]): Promise<string> => {
    const r = await run('git', args, { cwd: ROOT });
    if (r.code !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const first = process.env['BENCH_BASE_REV'] ? undefined : (await git('log', '--reverse', '--format=%H', '--', 'src/cache/blob-index.ts')).split('\n')[0];
  const rev = process.env['BENCH_BASE_REV'] ?? `${first}^`;
  const label = await git('rev-parse', '--short', rev);
  const dir = path.join(work, 'today');
  await mkdir(dir);
  const unpack = await run('sh', ['-c', `git archive "$0" | tar -x -C "$1"`, rev, dir], { cwd: ROOT });
  if (unpack.code !== 0) throw new Error(`git archive ${rev}: ${unpack.stderr}`);
  await run('ln', ['-s', path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules')]);
  const tsc = await run(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', dir]);
  if (tsc.code !== 0) throw new Error(`tsc of ${rev}: ${tsc.stdout}${tsc.stderr}`);
  return { label: `today (${label})`, bin: path.join(dir, 'bin/registry-edge.js'), cacheModules: path.join(dir, 'dist/src/cache') };
}

/** `n` blob files of FILE_BYTES under `dir`/blobs, named by random digests (start-up does not hash them). */
function generate(dir: string, n: number): void {
  const base = path.join(dir, 'blobs', 'sha256');
  for (let p = 0; p < 256; p++) mkdirSync(path.join(base, p.toString(16).padStart(2, '0')), { recursive: true });
  const content = Buffer.alloc(FILE_BYTES, 'b');
  // Synchronous: 10^6 files in about 40 s here, where thread-pool writes took longer.
  for (let i = 0; i < n; i++) {
    const hex = randomBytes(32).toString('hex');
    writeFileSync(path.join(base, hex.slice(0, 2), hex), content);
  }
}

interface Start {
  readySeconds: number;
  /** The store's own report of its start (this build only). */
  index?: { seconds: number; dirsRead: number };
  rssMiB: number;
  stopSeconds: number;
}

/** Spawn to the first 200 of /readyz of `bin serve` on `cacheDir`, then a timed SIGTERM. */
async function timeStart(bin: string, cacheDir: string, upstream: string, work: string): Promise<Start> {
  const logFile = path.join(work, `edge-${Date.now()}.log`);
  const started = performance.now();
  const proc = startProcess(process.execPath, [bin, 'serve'], {
    logFile,
    killAfterMs: 120_000,
    env: {
      ...process.env,
      REGISTRY_EDGE_HTTP_ADDR: '127.0.0.1:0',
      REGISTRY_EDGE_ADMIN_ADDR: '127.0.0.1:0',
      REGISTRY_EDGE_UPSTREAMS: upstream,
      REGISTRY_EDGE_CACHE_DIR: cacheDir,
      REGISTRY_EDGE_CACHE_MAXSIZE: '1TB',
      REGISTRY_EDGE_LOG_LEVEL: 'info',
    },
  });
  try {
    const line = await waitFor(
      () => {
        if (!proc.running()) throw new Error(`edge exited:\n${proc.logs()}`);
        return logLines<{ msg?: string; adminAddress?: string }>(proc.logs()).find((l) => l.msg === 'registry-edge listening');
      },
      { what: 'the edge to listen', timeoutMs: 600_000, intervalMs: 10 },
    );
    await waitFor(async () => (await httpRequest(`http://${line.adminAddress ?? ''}/readyz`)).status === 200, { what: '/readyz', intervalMs: 10 });
    const readySeconds = (performance.now() - started) / 1000;
    const rssMiB = (rssBytes(proc.pid) ?? 0) / MiB;
    const index = logLines<{ msg?: string; seconds?: number; dirsRead?: number }>(proc.logs()).find((l) => l.msg?.startsWith('blob index '));
    const stopping = performance.now();
    await proc.stop();
    return {
      readySeconds,
      rssMiB,
      stopSeconds: (performance.now() - stopping) / 1000,
      ...(index?.seconds !== undefined ? { index: { seconds: index.seconds, dirsRead: index.dirsRead ?? 0 } } : {}),
    };
  } finally {
    await proc.stop();
  }
}

/** An entry added and removed in every blob directory: each one's ctime moves, so the next start reads them all. */
function changeEveryDir(dir: string): void {
  const base = path.join(dir, 'blobs', 'sha256');
  for (const prefix of readdirSync(base)) {
    const file = path.join(base, prefix, 'touched');
    writeFileSync(file, '');
    unlinkSync(file);
  }
}

const storeStart = (s: Start): string => (s.index ? `${s.index.seconds.toFixed(2)} s, ${s.index.dirsRead}` : '');

interface InProcess {
  initSeconds: number;
  /** Heap the open store holds (its index), after a full collection. */
  heapMiB: number;
  evictionMicros: number;
}

/**
 * In a process of its own (so neither build's garbage, pending unlinks or JIT state
 * touches the other's figures): opens the BlobStore of `cacheModules` on `cacheDir`,
 * measures the heap its index takes, and the time per eviction.
 */
async function measureStore(cacheModules: string, cacheDir: string, n: number): Promise<InProcess> {
  const load = async <T>(file: string): Promise<T> => (await import(pathToFileURL(path.join(cacheModules, file)).href)) as T;
  const { BlobStore: Store } = await load<{ BlobStore: new (layout: object, options: StoreOptions, events: StoreEvents) => Store }>('blob-store.js');
  const { CacheLayout: Layout } = await load<{ CacheLayout: new (root: string) => object }>('layout.js');
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  const store = new Store(new Layout(cacheDir), { maxSize: n * FILE_BYTES, maxBlobSize: FILE_BYTES, fsync: false, syncReadMax: 0, openFiles: { max: 0, idleSeconds: 1 } }, {
    onSizeChange: () => undefined,
    onEvict: () => undefined,
    onSlowRead: () => undefined,
  });
  const started = performance.now();
  await store.init();
  const initSeconds = (performance.now() - started) / 1000;
  gc();
  const heapMiB = (process.memoryUsage().heapUsed - heapBefore) / MiB;
  // Each charge of one blob's bytes evicts the least recently used blob; the first ones warm the code up.
  for (let i = 0; i < WARM_UP; i++) store.charge(FILE_BYTES);
  const evicting = performance.now();
  for (let i = 0; i < EVICTIONS; i++) store.charge(FILE_BYTES);
  const evictionMicros = ((performance.now() - evicting) * 1000) / EVICTIONS;
  await store.close();
  return { initSeconds, heapMiB, evictionMicros };
}

async function inProcess(build: Build, cacheDir: string, n: number): Promise<InProcess> {
  const r = await run(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), 'store', build.cacheModules, cacheDir, String(n)]);
  if (r.code !== 0) throw new Error(`${build.label} store measure: ${r.stderr}`);
  return JSON.parse(r.stdout) as InProcess;
}

async function main(): Promise<void> {
  const work = tempDir('re-bench-index-');
  const upstream = createServer((_req, res) => res.end('{}'));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const rows: string[] = [];
  try {
    const today = await buildToday(work);
    const index: Build = { label: 'index', bin: EDGE_BIN, cacheModules: path.join(ROOT, 'dist/src/cache') };
    for (const n of SIZES) {
      const dir = path.join(work, `cache-${n}`);
      const generating = performance.now();
      generate(dir, n);
      console.error(`${n} blobs generated in ${((performance.now() - generating) / 1000).toFixed(1)} s`);
      const old = await timeStart(today.bin, dir, upstreamUrl, work);
      const walk = await timeStart(index.bin, dir, upstreamUrl, work);
      const snap = await timeStart(index.bin, dir, upstreamUrl, work);
      const snapshotMiB = statSync(path.join(dir, 'index', 'snapshot')).size / MiB;
      changeEveryDir(dir);
      const changed = await timeStart(index.bin, dir, upstreamUrl, work);
      console.error(`${n}: ready in ${old.readySeconds.toFixed(2)} s today, ${walk.readySeconds.toFixed(2)} s (walk), ${snap.readySeconds.toFixed(2)} s (snapshot), ${changed.readySeconds.toFixed(2)} s (every directory changed)`);
      const oldIn = await inProcess(today, dir, n);
      const newIn = await inProcess(index, dir, n);
      rows.push(
        `| ${n.toLocaleString('en')} | ${old.readySeconds.toFixed(2)} | ${walk.readySeconds.toFixed(2)} | ${snap.readySeconds.toFixed(2)} (${storeStart(snap)}) | ${changed.readySeconds.toFixed(2)} (${storeStart(changed)}) | ${(old.readySeconds / snap.readySeconds).toFixed(1)}× | ${snap.stopSeconds.toFixed(2)} | ${snapshotMiB.toFixed(1)} | ${old.rssMiB.toFixed(0)} / ${snap.rssMiB.toFixed(0)} | ${oldIn.heapMiB.toFixed(1)} / ${newIn.heapMiB.toFixed(1)} | ${oldIn.evictionMicros.toFixed(2)} / ${newIn.evictionMicros.toFixed(2)} |`,
      );
      const removing = performance.now();
      rmSync(dir, { recursive: true, force: true });
      console.error(`${n}: directory removed in ${((performance.now() - removing) / 1000).toFixed(1)} s`);
    }
    console.log(`today: ${today.label}; index: this build; ${FILE_BYTES}-byte blobs, page cache warm, ${EVICTIONS} evictions per size`);
    console.log('');
    console.log('| blobs | today: spawn to /readyz 200 (s) | index, first start: walk (s) | index, restart (s; store init, directories read) | index, restart after every directory changed (s; same) | today / restart | shutdown with snapshot write (s) | snapshot MiB | RSS after ready MiB, today / index | heap of the open store MiB, today / index | µs per eviction, today / index |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const r of rows) console.log(r);
  } finally {
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
    removeDir(work);
  }
}

const [mode, cacheModules, cacheDir, n] = process.argv.slice(2);
const work = mode === 'store' && cacheModules && cacheDir ? measureStore(cacheModules, cacheDir, Number(n)).then((m) => console.log(JSON.stringify(m))) : main();
work.catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
