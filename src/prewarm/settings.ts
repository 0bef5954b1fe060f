/** What `prewarm.*` values must be beyond their types: globs and platforms that parse. */
import type { Config } from '../config/schema.js';
import { globProblem } from './glob.js';
import { parsePlatform } from './platforms.js';

/** One problem line per bad value; `named` gives a key as problem lines name it (with its env variable when set there). */
export function prewarmProblems(settings: Config['prewarm'], named: (path: string) => string): string[] {
  const problems: string[] = [];
  for (const key of ['include', 'exclude'] as const) {
    for (const glob of settings[key]) {
      const problem = globProblem(glob);
      if (problem) problems.push(`${named(`prewarm.${key}`)}: ${JSON.stringify(glob)} is not allowed; ${problem}`);
    }
  }
  for (const platform of settings.platforms) {
    if (!parsePlatform(platform)) problems.push(`${named('prewarm.platforms')}: ${JSON.stringify(platform)} is not allowed; expected os/arch or os/arch/variant, e.g. linux/amd64`);
  }
  return problems;
}
