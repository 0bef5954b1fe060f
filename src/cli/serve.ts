/**
 * `serve [FILE | --config FILE]`: start the edge. Until it listens, any failure ends
 * start-up with exit 2 (one line on stderr); once serving, no error ends the process
 * (src/runtime/uncaught.ts).
 */
import cluster from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { ConfigError, loadConfig } from '../config/load.js';
import { checkFiles } from '../config/preflight.js';
import { describeCause } from '../config/problem.js';
import type { Config } from '../config/schema.js';
import { startEdge, type RunningEdge } from '../edge.js';
import { createLogger, type Logger } from '../log/logger.js';
import { keepServing } from '../runtime/uncaught.js';
import { WorkerStartFailed, runPrimary, workerCount, type RunningPrimary } from '../workers/primary.js';
import { workerSetup } from '../workers/worker.js';
import { parseArgs, type Command } from './args.js';
import { DEFAULT_CONFIG, configFile, configProblems, warnConfig } from './config-file.js';

const USAGE = `usage:
  registry-edge serve [FILE | --config FILE] [--pretty]
      start the edge with the config FILE (default ${DEFAULT_CONFIG});
      REGISTRY_EDGE_<KEY> variables override its keys (registry-edge config reference);
      --pretty: log lines for a person, not JSON`;

/**
 * Until the edge listens, any failure (a thrown step, an error event nobody listens to)
 * ends start-up with exit 2: a known one as its config line, anything else as one line
 * on stderr with the stack in the log.
 */
function failStartup(log: Logger, err: unknown): never {
  // The worker that failed said why on the shared stderr.
  if (err instanceof WorkerStartFailed) process.exit(2);
  if (err instanceof ConfigError) process.stderr.write(configProblems(err));
  else {
    log.error({ err }, 'start-up failed');
    log.flush();
    process.stderr.write(`registry-edge: start-up failed: ${describeCause(err)} (the log has the details)\n`);
  }
  process.exit(2);
}

async function serve(file: string, pretty: boolean): Promise<void> {
  const config = loadConfig({ file, onWarning: warnConfig });
  const log = createLogger({ ...config.log, pretty });
  const onStartupFault = (err: unknown): never => failStartup(log, err);
  process.on('uncaughtException', onStartupFault);
  process.on('unhandledRejection', onStartupFault);
  const worker = cluster.isWorker ? workerSetup(config) : undefined;
  const count = workerCount(config);
  let started: { readonly primary: RunningPrimary } | { readonly edge: RunningEdge };
  try {
    // The primary checks the files once for all its workers.
    const problems = worker ? [] : await checkFiles(config, { keep: true });
    if (problems.length > 0) throw new ConfigError(problems);
    started = !worker && count > 1
      ? { primary: await runPrimary(config, count, log) }
      : { edge: await startEdge(worker?.config ?? config, worker ? log.child({ worker: worker.role.id }) : log, worker?.role) };
  } catch (err) {
    failStartup(log, err);
  } finally {
    process.off('uncaughtException', onStartupFault);
    process.off('unhandledRejection', onStartupFault);
  }
  if ('primary' in started) {
    // It serves no request: an error escaping it is logged, and it goes on supervising.
    keepServing(log, () => undefined);
    await started.primary.stopped;
    log.info('stopped');
    log.flush();
    process.exit(0);
  }
  const { edge } = started;
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
  if (worker) {
    // prom-client answers the primary's metrics requests from this worker's registry.
    new AggregatorRegistry();
    AggregatorRegistry.setRegistries([edge.metrics.registry]);
    process.send?.({ type: 'registry-edge:ready', ready: { httpAddress: edge.httpAddress, plainAddress: edge.plainAddress, adminAddress: edge.adminAddress, tls: edge.tls } });
    worker.onOrphaned(() => stop('primary gone'));
  }
}

export const command: Command = {
  usage: USAGE,
  async run(args) {
    const parsed = parseArgs(args, { values: ['--config FILE'], switches: ['--pretty'], positionals: 1 });
    await serve(configFile(parsed), parsed.switches.has('--pretty'));
    return 0;
  },
};
