/** The command line of one command: its flags, switches and positional arguments, and its usage. */

/** A command line that does not parse: one line, then the command's usage, exit 2. */
export class UsageError extends Error {}

/** --help or -h was given: main prints the command's usage and does nothing else. */
export class HelpRequested extends Error {}

/** An expected failure of a command's work (a missing file, a damaged blob): one line, exit 1. */
export class CommandFailure extends Error {}

export interface Io {
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

/** One command: its usage (printed by --help and after a usage error) and what it does; resolves with the exit code. */
export interface Command {
  readonly usage: string;
  run(args: readonly string[], io: Io): Promise<number>;
}

export interface ArgSpec {
  /** Flags that take a value, as the usage writes them: `'--out DIR'` (given as `--out DIR` or `--out=DIR`). */
  readonly values?: readonly string[];
  readonly switches?: readonly string[];
  /** How many positional arguments the command takes (default 0). */
  readonly positionals?: number;
}

export interface ParsedArgs {
  readonly values: ReadonlyMap<string, string>;
  readonly switches: ReadonlySet<string>;
  readonly positionals: readonly string[];
}

export function parseArgs(args: readonly string[], spec: ArgSpec): ParsedArgs {
  const values = new Map<string, string>();
  const switches = new Set<string>();
  const positionals: string[] = [];
  const metavars = new Map((spec.values ?? []).map((v) => [v.split(' ')[0] as string, v.split(' ')[1] ?? 'value']));
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    if (arg === '--help' || arg === '-h') throw new HelpRequested();
    else if (metavars.has(name)) {
      const value = name !== arg ? arg.slice(eq + 1) : args[++i];
      // `--out --force` almost always means a forgotten value, not a directory named "--force".
      if (value === undefined || value.startsWith('--')) throw new UsageError(`${name} needs a ${metavars.get(name)}`);
      values.set(name, value);
    } else if (spec.switches?.includes(arg)) switches.add(arg);
    else if (arg.startsWith('-') && arg !== '-') throw new UsageError(`unknown option ${arg}`);
    else positionals.push(arg);
  }
  if (positionals.length > (spec.positionals ?? 0)) throw new UsageError(`unexpected argument ${positionals[spec.positionals ?? 0]}`);
  return { values, switches, positionals };
}

export function required(parsed: ParsedArgs, name: string): string {
  const value = parsed.values.get(name);
  if (value === undefined || value === '') throw new UsageError(`missing ${name}`);
  return value;
}

export function positiveInt(parsed: ParsedArgs, name: string, max: number): number | undefined {
  const text = parsed.values.get(name);
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > max) throw new UsageError(`${name} must be a whole number from 1 to ${max}, got "${text}"`);
  return n;
}

/** A comma-separated list; spaces and a trailing comma from pasted lists are tolerated, duplicates dropped. */
export function list(text: string): string[] {
  return [...new Set(text.split(',').map((s) => s.trim()).filter(Boolean))];
}

/** The subcommand of a command that has several (`config check`); `--help` in its place asks for the usage. */
export function subcommand(args: readonly string[], command: string, known: readonly string[]): [string, string[]] {
  const [sub, ...rest] = args;
  if (sub === '--help' || sub === '-h' || sub === 'help') throw new HelpRequested();
  if (sub === undefined) throw new UsageError(`missing ${command} command (${known.join(', ')})`);
  if (!known.includes(sub)) throw new UsageError(`unknown ${command} command ${sub}`);
  return [sub, rest];
}
