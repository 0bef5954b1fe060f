// What the loader refuses in a config given by environment alone: its problem lines (none when it loads).
import { ConfigError, loadConfig } from '../../src/config/load.js';

export function envProblems(env: Record<string, string>): readonly string[] {
  try {
    loadConfig({ env });
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}
