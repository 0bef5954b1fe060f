// Runs a real redis-server (Debian's, /usr/bin/redis-server) for the zone tests: no
// persistence, its files in a temp dir, loopback only. It can be stopped and started
// again on the same port, or paused (SIGSTOP) to play a server that stops answering.
import * as net from 'node:net';
import * as path from 'node:path';
import { AbortPolling, onFreePort, removeDir, startProcess, tempDir, waitFor, which, type ManagedProcess } from './proc.js';

export const REDIS_INSTALL_HINT = 'apt-get install -y redis-server';

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly proc: ManagedProcess;
  logs(): string;
  /** Stops the server (its data goes with it: nothing is persisted). */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
  /** SIGSTOP: connections stay open and nothing answers. */
  pause(): void;
  resume(): void;
  /** stop() plus removal of the temp dir. */
  dispose(): Promise<void>;
}

export function redisBinary(): string {
  const found = which(process.env['REDIS_SERVER_BIN'] ?? 'redis-server') ?? which('/usr/bin/redis-server');
  if (!found) throw new Error(`redis-server not found (set REDIS_SERVER_BIN or install it):\n${REDIS_INSTALL_HINT}`);
  return found;
}

export async function startRedis(): Promise<RedisServer> {
  const bin = redisBinary();
  const dir = tempDir('re-redis-');
  const logFile = path.join(dir, 'redis.log');
  const launch = async (port: number): Promise<ManagedProcess> => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'];
    const proc = startProcess(bin, args, { logFile });
    try {
      await waitFor(
        async () => {
          if (!proc.running()) throw new AbortPolling(new Error(`redis-server exited early:\n${proc.logs()}`));
          return (await ping(port)) === '+PONG';
        },
        { timeoutMs: 15_000, what: `redis-server on port ${port}` },
      );
    } catch (err) {
      await proc.stop();
      throw err;
    }
    return proc;
  };

  const started = await onFreePort(launch).catch((err: unknown) => {
    removeDir(dir);
    throw err;
  });
  const { port } = started;
  let proc = started.server;
  const signal = (sig: NodeJS.Signals): void => {
    if (proc.running()) process.kill(proc.pid, sig);
  };
  const stop = async (): Promise<void> => {
    // A stopped process takes SIGTERM only once it runs again.
    signal('SIGCONT');
    await proc.stop();
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get proc() {
      return proc;
    },
    logs: () => proc.logs(),
    stop,
    start: async () => {
      await stop();
      proc = await launch(port);
    },
    pause: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
    dispose: async () => {
      await stop();
      removeDir(dir);
    },
  };
}

/** The first line of the server's answer to PING, or '' when it does not answer within a second. */
function ping(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let answer = '';
    const done = (line: string): void => {
      socket.destroy();
      resolve(line);
    };
    socket.setTimeout(1_000, () => done(''));
    socket.once('error', () => done(''));
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
      const end = answer.indexOf('\r\n');
      if (end >= 0) done(answer.slice(0, end));
    });
    socket.write('PING\r\n');
  });
}
