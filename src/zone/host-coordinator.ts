/**
 * The coordinator of one worker of a host (workers: N): each call is a question to the
 * primary over the cluster's IPC channel (src/workers/host-state.ts answers it). A blob
 * another worker is filling is followed through that worker's loopback peer listener,
 * as a replica follows another replica. Once the primary is gone every answer is a lone
 * edge's, as with a Redis that does not answer.
 */
import type { TagMapping } from '../cache/manifest-store.js';
import type { HostAnswer, HostCall, PrimaryMessage, WorkerMessage } from '../workers/messages.js';
import type { Coordinator, FillClaim } from './coordinator.js';
import { LONE_LEASE } from './solo.js';

/** The worker's end of the IPC channel (process, in a cluster worker). */
export interface HostChannel {
  readonly connected: boolean;
  send(message: WorkerMessage): void;
}

export class HostCoordinator implements Coordinator {
  private readonly channel: HostChannel;
  private readonly pending = new Map<number, (answer: HostAnswer | undefined) => void>();
  private nextId = 1;
  private readonly peerUrl: Promise<string>;
  private setUrl: (url: string) => void = () => undefined;

  constructor(channel: HostChannel) {
    this.channel = channel;
    this.peerUrl = new Promise((resolve) => {
      this.setUrl = resolve;
    });
  }

  /** The loopback peer listener is up: fills may be claimed (the others follow them there). */
  listening(url: string): void {
    this.setUrl(url);
  }

  /** An answer from the primary (the worker's message handler passes them on). */
  answered(message: PrimaryMessage & { type: 'registry-edge:answer' }): void {
    this.pending.get(message.id)?.(message.answer);
    this.pending.delete(message.id);
  }

  /** The primary is gone: what was asked is answered as a lone edge would. */
  disconnected(): void {
    for (const resolve of this.pending.values()) resolve(undefined);
    this.pending.clear();
  }

  private ask(call: HostCall): Promise<HostAnswer | undefined> {
    if (!this.channel.connected) return Promise.resolve(undefined);
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      try {
        this.channel.send({ type: 'registry-edge:call', id, call });
      } catch {
        this.pending.delete(id);
        resolve(undefined);
      }
    });
  }

  private async fill(call: HostCall & { digest: string }): Promise<FillClaim> {
    const answer = await this.ask(call);
    if (typeof answer !== 'object' || answer === null || !('kind' in answer)) return LONE_LEASE;
    if (answer.kind === 'peer') return answer;
    let released = false;
    const digest = call.digest;
    return {
      kind: 'lease',
      lease: {
        release: async () => {
          if (released) return;
          released = true;
          await this.ask({ op: 'release', digest });
        },
      },
    };
  }

  async claimFill(digest: string): Promise<FillClaim> {
    return this.fill({ op: 'claimFill', digest, peer: await this.peerUrl });
  }

  async takeOver(digest: string, dead: string): Promise<FillClaim> {
    return this.fill({ op: 'takeOver', digest, peer: await this.peerUrl, dead });
  }

  /** The others find it on disk; this covers one that looked just before the rename. */
  async holding(digest: string, ttlMs: number): Promise<void> {
    await this.ask({ op: 'holding', digest, peer: await this.peerUrl, ttlMs });
  }

  async claimOnce(id: string, ttlMs: number): Promise<boolean> {
    return (await this.ask({ op: 'claimOnce', id, ttlMs })) !== false;
  }

  async getTag(key: string): Promise<TagMapping | undefined> {
    const answer = await this.ask({ op: 'getTag', key });
    return typeof answer === 'object' && answer !== null && 'digest' in answer ? answer : undefined;
  }

  async putTag(key: string, mapping: TagMapping, ttlMs: number): Promise<void> {
    await this.ask({ op: 'putTag', key, mapping, ttlMs });
  }

  async hasMember(repo: string, digest: string): Promise<boolean> {
    return (await this.ask({ op: 'hasMember', repo, digest })) === true;
  }

  async addMembers(repo: string, digests: readonly string[], ttlMs: number): Promise<void> {
    await this.ask({ op: 'addMembers', repo, digests, ttlMs });
  }

  async hasDecision(key: string): Promise<boolean> {
    return (await this.ask({ op: 'hasDecision', key })) === true;
  }

  async putDecision(key: string, ttlMs: number): Promise<void> {
    await this.ask({ op: 'putDecision', key, ttlMs });
  }

  async close(): Promise<void> {}
}
