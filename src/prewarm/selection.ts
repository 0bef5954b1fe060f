/**
 * Which pushes are prefetched: `prewarm.include` and `prewarm.exclude`, globs over the
 * repository, or over `<repository>:<tag>` when the glob has a `:` (a repository name
 * never has one). Exclusion wins.
 */
import { compileGlob } from './glob.js';

type Matcher = (repository: string, tag: string) => boolean;

function matcher(pattern: string): Matcher {
  const test = compileGlob(pattern);
  return pattern.includes(':') ? (repository, tag) => test(`${repository}:${tag}`) : (repository) => test(repository);
}

export class Selection {
  private readonly include: readonly Matcher[];
  private readonly exclude: readonly Matcher[];

  constructor(include: readonly string[], exclude: readonly string[]) {
    this.include = include.map(matcher);
    this.exclude = exclude.map(matcher);
  }

  admits(repository: string, tag: string): boolean {
    return this.include.some((m) => m(repository, tag)) && !this.exclude.some((m) => m(repository, tag));
  }
}
