/** `registry-edge cache stats|ls|verify|gc|rm`: look into and maintain a cache directory, also next to a running edge. */
import { stat } from 'node:fs/promises';
import { loadConfig } from '../config/load.js';
import { parseBytes } from '../config/units.js';
import { parseDigest } from '../oci/grammar.js';
import { CommandFailure, UsageError, parseArgs, required, subcommand, type Command, type Io, type ParsedArgs } from './args.js';
import { CacheDir, type CachedFile } from './cache-dir.js';
import { configFile, warnConfig } from './config-file.js';

const USAGE = `usage:
  registry-edge cache stats [--admin URL] [--json]   sizes and counts; with --admin (the edge's admin.addr URL) hit ratios
  registry-edge cache ls [--repositories] [--json]   blobs with size, last access and repositories; or per repository
  registry-edge cache verify                         re-hash every blob and manifest, remove damaged ones (exit 1 if any)
  registry-edge cache gc --max-size SIZE             remove least recently used blobs until the cache is within SIZE (10GiB)
  registry-edge cache rm DIGEST                      remove the blob and manifest of DIGEST
      each takes the cache as [--config FILE] (its cache.dir; default config/registry-edge.yaml) or --dir DIR;
      safe next to a running edge: only committed files are unlinked, never tmp/`;

const WHERE = ['--config FILE', '--dir DIR'];

async function cacheOf(parsed: ParsedArgs): Promise<{ dir: CacheDir; maxsize?: number }> {
  const dirFlag = parsed.values.get('--dir');
  if (dirFlag !== undefined && parsed.values.has('--config')) throw new UsageError('give --config or --dir, not both');
  const config = dirFlag === undefined ? loadConfig({ file: configFile(parsed), onWarning: warnConfig }) : undefined;
  const root = dirFlag ?? config?.cache.dir ?? '';
  const st = await stat(root).catch(() => undefined);
  if (!st?.isDirectory()) throw new CommandFailure(`no cache directory at ${root}`);
  return { dir: new CacheDir(root), ...(config ? { maxsize: config.cache.maxsize } : {}) };
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

function humanBytes(n: number): string {
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) [value, unit] = [value / 1024, unit + 1];
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

const sum = (files: readonly CachedFile[]): number => files.reduce((total, f) => total + f.size, 0);

/** Hits among lookups per kind, from the edge's registry_edge_cache_requests_total. */
async function hitRatios(adminUrl: string): Promise<Record<string, { hits: number; lookups: number; ratio: number }>> {
  const res = await fetch(new URL('/metrics', adminUrl)).catch((err: Error) => {
    throw new CommandFailure(`--admin: cannot reach ${adminUrl}: ${(err.cause as Error | undefined)?.message ?? err.message}`);
  });
  if (!res.ok) throw new CommandFailure(`--admin: ${adminUrl}/metrics answered ${res.status}`);
  const out: Record<string, { hits: number; lookups: number; ratio: number }> = {};
  for (const m of (await res.text()).matchAll(/^registry_edge_cache_requests_total\{([^}]*)\} (\S+)$/gm)) {
    const kind = /kind="([^"]*)"/.exec(m[1] ?? '')?.[1] ?? '';
    const entry = (out[kind] ??= { hits: 0, lookups: 0, ratio: 0 });
    entry.lookups += Number(m[2]);
    if (/result="hit"/.test(m[1] ?? '')) entry.hits += Number(m[2]);
    entry.ratio = entry.lookups > 0 ? entry.hits / entry.lookups : 0;
  }
  return out;
}

async function stats(args: readonly string[], io: Io): Promise<number> {
  const parsed = parseArgs(args, { values: [...WHERE, '--admin URL'], switches: ['--json'] });
  const { dir, maxsize } = await cacheOf(parsed);
  const [blobs, manifests, tags, repos] = await Promise.all([dir.files('blobs'), dir.files('manifests'), dir.tags(), dir.repositories()]);
  const admin = parsed.values.get('--admin');
  const report = {
    dir: dir.layout.root,
    blobs: { count: blobs.length, bytes: sum(blobs) },
    manifests: { count: manifests.length, bytes: sum(manifests) },
    tags: tags.length,
    repositories: new Set([...repos.values()].flatMap((s) => [...s])).size,
    inProgressBytes: await dir.inProgressBytes(),
    ...(maxsize !== undefined ? { maxsize } : {}),
    ...(admin !== undefined ? { hitRatio: await hitRatios(admin) } : {}),
  };
  if (parsed.switches.has('--json')) {
    io.stdout.write(JSON.stringify(report, null, 2) + '\n');
    return 0;
  }
  const used = report.blobs.bytes + report.manifests.bytes;
  const lines = [
    `cache ${report.dir}`,
    `blobs: ${report.blobs.count} (${humanBytes(report.blobs.bytes)})`,
    `manifests: ${report.manifests.count} (${humanBytes(report.manifests.bytes)})`,
    `tags: ${report.tags}`,
    `repositories: ${report.repositories}`,
    `fills in progress: ${humanBytes(report.inProgressBytes)}`,
    `used: ${humanBytes(used)}${maxsize !== undefined ? ` of ${humanBytes(maxsize)} (cache.maxsize, ${((100 * used) / maxsize).toFixed(1)}%)` : ''}`,
    ...Object.entries(report.hitRatio ?? {}).map(([kind, r]) => `${kind} hit ratio: ${(100 * r.ratio).toFixed(1)}% (${r.hits} of ${r.lookups} lookups)`),
  ];
  io.stdout.write(lines.join('\n') + '\n');
  return 0;
}

async function ls(args: readonly string[], io: Io): Promise<number> {
  const parsed = parseArgs(args, { values: WHERE, switches: ['--json', '--repositories'] });
  const { dir } = await cacheOf(parsed);
  const [blobs, repos] = await Promise.all([dir.files('blobs'), dir.repositories()]);
  blobs.sort((a, b) => b.lastAccess - a.lastAccess);
  const json = parsed.switches.has('--json');
  if (parsed.switches.has('--repositories')) {
    const byRepo = new Map<string, { blobs: number; bytes: number }>();
    for (const blob of blobs) {
      for (const repo of repos.get(blob.digest.value) ?? []) {
        const entry = byRepo.get(repo) ?? { blobs: 0, bytes: 0 };
        byRepo.set(repo, { blobs: entry.blobs + 1, bytes: entry.bytes + blob.size });
      }
    }
    const rows = [...byRepo].sort(([a], [b]) => a.localeCompare(b)).map(([repository, e]) => ({ repository, ...e }));
    print(io, json, rows, (r) => `${r.repository}\t${r.blobs} blobs\t${humanBytes(r.bytes)}`);
    return 0;
  }
  const rows = blobs.map((b) => ({ digest: b.digest.value, size: b.size, lastAccess: new Date(b.lastAccess).toISOString(), repositories: [...(repos.get(b.digest.value) ?? [])].sort() }));
  print(io, json, rows, (r) => `${r.digest}\t${r.size}\t${r.lastAccess}\t${r.repositories.join(',') || '-'}`);
  return 0;
}

/** Rows as JSON, or one tab-separated line each (for cut and sort). */
function print<T>(io: Io, json: boolean, rows: readonly T[], line: (row: T) => string): void {
  io.stdout.write(json ? JSON.stringify(rows, null, 2) + '\n' : rows.map((r) => line(r) + '\n').join(''));
}

const tty = (io: Io): boolean => io.stderr.isTTY === true;

/** A bar redrawn in place on a terminal; elsewhere (a log, a pipe) a plain line every tenth of the way. */
function progress(io: Io, total: number, totalBytes: number): { step(done: number, bytes: number): void; end(): void } {
  let shownTenth = 0;
  return {
    step(done, bytes) {
      const text = `verified ${done}/${total} files, ${humanBytes(bytes)} of ${humanBytes(totalBytes)}`;
      if (tty(io)) {
        const width = 30;
        const filled = total === 0 ? width : Math.round((done / total) * width);
        io.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}`);
      } else if (Math.floor((done / total) * 10) > shownTenth || done === total) {
        shownTenth = Math.floor((done / total) * 10);
        io.stderr.write(text + '\n');
      }
    },
    end() {
      if (tty(io)) io.stderr.write('\n');
    },
  };
}

async function verify(args: readonly string[], io: Io): Promise<number> {
  const parsed = parseArgs(args, { values: WHERE });
  const { dir } = await cacheOf(parsed);
  const files = [...(await dir.files('blobs')).map((f) => ({ f, kind: 'blobs' as const })), ...(await dir.files('manifests')).map((f) => ({ f, kind: 'manifests' as const }))];
  const bar = progress(io, files.length, files.reduce((t, { f }) => t + f.size, 0));
  const damaged: string[] = [];
  let bytes = 0;
  for (const [i, { f, kind }] of files.entries()) {
    const ok = await dir.intact(f, kind).catch((err: NodeJS.ErrnoException) => {
      // Evicted by the edge while this ran: nothing left to check.
      if (err.code === 'ENOENT') return true;
      throw err;
    });
    if (!ok) {
      await dir.remove(f);
      damaged.push(`${kind === 'blobs' ? 'blob' : 'manifest'} ${f.digest.value}`);
      io.stderr.write(`${tty(io) ? '\n' : ''}damaged ${damaged[damaged.length - 1]}: removed (the next pull fetches it again)\n`);
    }
    bytes += f.size;
    bar.step(i + 1, bytes);
  }
  bar.end();
  io.stdout.write(`${files.length} files verified, ${damaged.length} damaged and removed\n`);
  return damaged.length > 0 ? 1 : 0;
}

async function gc(args: readonly string[], io: Io): Promise<number> {
  const parsed = parseArgs(args, { values: [...WHERE, '--max-size SIZE'] });
  const text = required(parsed, '--max-size');
  const limit = parseBytes(text);
  if (limit === undefined) throw new UsageError(`--max-size: ${JSON.stringify(text)} is not a size like 512MiB or 10GiB`);
  const { dir } = await cacheOf(parsed);
  const blobs = (await dir.files('blobs')).sort((a, b) => a.lastAccess - b.lastAccess);
  // Manifests are small and count against cache.maxsize too; only blobs are removed.
  let used = sum(blobs) + sum(await dir.files('manifests'));
  let removed = 0;
  let freed = 0;
  for (const blob of blobs) {
    if (used <= limit) break;
    if (await dir.remove(blob)) [removed, freed] = [removed + 1, freed + blob.size];
    used -= blob.size;
  }
  io.stdout.write(`removed ${removed} blobs (${humanBytes(freed)}); ${humanBytes(used)} left${used > limit ? `, still above ${humanBytes(limit)}: the rest is manifests` : ''}\n`);
  return 0;
}

async function rm(args: readonly string[], io: Io): Promise<number> {
  const parsed = parseArgs(args, { values: WHERE, positionals: 1 });
  const [text] = parsed.positionals;
  const digest = text === undefined ? undefined : parseDigest(text);
  if (!digest) throw new UsageError(text === undefined ? 'missing DIGEST' : `${JSON.stringify(text)} is not a digest (sha256:<64 hex>)`);
  const { dir } = await cacheOf(parsed);
  const blob = await dir.remove({ path: dir.layout.blobPath(digest) });
  const manifest = await dir.remove({ path: dir.layout.manifestPath(digest) });
  if (!blob && !manifest) throw new CommandFailure(`${digest.value} is not in the cache`);
  io.stdout.write(`removed ${[blob ? 'blob' : '', manifest ? 'manifest' : ''].filter(Boolean).join(' and ')} ${digest.value}\n`);
  return 0;
}

type Subcommand = (args: readonly string[], io: Io) => Promise<number>;

const SUBCOMMANDS: Readonly<Record<string, Subcommand>> = { stats, ls, verify, gc, rm };

export const command: Command = {
  usage: USAGE,
  run(args, io) {
    const [sub, rest] = subcommand(args, 'cache', Object.keys(SUBCOMMANDS));
    return (SUBCOMMANDS[sub] as Subcommand)(rest, io);
  },
};
