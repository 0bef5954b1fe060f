// `registry-edge prefetch` against a running edge in front of a real registry: plain
// lines and a summary when stdout is no terminal, progress bars under a pseudo-terminal.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EDGE_BIN, logLines, type Edge } from '../helpers/edge.js';
import { makeOciLayout, pushImage, type ImageInfo } from '../helpers/image.js';
import { httpRequest, run, startProcess, waitFor, which } from '../helpers/proc.js';
import { startStack, type Stack } from '../helpers/stack.js';

const KiB = 1024;

function blobFile(edge: Edge, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return path.join(edge.cacheDir, 'blobs', 'sha256', hex.slice(0, 2), hex);
}

const blobsOf = (image: ImageInfo): string[] => [image.configDigest, ...image.layers.map((l) => l.digest)];

describe('registry-edge prefetch', () => {
  const token = randomBytes(16).toString('hex');
  const images: Record<string, ImageInfo> = {};
  let stack: Stack;
  let tokenFile: string;

  before(async () => {
    stack = await startStack('re-prefetch-cli-', {
      edge: { env: { REGISTRY_EDGE_PREWARM_TOKEN: token } },
      before: async ({ work, registry }) => {
        for (const [repo, layers] of [['team/plain', [400 * KiB, 300 * KiB]], ['team/tty', [600 * KiB, 200 * KiB]], ['team/left', [500 * KiB, 100 * KiB, 100 * KiB]]] as const) {
          const image = await makeOciLayout(path.join(work, repo.replace('/', '-')), { layers: [...layers], tag: '1' });
          await pushImage(image.layoutDir, '1', `${registry.host}/${repo}:1`);
          images[repo] = image;
        }
        // An index of two platforms, each an image pushed under its own tag first.
        const entries = [];
        for (const [arch, size] of [['amd64', 120 * KiB], ['arm64', 130 * KiB]] as const) {
          const image = await makeOciLayout(path.join(work, `multi-${arch}`), { layers: [size], tag: arch });
          await pushImage(image.layoutDir, arch, `${registry.host}/team/multi:${arch}`);
          images[`team/multi:${arch}`] = image;
          entries.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: image.manifestDigest, size: image.manifestBytes.length, platform: { os: 'linux', architecture: arch } });
        }
        const index = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: entries });
        const put = await httpRequest(`${registry.url}/v2/team/multi/manifests/1`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, body: index });
        assert.equal(put.status, 201, put.body.toString('utf8'));
      },
    });
    tokenFile = path.join(stack.work, 'prewarm.token');
    writeFileSync(tokenFile, `${token}\n`);
  });

  after(async () => {
    await stack?.stop();
  });

  const prefetch = (...args: string[]) => run(process.execPath, [EDGE_BIN, 'prefetch', ...args, '--admin', stack.edge.adminUrl, '--token-file', tokenFile], { timeoutMs: 60_000 });

  test('not on a terminal: plain lines, a summary, exit 0, and the image is cached', async () => {
    const image = images['team/plain'] as ImageInfo;
    const r = await prefetch('team/plain:1');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /\x1b\[/, 'no terminal control sequences');
    assert.match(r.stdout, /^team\/plain:1: sha256:[0-9a-f]{12}, 3 blobs, /m);
    for (const digest of blobsOf(image)) {
      assert.match(r.stdout, new RegExp(`^team/plain:1: ${digest.slice(0, 19)} .* fetched$`, 'm'));
      assert.ok(existsSync(blobFile(stack.edge, digest)), `${digest} cached`);
      assert.equal(stack.shim.stats.blobGets(digest), 1);
    }
    assert.match(r.stdout, /^summary: 3 blobs, 3 fetched \([\d.]+ KiB\), 0 already cached, 0 failed$/m);

    const again = await prefetch('team/plain:1');
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^summary: 3 blobs, 0 fetched \(0 B\), 3 already cached, 0 failed$/m);
    for (const digest of blobsOf(image)) assert.equal(stack.shim.stats.blobGets(digest), 1, 'a cached blob costs no upstream fetch');
  });

  test('on a terminal: a progress bar per blob, redrawn in place', async () => {
    const script = which('script');
    assert.ok(script, 'script (util-linux) gives the command a pseudo-terminal');
    const command = [process.execPath, EDGE_BIN, 'prefetch', 'team/tty:1', '--admin', stack.edge.adminUrl, '--token-file', tokenFile].map((a) => `'${a}'`).join(' ');
    // About a second of body per run, so the bars are drawn part-way too.
    stack.shim.setFault({ kind: 'slow-body', pathPattern: /\/blobs\//, bytesPerSecond: 800 * KiB });
    const r = await run(script, ['-q', '-e', '-c', command, '/dev/null'], { timeoutMs: 60_000 }).finally(() => stack.shim.setFault(null));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const screen = r.stdout;
    assert.match(screen, /\x1b\[3A/, 'the three bars are redrawn in place (cursor up three lines)');
    assert.match(screen, /\[ {24}\] +0% /, 'bars start empty');
    assert.match(screen, /\[={1,23} {1,23}\] +\d+% [\d.]+ KiB \/ [\d.]+ KiB fetching/, 'a bar part-way, while its bytes arrive');
    const full = screen.match(/ [0-9a-f]{12} \[={24}\] 100% [^\r\n]* fetched\r?\n/g) ?? [];
    assert.equal(new Set(full.map((l) => l.slice(1, 13))).size, 3, `three full bars:\n${JSON.stringify(screen)}`);
    assert.match(screen, /summary: 3 blobs, 3 fetched/);
    for (const digest of blobsOf(images['team/tty'] as ImageInfo)) assert.ok(existsSync(blobFile(stack.edge, digest)));
  });

  test('--platform takes that platform of an index, and only its blobs', async () => {
    const r = await prefetch('team/multi:1', '--platform', 'linux/arm64');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^team\/multi:1: sha256:[0-9a-f]{12}, 2 blobs, .*, platforms linux\/arm64$/m);
    for (const digest of blobsOf(images['team/multi:arm64'] as ImageInfo)) assert.ok(existsSync(blobFile(stack.edge, digest)), `${digest} of arm64 cached`);
    for (const digest of blobsOf(images['team/multi:amd64'] as ImageInfo)) {
      assert.equal(existsSync(blobFile(stack.edge, digest)), false, `${digest} of amd64 not fetched`);
      assert.equal(stack.shim.stats.blobGets(digest), 0);
    }
    const unknown = await prefetch('team/multi:1', '--platform', 'windows/amd64');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stdout, /failed: the index has none of the platforms windows\/amd64/);
  });

  test('a client that goes away stops the prefetch after the blob in flight', async () => {
    const image = images['team/left'] as ImageInfo;
    const [config, first, ...rest] = blobsOf(image) as [string, string, ...string[]];
    stack.shim.setFault({ kind: 'slow-body', pathPattern: new RegExp(`/blobs/${first}$`), bytesPerSecond: 200 * KiB });
    const cli = startProcess(process.execPath, [EDGE_BIN, 'prefetch', 'team/left:1', '--admin', stack.edge.adminUrl, '--token-file', tokenFile], { logFile: path.join(stack.work, 'cli-left.log') });
    try {
      await waitFor(() => stack.shim.stats.matching('GET', new RegExp(`/blobs/${first}$`)).some((r) => r.bodyBytes > 0), { what: 'the first layer to be fetching' });
    } finally {
      await cli.stop();
      stack.shim.setFault(null);
    }
    await waitFor(() => logLines<{ msg?: string; images?: string[]; failed?: number }>(stack.edge.proc.logs()).find((l) => l.msg === 'prefetch requested on the admin listener done' && l.images?.[0] === 'team/left:1'), { what: 'the edge to end the prefetch' });
    assert.equal(stack.shim.stats.blobGets(config), 1);
    await waitFor(() => existsSync(blobFile(stack.edge, first)), { what: 'the blob in flight to be filled and committed all the same' });
    for (const digest of rest) assert.equal(stack.shim.stats.blobGets(digest), 0, `${digest} never asked for`);
  });

  test('what fails says so: an unknown tag is exit 1, a wrong token exit 1, no image exit 2', async () => {
    const unknown = await prefetch('team/plain:nope');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stdout, /^team\/plain:nope: failed: /m);
    assert.match(unknown.stdout, /1 image not resolved/);

    const wrong = path.join(stack.work, 'wrong.token');
    writeFileSync(wrong, 'not-the-token\n');
    const refused = await run(process.execPath, [EDGE_BIN, 'prefetch', 'team/plain:1', '--admin', stack.edge.adminUrl, '--token-file', wrong]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /answered 401/);

    const usage = await run(process.execPath, [EDGE_BIN, 'prefetch', '--admin', stack.edge.adminUrl, '--token-file', tokenFile]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /at least one IMAGE/);

    const bad = await prefetch('Team/Bad:1');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /is not a repository name/);
  });
});
