/**
 * The coordinator of an edge with no zone: it fetches every miss itself and shares no
 * facts. `claimOnce` still dedupes within the process (a notification delivered twice).
 */
import { LRUCache } from 'lru-cache';
import type { Coordinator, FillClaim } from './coordinator.js';

/** A lease of this process alone: what every coordinator answers when the zone or host cannot be asked. */
export const LONE_LEASE: FillClaim = { kind: 'lease', lease: { release: async () => undefined } };

/** Ids remembered for claimOnce; a notification burst larger than this may run an event twice. */
const MAX_CLAIMS = 100_000;

export class SoloCoordinator implements Coordinator {
  private readonly claimed = new LRUCache<string, true>({ max: MAX_CLAIMS, ttlAutopurge: false, ttl: 1 });

  async claimFill(): Promise<FillClaim> {
    return LONE_LEASE;
  }

  async takeOver(): Promise<FillClaim> {
    return LONE_LEASE;
  }

  async holding(): Promise<void> {}

  async claimOnce(id: string, ttlMs: number): Promise<boolean> {
    if (this.claimed.get(id)) return false;
    this.claimed.set(id, true, { ttl: Math.max(1, ttlMs) });
    return true;
  }

  async getTag(): Promise<undefined> {
    return undefined;
  }

  async putTag(): Promise<void> {}

  async hasMember(): Promise<boolean> {
    return false;
  }

  async addMembers(): Promise<void> {}

  async hasDecision(): Promise<boolean> {
    return false;
  }

  async putDecision(): Promise<void> {}

  async close(): Promise<void> {}
}
