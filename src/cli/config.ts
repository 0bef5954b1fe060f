/** `config check` and `config reference`. */
import { dumpConfig } from '../config/dump.js';
import { ConfigError, configReference, loadConfig } from '../config/load.js';
import { checkFiles } from '../config/preflight.js';
import { parseArgs, subcommand, type Command, type Io } from './args.js';
import { DEFAULT_CONFIG, configFile, warnConfig } from './config-file.js';

const USAGE = `usage:
  registry-edge config check [FILE | --config FILE] [--show-secrets]
      validate the config (default ${DEFAULT_CONFIG}) and the files it names; print it resolved
      (env overrides applied, every key) as YAML that loads to the same config; passwords,
      secrets and tokens print as <hidden> unless --show-secrets
  registry-edge config reference
      print every config key as Markdown`;

async function check(args: readonly string[], io: Io): Promise<number> {
  const parsed = parseArgs(args, { values: ['--config FILE'], switches: ['--show-secrets'], positionals: 1 });
  const config = loadConfig({ file: configFile(parsed), onWarning: warnConfig });
  const problems = await checkFiles(config, { keep: false });
  if (problems.length > 0) throw new ConfigError(problems);
  const { yaml, masked } = dumpConfig(config, parsed.switches.has('--show-secrets'));
  io.stdout.write(yaml);
  if (masked.length > 0) io.stderr.write(`config: ${masked.join(', ')} printed as <hidden> (--show-secrets prints them)\n`);
  return 0;
}

export const command: Command = {
  usage: USAGE,
  async run(args, io) {
    const [sub, rest] = subcommand(args, 'config', ['check', 'reference']);
    if (sub === 'check') return check(rest, io);
    parseArgs(rest, {});
    io.stdout.write(configReference() + '\n');
    return 0;
  },
};
