// Bytes on a bare TCP socket, for requests no HTTP client library would send as written
// (smuggling attempts, raw paths, oversized headers): what the server answers, verbatim.
import { connect } from 'node:net';

export interface RawAnswer {
  /** Everything the server sent before it closed (or before the bound). */
  readonly text: string;
  /** The status code of the first response line, 0 when none came. */
  readonly status: number;
  /** The server closed the connection before the bound. */
  readonly closed: boolean;
}

/**
 * Writes `request` to host:port and collects the answer until the server closes or
 * `quietMs` passes with nothing more arriving after the first bytes (keep-alive).
 */
export function rawRequest(hostPort: string, request: string | Buffer, opts: { quietMs?: number; timeoutMs?: number } = {}): Promise<RawAnswer> {
  const i = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  const port = Number(hostPort.slice(i + 1));
  const quietMs = opts.quietMs ?? 300;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host, port });
    let quiet: NodeJS.Timeout | undefined;
    const finish = (closed: boolean): void => {
      clearTimeout(quiet);
      clearTimeout(bound);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ text, status: m ? Number(m[1]) : 0, closed });
    };
    const bound = setTimeout(() => finish(false), opts.timeoutMs ?? 10_000);
    socket.on('data', (b: Buffer) => {
      chunks.push(b);
      clearTimeout(quiet);
      quiet = setTimeout(() => finish(false), quietMs);
    });
    socket.once('close', () => finish(true));
    socket.once('error', () => undefined);
    socket.write(request);
  });
}

/** Every response status line in a raw answer (pipelined requests get one each). */
export function statusLines(text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
}
