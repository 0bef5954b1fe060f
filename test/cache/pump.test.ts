// pump/pumpFile: byte ranges of a file through reused buffers into real sockets.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { openSync, closeSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { PUMP_CHUNK, ShortFileError, pumpFile } from '../../src/cache/pump.js';
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
async function pumpOverSocket(fd: number, start: number, end: number, readerStopsAfter?: number): Promise<Received> {
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
    const pumpError = await new Promise<Error | undefined>((resolve) => pumpFile(fd, start, end, sink, resolve));
    const socketError = await received;
    sink.destroy();
    return { hash: hash.digest('hex'), bytes, pumpError, socketError };
  } finally {
    server.close();
  }
}

test('whole files and ranges arrive byte for byte, many copies at once sharing the buffer pool', async () => {
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
      const results = await Promise.all(ranges.map((r) => pumpOverSocket(fds[r.i] ?? -1, r.start, r.end)));
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
  } finally {
    fds.forEach((fd) => closeSync(fd));
  }
});

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

test('a file shorter than the range cuts the transfer and reports it', async () => {
  const data = randomBytes(PUMP_CHUNK + 10);
  const fd = fileOf('short', data);
  try {
    const got = await pumpOverSocket(fd, 0, data.length + 5000);
    assert.ok(got.pumpError instanceof ShortFileError, String(got.pumpError));
    // The receiver got at most the bytes that exist, then a cut connection, never an end that looks complete.
    assert.ok(got.bytes <= data.length);
  } finally {
    closeSync(fd);
  }
});

test('a receiver that hangs up ends the copy with an error, and no read is left pending on the file', async () => {
  const data = randomBytes(64 * PUMP_CHUNK);
  const fd = fileOf('abandoned', data);
  const got = await pumpOverSocket(fd, 0, data.length, PUMP_CHUNK);
  // done() came after the last read: closing the fd now is safe, and the copy stopped early.
  closeSync(fd);
  assert.ok(got.pumpError, 'the copy reports the hang-up');
  assert.ok(got.bytes < data.length);
});
