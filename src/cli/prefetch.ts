/**
 * `registry-edge prefetch IMAGE[:tag|@digest]... [--platform os/arch]... [--admin URL]
 * [--token-file F]`: asks a running edge (its admin listener's POST /prefetch) to put
 * images into its cache now, and shows the progress it streams back.
 *
 * Exit codes: 0 every blob is cached, 1 anything failed (a blob, an image, the edge
 * unreachable or refusing the token), 2 bad usage.
 */
import { readFile } from 'node:fs/promises';
import { request } from 'undici';
import type { ProgressEvent, Tally } from '../prewarm/progress.js';
import type { Command } from './args.js';
import { PlainRenderer, TtyRenderer, type Output, type Renderer } from './prefetch-render.js';

export const PREFETCH_USAGE = `  registry-edge prefetch IMAGE[:tag|@digest]... [--platform os/arch]... [--admin URL] [--token-file F]
                                               fetch images into a running edge's cache now (token: --token-file
                                               or REGISTRY_EDGE_PREWARM_TOKEN; admin default http://127.0.0.1:5001)`;

const DEFAULT_ADMIN = 'http://127.0.0.1:5001';
export const TOKEN_ENV = 'REGISTRY_EDGE_PREWARM_TOKEN';

interface Invocation {
  readonly images: readonly string[];
  readonly platforms: readonly string[];
  readonly admin: string;
  readonly tokenFile: string | undefined;
}

export interface Terminal {
  readonly out: Output & { readonly isTTY?: boolean };
  readonly err: Output;
  readonly env: NodeJS.ProcessEnv;
}

function parseArgs(args: readonly string[]): Invocation | string {
  const images: string[] = [];
  const platforms: string[] = [];
  let admin = DEFAULT_ADMIN;
  let tokenFile: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    if (flag === '--platform' || flag === '--admin' || flag === '--token-file') {
      const value = flag === arg ? args[++i] : arg.slice(eq + 1);
      if (!value || value.startsWith('--')) return `${flag} needs a value`;
      if (flag === '--platform') platforms.push(value);
      else if (flag === '--admin') admin = value.replace(/\/+$/, '');
      else tokenFile = value;
    } else if (arg.startsWith('-')) return `unknown option ${arg}`;
    else images.push(arg);
  }
  if (images.length === 0) return 'prefetch needs at least one IMAGE';
  if (!/^https?:\/\/[^/]+$/.test(admin)) return `--admin ${admin}: expected the admin listener's URL, e.g. ${DEFAULT_ADMIN}`;
  return { images, platforms, admin, tokenFile };
}

async function token(inv: Invocation, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (inv.tokenFile !== undefined) return (await readFile(inv.tokenFile, 'utf8')).trim();
  return env[TOKEN_ENV] || undefined;
}

/** Lines of NDJSON from a byte stream, as they complete. */
async function* ndjson(body: AsyncIterable<Buffer>): AsyncGenerator<ProgressEvent> {
  let rest = '';
  for await (const chunk of body) {
    const lines = (rest + chunk.toString('utf8')).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) yield JSON.parse(line) as ProgressEvent;
  }
  if (rest.trim()) yield JSON.parse(rest) as ProgressEvent;
}

export async function runPrefetchCommand(args: readonly string[], term: Terminal): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    term.out.write(`usage:\n${PREFETCH_USAGE}\n`);
    return 0;
  }
  const inv = parseArgs(args);
  const fail = (code: number, message: string): number => {
    term.err.write(`registry-edge prefetch: ${message}\n`);
    return code;
  };
  if (typeof inv === 'string') return fail(2, `${inv}\nusage:\n${PREFETCH_USAGE}`);
  let secret: string | undefined;
  try {
    secret = await token(inv, term.env);
  } catch (err) {
    return fail(2, `--token-file: cannot read ${inv.tokenFile}: ${(err as Error).message}`);
  }
  if (!secret) return fail(2, `a token is needed: --token-file F or ${TOKEN_ENV} (the edge's prewarm.token)`);
  const body = JSON.stringify(inv.platforms.length ? { images: inv.images, platforms: inv.platforms } : { images: inv.images });
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(`${inv.admin}/prefetch`, { method: 'POST', headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' }, body });
  } catch (err) {
    return fail(1, `cannot reach the edge's admin listener at ${inv.admin}: ${(err as Error).message}`);
  }
  if (res.statusCode !== 200) {
    const text = await res.body.text();
    let reason = text.trim();
    try {
      reason = (JSON.parse(text) as { error?: string }).error ?? reason;
    } catch {
      // not JSON: said as it came
    }
    const hint = res.statusCode === 401 ? ' (the token is not the edge\'s prewarm.token)' : res.statusCode === 404 ? ' (prewarm.token is not set on that edge, or it is not the admin listener)' : '';
    return fail(res.statusCode === 400 ? 2 : 1, `${inv.admin} answered ${res.statusCode}: ${reason}${hint}`);
  }
  const renderer: Renderer = term.out.isTTY ? new TtyRenderer(term.out) : new PlainRenderer(term.out);
  let summary: Tally | undefined;
  try {
    for await (const event of ndjson(res.body)) {
      renderer.show(event);
      if (event.event === 'summary') summary = event;
    }
  } catch (err) {
    return fail(1, `the edge's answer broke off: ${(err as Error).message}`);
  }
  if (!summary) return fail(1, 'the edge ended its answer without a summary');
  return summary.failed === 0 && summary.imagesFailed === 0 ? 0 : 1;
}

export const command: Command = {
  usage: `usage:\n${PREFETCH_USAGE}`,
  run: (args, io) => runPrefetchCommand(args, { out: io.stdout, err: io.stderr, env: process.env }),
};
