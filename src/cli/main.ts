/** Command line: `serve`, `config check`, `config reference`. */
import { CERTS_USAGE } from '../certs/usage.js';
import { ConfigError, configReference, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { startEdge } from '../edge.js';
import { createLogger } from '../log/logger.js';

const USAGE = `usage:
  registry-edge serve [--config FILE]          start the edge (default config/registry-edge.yaml)
  registry-edge config check [--config FILE]   validate a config and print it resolved
  registry-edge config reference               print every config key as Markdown
${CERTS_USAGE.replace(/^usage:\n/, '')}`;

const DEFAULT_CONFIG = 'config/registry-edge.yaml';

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i >= 0) return args[i + 1];
  const inline = args.find((a) => a.startsWith(`${name}=`));
  return inline?.slice(name.length + 1);
}

function load(args: string[]): Config {
  return loadConfig({ file: option(args, '--config') ?? DEFAULT_CONFIG });
}

async function serve(args: string[]): Promise<void> {
  const file = option(args, '--config') ?? DEFAULT_CONFIG;
  const config = loadConfig({ file });
  const log = createLogger(config.log);
  const edge = await startEdge(config, log);
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
      next = loadConfig({ file });
    } catch (err) {
      log.error({ problems: err instanceof ConfigError ? err.problems : [(err as Error).message] }, 'config reload refused');
      return;
    }
    edge.reload(next).catch((err: unknown) => log.error({ err }, 'reload failed'));
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

export async function main(argv: string[]): Promise<void> {
  const [command, sub, ...rest] = argv;
  try {
    if (command === 'serve') return await serve(argv.slice(1));
    if (command === 'certs') {
      // Loaded on demand: node-forge is ~12 MiB of RSS that `serve` does not need.
      const { runCertsCommand } = await import('../certs/cli.js');
      process.exitCode = await runCertsCommand(argv.slice(1), process.stdout, process.stderr);
      return;
    }
    if (command === 'config' && sub === 'check') {
      process.stdout.write(JSON.stringify(load(rest), null, 2) + '\n');
      return;
    }
    if (command === 'config' && sub === 'reference') {
      process.stdout.write(configReference() + '\n');
      return;
    }
    process.stderr.write(USAGE + '\n');
    process.exitCode = 2;
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const line of err.problems) process.stderr.write(`config: ${line}\n`);
      process.exit(2);
    }
    throw err;
  }
}
