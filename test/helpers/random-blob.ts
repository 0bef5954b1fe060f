// A blob of random bytes pushed straight to the stack's registry (never through the edge),
// so the edge's first request for it is a miss.
import * as path from 'node:path';
import { pushBlob, randomFile } from './image.js';
import type { Stack } from './stack.js';

let made = 0;

export async function pushRandomBlob(stack: Pick<Stack, 'work' | 'registry'>, repo: string, size: number): Promise<{ digest: string; size: number }> {
  const file = path.join(stack.work, `random-blob-${++made}.bin`);
  await randomFile(file, size);
  return pushBlob(stack.registry.url, repo, file);
}
