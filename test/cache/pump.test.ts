// pump/pumpFile: byte ranges of a file through reused buffers into real sockets.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { constants, open, openSync, closeSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { PUMP_CHUNK, ShortFileError, pumpFile, type SyncReads } from '../../src/cache/pump.js';
import { removeDir, tempDir } from '../helpers/proc.js';

const dir = tempDir('re-pump-');
after(() => removeDir(dir));

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function fileOf(name: string, data: Buffer): number {
  const file = path.join(dir, name);
  writeFileSync(file, data);
  return openSync(file, 'r');
}

interface Received {
  hash: string;
  bytes: number;
  pumpError: Error | undefined;
  socketError: Error | undefined;
}

/**
 * A loopback TCP pair: the pump writes into the server side, the client side hashes what
 * arrives. `readerStopsAfter` makes the receiver hang up after that many bytes.
 */
async function pumpOverSocket(fd: number, start: number, end: number, readerStopsAfter?: number, syncReads?: SyncReads): Promise<Received> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  try {
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const client = net.connect(port, '127.0.0.1');
    const sink = await accepted;
    const hash = createHash('sha256');
    let bytes = 0;
    const received = new Promise<Error | undefined>((resolve) => {
      client.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
        if (readerStopsAfter !== undefined && bytes >= readerStopsAfter) client.destroy();
      });
      client.once('close', () => resolve(undefined));
      client.once('error', resolve);
    });
    const pumpError = await new Promise<Error | undefined>((resolve) => pumpFile(fd, start, end, sink, resolve, syncReads));
    const socketError = await received;
    sink.destroy();
    return { hash: hash.digest('hex'), bytes, pumpError, socketError };
  } finally {
    server.close();
  }
}

test('an empty range ends the destination at once', async () => {
  const fd = fileOf('empty-range', randomBytes(100));
  try {
    const got = await pumpOverSocket(fd, 50, 50);
    assert.equal(got.pumpError, undefined);
    assert.equal(got.bytes, 0);
  } finally {
    closeSync(fd);
  }
});

/** How a copy reads: the thread pool, the event loop, or the event loop until a read is slow (every one is, at 0 ns). */
const modes: Array<{ name: string; reads: () => { sync: SyncReads | undefined; slow: () => number } }> = [
  { name: 'thread-pool reads', reads: () => ({ sync: undefined, slow: () => 0 }) },
  ...[
    { name: 'event-loop reads', maxNs: 1e12 },
    { name: 'event-loop reads that turn slow', maxNs: 0 },
  ].map(({ name, maxNs }) => ({
    name,
    reads: () => {
      let slow = 0;
      return { sync: { maxNs, onSlow: () => slow++ }, slow: () => slow };
    },
  })),
];

for (const mode of modes) {
  test(`${mode.name}: whole files and ranges arrive byte for byte, many copies at once sharing the buffer pool`, async () => {
    const reads = mode.reads();
    const files = Array.from({ length: 6 }, (_v, i) => randomBytes(3 * PUMP_CHUNK + 1000 * i + 7));
    const fds = files.map((data, i) => fileOf(`f${i}`, data));
    try {
      const ranges = files.flatMap((data, i) => [
        { i, start: 0, end: data.length },
        { i, start: PUMP_CHUNK - 3, end: 2 * PUMP_CHUNK + 5 },
        { i, start: data.length - 1, end: data.length },
      ]);
      // Twice, so the second round runs on buffers the first returned to the pool.
      for (let round = 0; round < 2; round++) {
        const results = await Promise.all(ranges.map((r) => pumpOverSocket(fds[r.i] ?? -1, r.start, r.end, undefined, reads.sync)));
        results.forEach((got, k) => {
          const r = ranges[k];
          assert.ok(r);
          const want = files[r.i]?.subarray(r.start, r.end);
          assert.ok(want);
          assert.equal(got.pumpError, undefined);
          assert.equal(got.bytes, want.length);
          assert.equal(got.hash, sha(want), `file ${r.i} [${r.start}, ${r.end})`);
        });
      }
      // A copy that turns slow says so once, then reads through the thread pool.
      if (mode.name.endsWith('turn slow')) assert.equal(reads.slow(), 2 * ranges.length);
      else assert.equal(reads.slow(), 0);
    } finally {
      fds.forEach((fd) => closeSync(fd));
    }
  });

  test(`${mode.name}: a file shorter than the range cuts the transfer and reports it`, async () => {
    const data = randomBytes(PUMP_CHUNK + 10);
    const fd = fileOf(`short-${mode.name}`, data);
    try {
      const got = await pumpOverSocket(fd, 0, data.length + 5000, undefined, mode.reads().sync);
      assert.ok(got.pumpError instanceof ShortFileError, String(got.pumpError));
      // The receiver got at most the bytes that exist, then a cut connection, never an end that looks complete.
      assert.ok(got.bytes <= data.length);
    } finally {
      closeSync(fd);
    }
  });

  test(`${mode.name}: a receiver that hangs up ends the copy with an error, and no read is left pending on the file`, async () => {
    const data = randomBytes(64 * PUMP_CHUNK);
    const fd = fileOf(`abandoned-${mode.name}`, data);
    const got = await pumpOverSocket(fd, 0, data.length, PUMP_CHUNK, mode.reads().sync);
    // done() came after the last read: closing the fd now is safe, and the copy stopped early.
    closeSync(fd);
    assert.ok(got.pumpError, 'the copy reports the hang-up');
    assert.ok(got.bytes < data.length);
  });
}

test('event-loop reads need no thread-pool worker: a copy completes while every worker is stuck', async () => {
  // Each open of a FIFO with no writer holds a thread-pool worker until a writer comes.
  const workers = Number(process.env['UV_THREADPOOL_SIZE'] ?? 4);
  const fifos = Array.from({ length: workers }, (_v, i) => path.join(dir, `fifo-${i}`));
  execFileSync('mkfifo', fifos);
  const opened = fifos.map((f) => new Promise<number>((resolve, reject) => open(f, 'r', (err, fd) => (err ? reject(err) : resolve(fd)))));
  const data = randomBytes(5 * PUMP_CHUNK + 3);
  const fd = fileOf('pool-free', data);
  try {
    const copy = pumpOverSocket(fd, 0, data.length, undefined, { maxNs: 1e12, onSlow: () => undefined });
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<'stuck'>((resolve) => (timer = setTimeout(() => resolve('stuck'), 10_000)));
    const got = await Promise.race([copy, bound]);
    clearTimeout(timer);
    if (got === 'stuck') assert.fail('the copy waited for a thread-pool worker');
    assert.equal(got.pumpError, undefined);
    assert.equal(got.hash, sha(data));
  } finally {
    // Writers release the workers (open for writing does not block: a reader is waiting).
    const writers = fifos.map((f) => openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
    for (const r of await Promise.all(opened)) closeSync(r);
    writers.forEach((w) => closeSync(w));
    closeSync(fd);
  }
});
