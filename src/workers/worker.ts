/**
 * One worker of a host (workers: N): the edge as a lone process would run it, with its
 * admin and peer listeners on loopback ports of its own (the primary serves admin.addr),
 * the host's coordinator over IPC, and the cache directory shared with the other workers.
 */
import type { BlobStore, DirectoryEvent } from '../cache/blob-store.js';
import type { Config } from '../config/schema.js';
import type { WorkerRole } from '../edge.js';
import { HostCoordinator } from '../zone/host-coordinator.js';
import { WORKER_ID_ENV, WORKER_SECRET_ENV, isPrimaryMessage, type WorkerMessage } from './messages.js';

export interface WorkerSetup {
  readonly role: WorkerRole;
  /** The config this worker serves: the file's, with its own loopback admin and peer listeners. */
  readonly config: Config;
  /** Called once the primary is gone (the worker then stops as on SIGTERM). */
  onOrphaned(stop: () => void): void;
}

/** The setup of this process when the primary started it as a worker; undefined otherwise. */
export function workerSetup(config: Config, env: NodeJS.ProcessEnv = process.env): WorkerSetup | undefined {
  const id = Number(env[WORKER_ID_ENV]);
  const secret = env[WORKER_SECRET_ENV] ?? '';
  if (!process.send || !Number.isSafeInteger(id) || id < 1 || !secret) return undefined;
  const send = (message: WorkerMessage): void => void process.send?.(message);
  // In a zone, Redis coordinates every worker of every replica, each as a replica of its own.
  const zone = config.zone.redis.url !== '';
  const coordinator = zone ? undefined : new HostCoordinator({ get connected() { return process.connected; }, send });
  let store: BlobStore | undefined;
  /** Events of the other workers that arrive before this worker's store is up are the owner's start-up: its own scan counts them. */
  const hear = (event: DirectoryEvent): void => store?.heard(event);
  process.on('message', (message: unknown) => {
    if (!isPrimaryMessage(message)) return;
    if (message.type === 'registry-edge:answer') coordinator?.answered(message);
    else hear(message.event);
  });
  let orphaned: (() => void) | undefined;
  process.once('disconnect', () => {
    coordinator?.disconnected();
    orphaned?.();
  });
  const role: WorkerRole = {
    id,
    coordinator,
    directory: { owner: id === 1, tell: (event) => send({ type: 'registry-edge:directory', event }) },
    hear: (s) => {
      store = s;
    },
  };
  return {
    role,
    config: {
      ...config,
      admin: { addr: '127.0.0.1:0' },
      zone: zone ? { ...config.zone, peer: shiftedPeer(config.zone.peer, id) } : { ...config.zone, secret, peer: { ...config.zone.peer, addr: '127.0.0.1:0', url: '', tls: false } },
    },
    onOrphaned: (stop) => {
      orphaned = stop;
      if (!process.connected) stop();
    },
  };
}

/**
 * Worker n of a replica in a zone listens for its peers on zone.peer.addr's port + n - 1
 * and names itself with zone.peer.url's port + n - 1 (the loader checks both ports are set).
 */
export function shiftedPeer(peer: Config['zone']['peer'], id: number): Config['zone']['peer'] {
  const i = peer.addr.lastIndexOf(':');
  const url = new URL(peer.url);
  const urlPort = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  url.port = String(urlPort + id - 1);
  return { ...peer, addr: `${peer.addr.slice(0, i)}:${Number(peer.addr.slice(i + 1)) + id - 1}`, url: url.href.replace(/\/$/, '') };
}
