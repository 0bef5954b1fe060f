/**
 * What the primary and the workers of one host (workers: N) say to each other over the
 * cluster's IPC channel: coordinator calls and their answers, the shared directory's
 * events, and a worker's readiness. Every message carries a `type` under `registry-edge:`,
 * so prom-client's own cluster messages (metrics aggregation) pass by untouched.
 */
import type { TagMapping } from '../cache/manifest-store.js';
import type { DirectoryEvent } from '../cache/blob-store.js';

export type HostCall =
  /** `peer`: the caller's peer listener, where the others follow the fill it gets. */
  | { readonly op: 'claimFill'; readonly digest: string; readonly peer: string }
  | { readonly op: 'takeOver'; readonly digest: string; readonly peer: string; readonly dead: string }
  | { readonly op: 'release'; readonly digest: string }
  | { readonly op: 'holding'; readonly digest: string; readonly peer: string; readonly ttlMs: number }
  | { readonly op: 'getTag'; readonly key: string }
  | { readonly op: 'putTag'; readonly key: string; readonly mapping: TagMapping; readonly ttlMs: number }
  | { readonly op: 'hasMember'; readonly repo: string; readonly digest: string }
  | { readonly op: 'addMembers'; readonly repo: string; readonly digests: readonly string[]; readonly ttlMs: number }
  | { readonly op: 'hasDecision'; readonly key: string }
  | { readonly op: 'putDecision'; readonly key: string; readonly ttlMs: number }
  | { readonly op: 'claimOnce'; readonly id: string; readonly ttlMs: number };

/** A lease or the peer to follow (claims), a boolean (questions), a mapping or null (tags), null (puts). */
export type HostAnswer = { readonly kind: 'lease' } | { readonly kind: 'peer'; readonly peer: string } | TagMapping | boolean | null;

export interface WorkerReady {
  readonly httpAddress: string;
  readonly plainAddress: string | undefined;
  readonly adminAddress: string;
  readonly tls: boolean;
}

export type WorkerMessage =
  | { readonly type: 'registry-edge:call'; readonly id: number; readonly call: HostCall }
  | { readonly type: 'registry-edge:directory'; readonly event: DirectoryEvent }
  | { readonly type: 'registry-edge:ready'; readonly ready: WorkerReady };

export type PrimaryMessage =
  | { readonly type: 'registry-edge:answer'; readonly id: number; readonly answer: HostAnswer }
  | { readonly type: 'registry-edge:directory'; readonly event: DirectoryEvent };

const isObject = (m: unknown): m is { type?: unknown } => typeof m === 'object' && m !== null;

export function isWorkerMessage(m: unknown): m is WorkerMessage {
  return isObject(m) && (m.type === 'registry-edge:call' || m.type === 'registry-edge:directory' || m.type === 'registry-edge:ready');
}

export function isPrimaryMessage(m: unknown): m is PrimaryMessage {
  return isObject(m) && (m.type === 'registry-edge:answer' || m.type === 'registry-edge:directory');
}

/** The environment a worker is started with: its number (1 owns the cache directory) and the peer listeners' secret. */
export const WORKER_ID_ENV = 'EDGE_WORKER_ID';
export const WORKER_SECRET_ENV = 'EDGE_WORKER_SECRET';
