/**
 * Command line: `serve`, `config check`, `config reference`, `certs`.
 *
 * Exit codes: 0 done (and a clean shutdown on SIGTERM/SIGINT); 1 the shutdown failed;
 * 2 bad usage, an invalid configuration or a failed start-up, each reported as one line
 * on stderr. Once serving, no error ends the process (src/runtime/uncaught.ts).
 */
import { CERTS_USAGE } from '../certs/usage.js';
import { ConfigError, configReference, loadConfig } from '../config/load.js';
import { checkFiles } from '../config/preflight.js';
import { describeCause } from '../config/problem.js';
import type { Config } from '../config/schema.js';
import { startEdge, type RunningEdge } from '../edge.js';
import { createLogger, type Logger } from '../log/logger.js';
import { keepServing } from '../runtime/uncaught.js';

const USAGE = `usage:
  registry-edge serve [--config FILE] [--pretty]
      start the edge (default config/registry-edge.yaml); --pretty: log lines for a person, not JSON
  registry-edge config check [--config FILE]   validate a config and the files it names; print it resolved
  registry-edge config reference               print every config key as Markdown
${CERTS_USAGE.replace(/^usage:\n/, '')}`;

const DEFAULT_CONFIG = 'config/registry-edge.yaml';

/** A command line that does not parse: one line, then the usage, exit 2. */
class UsageError extends Error {}

interface Flags {
  readonly config: string;
  readonly help: boolean;
}

function parseFlags(args: readonly string[], takesConfig: boolean): Flags {
  let config = DEFAULT_CONFIG;
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--help' || arg === '-h') help = true;
    else if (takesConfig && (arg === '--config' || arg.startsWith('--config='))) {
      const value = arg === '--config' ? args[++i] : arg.slice('--config='.length);
      if (!value || value.startsWith('--')) throw new UsageError('--config needs a FILE');
      config = value;
    } else if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg}`);
    else throw new UsageError(`unexpected argument ${arg}`);
  }
  return { config, help };
}

/** A key that loads but does nothing: one line on stderr, start-up goes on. */
const warnConfig = (line: string): void => void process.stderr.write(`config: warning: ${line}\n`);

/** One line per problem, as the loader's: `config: <key>: <cause>`. */
function configProblems(err: ConfigError): string {
  return err.problems.map((line) => `config: ${line}\n`).join('');
}

async function checkConfig(file: string): Promise<void> {
  const config = loadConfig({ file, onWarning: warnConfig });
  const problems = await checkFiles(config, { keep: false });
  if (problems.length > 0) throw new ConfigError(problems);
  process.stdout.write(JSON.stringify(config, null, 2) + '\n');
}

/**
 * Until the edge listens, any failure (a thrown step, an error event nobody listens to)
 * ends start-up with exit 2: a known one as its config line, anything else as one line
 * on stderr with the stack in the log.
 */
function failStartup(log: Logger, err: unknown): never {
  if (err instanceof ConfigError) process.stderr.write(configProblems(err));
  else {
    log.error({ err }, 'start-up failed');
    log.flush();
    process.stderr.write(`registry-edge: start-up failed: ${describeCause(err)} (the log has the details)\n`);
  }
  process.exit(2);
}

async function serve(file: string, pretty = false): Promise<void> {
  const config = loadConfig({ file, onWarning: warnConfig });
  const log = createLogger({ ...config.log, pretty });
  const onStartupFault = (err: unknown): never => failStartup(log, err);
  process.on('uncaughtException', onStartupFault);
  process.on('unhandledRejection', onStartupFault);
  let edge: RunningEdge;
  try {
    const problems = await checkFiles(config, { keep: true });
    if (problems.length > 0) throw new ConfigError(problems);
    edge = await startEdge(config, log);
  } catch (err) {
    failStartup(log, err);
  } finally {
    process.off('uncaughtException', onStartupFault);
    process.off('unhandledRejection', onStartupFault);
  }
  keepServing(log, (kind) => edge.metrics.uncaughtErrors.inc({ kind }));
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    edge.close().then(
      () => {
        log.flush();
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  // SIGHUP, as nginx: re-read the config file, apply the upstream list and TLS files; keep the old on error.
  process.on('SIGHUP', () => {
    let next: Config;
    try {
      next = loadConfig({ file, onWarning: warnConfig });
    } catch (err) {
      log.error({ problems: err instanceof ConfigError ? err.problems : [(err as Error).message] }, 'config reload refused');
      return;
    }
    edge.reload(next).catch((err: unknown) => log.error({ err }, 'reload failed'));
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

async function run(argv: readonly string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined) throw new UsageError('no command given');
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  if (command === 'certs') {
    // Loaded on demand: node-forge is ~12 MiB of RSS that `serve` does not need.
    const { runCertsCommand } = await import('../certs/cli.js');
    process.exitCode = await runCertsCommand(rest, process.stdout, process.stderr);
    return;
  }
  const [sub, ...subRest] = rest;
  if (command === 'config' && (sub === '--help' || sub === '-h')) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const action =
    command === 'serve' ? { args: rest.filter((a) => a !== '--pretty'), takesConfig: true, run: (file: string) => serve(file, rest.includes('--pretty')) }
    : command === 'config' && sub === 'check' ? { args: subRest, takesConfig: true, run: checkConfig }
    : command === 'config' && sub === 'reference' ? { args: subRest, takesConfig: false, run: async () => void process.stdout.write(configReference() + '\n') }
    : undefined;
  if (!action) throw new UsageError(command === 'config' ? `unknown config command ${sub ?? '(none)'}` : `unknown command ${command}`);
  const flags = parseFlags(action.args, action.takesConfig);
  if (flags.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  await action.run(flags.config);
}

export async function main(argv: string[]): Promise<void> {
  try {
    await run(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`registry-edge: ${err.message}\n${USAGE}\n`);
      process.exitCode = 2;
      return;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(configProblems(err));
      process.exit(2);
    }
    throw err;
  }
}
