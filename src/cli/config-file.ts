/** The config file as commands name it (`--config FILE`), and how its warnings and problems are printed. */
import { ConfigError } from '../config/load.js';
import { UsageError, type ParsedArgs } from './args.js';

export const DEFAULT_CONFIG = 'config/registry-edge.yaml';

/** `--config FILE`, or (where the command takes one) the file as its positional argument. */
export function configFile(parsed: ParsedArgs): string {
  const flag = parsed.values.get('--config');
  const [positional] = parsed.positionals;
  if (flag !== undefined && positional !== undefined) throw new UsageError(`the config is given twice (${positional} and --config ${flag}); give one`);
  return flag ?? positional ?? DEFAULT_CONFIG;
}

/** A key that loads but does nothing: one line on stderr, start-up goes on. */
export const warnConfig = (line: string): void => void process.stderr.write(`config: warning: ${line}\n`);

/** One line per problem, as the loader's: `config: <key>: <cause>`. */
export function configProblems(err: ConfigError): string {
  return err.problems.map((line) => `config: ${line}\n`).join('');
}
