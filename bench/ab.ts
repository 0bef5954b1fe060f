// What the interleaved A/B tools (warm-ab, cold-pull-ab) share: their settings from the
// environment, a median, and a work directory plus the servers started in it, all
// removed on the way out, also on failure.
import { removeDir, tempDir } from '../test/helpers/proc.js';

export const MiB = 1024 * 1024;

/** Rounds to run (AB_ROUNDS). */
export function abRounds(fallback: number): number {
  return Number(process.env['AB_ROUNDS'] ?? fallback);
}

/** Node.js flags for the edge under test (AB_EDGE_NODE_ARGS, space-separated), e.g. --cpu-prof. */
export function edgeNodeArgs(): string[] {
  return (process.env['AB_EDGE_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
}

/** The middle value (the upper one of an even count); 0 for none. */
export function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
}

/**
 * Runs `body` with a fresh work directory and a list it pushes stop functions to; stops
 * everything (last started first) and removes the directory when it ends, and sets a
 * failing exit code if it throws.
 */
export function runAb(prefix: string, body: (work: string, stops: Array<() => Promise<void>>) => Promise<void>): void {
  const work = tempDir(prefix);
  const stops: Array<() => Promise<void>> = [];
  body(work, stops)
    .catch((err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    })
    .finally(async () => {
      for (const stop of stops.reverse()) await stop().catch(() => undefined);
      removeDir(work);
    });
}
