/**
 * Command line: one module per command under src/cli/, loaded when named (node-forge, for
 * one, costs ~12 MiB of RSS that `serve` does not need).
 *
 * Exit codes: 0 done (and a clean shutdown on SIGTERM/SIGINT); 1 the shutdown failed, or a
 * command other than `serve` failed at its work (one line on stderr); 2 bad usage, an
 * invalid configuration or a failed start-up, each reported as one line on stderr. Once
 * serving, no error ends the process (src/runtime/uncaught.ts).
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/load.js';
import { CommandFailure, HelpRequested, UsageError, type Command, type Io } from './args.js';
import { configProblems } from './config-file.js';

interface Entry {
  /** The command's line in the overall usage. */
  readonly synopsis: string;
  readonly summary: string;
  readonly load: () => Promise<Command>;
}

const COMMANDS: Readonly<Record<string, Entry>> = {
  serve: { synopsis: 'serve [FILE | --config FILE] [--pretty]', summary: 'start the edge', load: async () => (await import('./serve.js')).command },
  config: { synopsis: 'config check|reference', summary: 'validate and print a config; every key as Markdown', load: async () => (await import('./config.js')).command },
  certs: { synopsis: 'certs init|renew|show', summary: 'a CA and the server certificate for TLS', load: async () => (await import('./certs.js')).command },
  'client-config': { synopsis: 'client-config --host HOST:PORT [...]', summary: 'Docker, containerd and registries.conf files for the edge', load: async () => (await import('./client-config.js')).command },
  'pull-secret': { synopsis: 'pull-secret --server HOST [...]', summary: 'a Kubernetes image pull Secret', load: async () => (await import('./pull-secret.js')).command },
  cache: { synopsis: 'cache stats|ls|verify|gc|rm', summary: 'look into and maintain the cache directory', load: async () => (await import('./cache.js')).command },
  prefetch: { synopsis: 'prefetch IMAGE... [--platform os/arch]', summary: "fetch images into a running edge's cache now", load: async () => (await import('./prefetch.js')).command },
};

const USAGE = `usage:\n${[...Object.values(COMMANDS), { synopsis: '--version', summary: '' }, { synopsis: 'COMMAND --help', summary: 'the usage of one command' }]
  .map((c) => `  registry-edge ${c.synopsis.padEnd(38)}${c.summary}`.trimEnd())
  .join('\n')}`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

const io: Io = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };

export async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V') {
    io.stdout.write(`registry-edge ${version()}\n`);
    return;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(USAGE + '\n');
    return;
  }
  const entry = name === undefined ? undefined : COMMANDS[name];
  if (!entry) {
    io.stderr.write(`registry-edge: ${name === undefined ? 'no command given' : `unknown command ${name}`}\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  const command = await entry.load();
  try {
    process.exitCode = await command.run(rest, io);
  } catch (err) {
    if (err instanceof HelpRequested) io.stdout.write(command.usage + '\n');
    else if (err instanceof UsageError) {
      io.stderr.write(`registry-edge: ${err.message}\n${command.usage}\n`);
      process.exitCode = 2;
    } else if (err instanceof ConfigError) {
      io.stderr.write(configProblems(err));
      process.exit(2);
    } else if (err instanceof CommandFailure || typeof (err as NodeJS.ErrnoException).errno === 'number') {
      // A failure of the work (or a system error: a file that cannot be read), not a bug: no stack.
      io.stderr.write(`registry-edge ${name}: ${(err as Error).message}\n`);
      process.exitCode = 1;
    } else throw err;
  }
}
