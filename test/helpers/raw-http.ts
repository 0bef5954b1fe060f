// Bytes on a bare TCP socket, for requests no HTTP client library would send as written
// (smuggling attempts, raw paths, oversized headers): what the server answers, verbatim.
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';

export interface RawAnswer {
  /** Everything the server sent for `request`: up to the sentinel's answer, or until it closed (or the bound). */
  readonly text: string;
  /** The status code of the first response line, 0 when none came. */
  readonly status: number;
  /** The server closed the connection without answering the sentinel. */
  readonly closed: boolean;
}

/**
 * Where the first response in `text` ends and whether it closes the connection; undefined
 * while it is not all there. A body is framed by Content-Length, or chunked up to its last
 * chunk; without either it runs to the close, as HTTP/1.1 frames it.
 */
function firstResponse(text: string): { end: number; close: boolean } | undefined {
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd === -1) return undefined;
  const head = text.slice(0, headEnd + 2);
  const close = /\r\nconnection: *close\r\n/i.test(head);
  const length = /\r\ncontent-length: *(\d+)\r\n/i.exec(head)?.[1];
  const bodyStart = headEnd + 4;
  if (length !== undefined) return text.length - bodyStart >= Number(length) ? { end: bodyStart + Number(length), close } : undefined;
  if (/\r\ntransfer-encoding: *chunked\r\n/i.test(head)) {
    const last = /(^|\r\n)0\r\n\r\n/.exec(text.slice(bodyStart));
    return last ? { end: bodyStart + last.index + last[0].length, close } : undefined;
  }
  return undefined;
}

/**
 * The answer to the sentinel (a `GET /v2/` carrying its own X-Request-Id, which the edge
 * echoes): where it starts, once it is all there. The edge answers `/v2/` itself (public
 * and token modes), so the sentinel never reaches an upstream.
 */
function sentinelAnswer(text: string, id: string): number | undefined {
  const at = text.toLowerCase().indexOf(`\r\nx-request-id: ${id.toLowerCase()}\r\n`);
  if (at === -1) return undefined;
  const start = text.lastIndexOf('HTTP/1.', at);
  return firstResponse(text.slice(start)) ? start : undefined;
}

/**
 * Writes `request` to host:port and collects what the server sends, judged by conditions,
 * never by a quiet period: once the first answer is complete, a server that closes (it said
 * `Connection: close`) is read to its close; one that keeps the connection is sent a sentinel
 * request on it and read until the sentinel's answer, so every answer to `request` (a
 * smuggled second one too, which comes first) is in `text`. The sentinel goes only after the
 * first answer: Node answers bytes pipelined after a `Connection: close` request with a 400
 * of its own in place of the real answer. `timeoutMs` is a failure bound only.
 */
export function rawRequest(hostPort: string, request: string | Buffer, opts: { timeoutMs?: number } = {}): Promise<RawAnswer> {
  const i = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  const port = Number(hostPort.slice(i + 1));
  const id = `raw-sentinel-${randomUUID()}`;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host, port });
    let settled = false;
    let sentinelSent = false;
    const received = (): string => Buffer.concat(chunks).toString('latin1');
    const finish = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(bound);
      socket.destroy();
      const all = received();
      const text = all.slice(0, sentinelAnswer(all, id) ?? all.length);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ text, status: m ? Number(m[1]) : 0, closed });
    };
    const bound = setTimeout(() => finish(false), opts.timeoutMs ?? 10_000);
    socket.on('data', (b: Buffer) => {
      chunks.push(b);
      const all = received();
      if (sentinelSent) {
        if (sentinelAnswer(all, id) !== undefined) finish(false);
        return;
      }
      const first = firstResponse(all);
      if (first && !first.close) {
        sentinelSent = true;
        socket.write(`GET /v2/ HTTP/1.1\r\nHost: ${hostPort}\r\nX-Request-Id: ${id}\r\n\r\n`);
      }
    });
    socket.once('close', () => finish(sentinelAnswer(received(), id) === undefined));
    socket.once('error', () => undefined);
    socket.write(request);
  });
}

/** Every response status line in a raw answer (pipelined requests get one each). */
export function statusLines(text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
}
