/** `registry-edge certs init|show`: the argument handling around issue.ts and show.ts. */
import { readFile } from 'node:fs/promises';
import { CERTS_USAGE } from './usage.js';
import { initCertificates, nextSteps, validateHosts } from './issue.js';
import { describeCertificate, formatCertificateInfo } from './show.js';

export { CERTS_USAGE };

/** A mistake in the command line: reported with exit code 2, as opposed to a failure doing the work. */
class UsageError extends Error {}

interface ParsedArgs {
  values: Map<string, string>;
  switches: Set<string>;
  positionals: string[];
}

function takeValue(name: string, args: string[], i: number): string {
  const value = args[i + 1];
  // `--out --force` almost always means a forgotten value, not a directory named "--force".
  if (value === undefined || value.startsWith('--')) throw new UsageError(`${name} needs a value`);
  return value;
}

function parseArgs(args: string[], valueFlags: string[], switchFlags: string[]): ParsedArgs {
  const parsed: ParsedArgs = { values: new Map(), switches: new Set(), positionals: [] };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    if (valueFlags.includes(name)) {
      parsed.values.set(name, eq > 0 && name !== arg ? arg.slice(eq + 1) : takeValue(name, args, i++));
    } else if (switchFlags.includes(arg)) {
      parsed.switches.add(arg);
    } else if (arg.startsWith('-') && arg !== '-') {
      throw new UsageError(`unknown flag ${arg}`);
    } else {
      parsed.positionals.push(arg);
    }
  }
  return parsed;
}

function required(parsed: ParsedArgs, name: string): string {
  const value = parsed.values.get(name);
  if (value === undefined || value === '') throw new UsageError(`missing ${name}`);
  return value;
}

function positiveInt(parsed: ParsedArgs, name: string, max: number): number | undefined {
  const text = parsed.values.get(name);
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > max) throw new UsageError(`${name} must be a whole number from 1 to ${max}, got "${text}"`);
  return n;
}

function parseHosts(text: string): string[] {
  // Tolerates spaces and a trailing comma from pasted lists; duplicates would only repeat a SAN.
  const hosts = [...new Set(text.split(',').map((h) => h.trim()).filter(Boolean))];
  try {
    validateHosts(hosts);
  } catch (err) {
    throw new UsageError(`--hosts: ${(err as Error).message}`);
  }
  return hosts;
}

async function init(args: string[], out: NodeJS.WritableStream): Promise<number> {
  const parsed = parseArgs(args, ['--hosts', '--out', '--days', '--port'], ['--force']);
  if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument ${parsed.positionals[0]}`);
  const hosts = parseHosts(required(parsed, '--hosts'));
  const outDir = required(parsed, '--out');
  const days = positiveInt(parsed, '--days', 36500);
  const port = positiveInt(parsed, '--port', 65535);
  const written = await initCertificates({ hosts, outDir, days, force: parsed.switches.has('--force') });
  out.write(`wrote:\n  ${written.caCert}\n  ${written.caKey}\n  ${written.cert}\n  ${written.key}\n\n`);
  out.write(nextSteps({ hosts, outDir, port }));
  return 0;
}

async function show(args: string[], out: NodeJS.WritableStream): Promise<number> {
  const parsed = parseArgs(args, [], []);
  const [file, extra] = parsed.positionals;
  if (file === undefined) throw new UsageError('missing FILE (the certificate to show)');
  if (extra !== undefined) throw new UsageError(`unexpected argument ${extra}`);
  const pem = await readFile(file, 'utf8');
  out.write(formatCertificateInfo(describeCertificate(pem)));
  return 0;
}

function dispatch(args: string[], out: NodeJS.WritableStream): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'init') return init(rest, out);
  if (sub === 'show') return show(rest, out);
  if (sub === 'help' || sub === '--help' || sub === '-h') {
    out.write(CERTS_USAGE + '\n');
    return Promise.resolve(0);
  }
  throw new UsageError(sub === undefined ? 'missing subcommand (init or show)' : `unknown subcommand ${sub}`);
}

/** Runs `certs <args>`; resolves with the exit code: 0 done, 1 failed, 2 bad command line. */
export async function runCertsCommand(args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  try {
    return await dispatch(args, out);
  } catch (e) {
    if (e instanceof UsageError) {
      err.write(`certs: ${e.message}\n${CERTS_USAGE}\n`);
      return 2;
    }
    err.write(`certs: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
