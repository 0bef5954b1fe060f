// The usual end-to-end set-up: a real registry, a counting/fault shim in front of it,
// and the edge in front of the shim, torn down in reverse order.
import { startEdge, type Edge, type EdgeOptions } from './edge.js';
import { removeDir, tempDir } from './proc.js';
import { startRegistry, type Registry } from './registry.js';
import { startShim, type Shim } from './shim.js';

export interface Stack {
  readonly work: string;
  readonly registry: Registry;
  readonly shim: Shim;
  edge: Edge;
  stop(): Promise<void>;
}

/** `before` runs once the registry and shim are up, before the edge starts (to push images first). */
export async function startStack(prefix: string, opts: { edge?: Partial<EdgeOptions>; before?: (s: Omit<Stack, 'edge' | 'stop'>) => Promise<void> } = {}): Promise<Stack> {
  const work = tempDir(prefix);
  // Whatever started is stopped again if a later step fails: a registry left running keeps the test process alive.
  const started: Array<() => Promise<void>> = [async () => removeDir(work)];
  const stopAll = async (): Promise<void> => {
    for (const stop of started.splice(0).reverse()) await stop();
  };
  let stack: Stack;
  try {
    const registry = await startRegistry();
    started.push(() => registry.dispose());
    const shim = await startShim(registry.url);
    started.push(() => shim.stop());
    await opts.before?.({ work, registry, shim });
    const edge = await startEdge({ workDir: work, upstreams: [shim.url], ...opts.edge });
    stack = {
      work,
      registry,
      shim,
      edge,
      async stop() {
        await stack.edge.stop();
        await stopAll();
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
  return stack;
}
