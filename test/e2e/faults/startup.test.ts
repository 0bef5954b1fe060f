// Start-up faults (issue 11, item 8): each is the real edge started by its CLI, and each
// must end as a config error does: exit code 2 and one line on stderr naming the key and
// the cause, no stack trace. `config check` must find the same file problems without
// binding any port. And the cheap CLI basics: --help serves nothing, an unknown flag or
// command is an error.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { load as parseYaml } from 'js-yaml';
import { EDGE_BIN, startEdge } from '../../helpers/edge.js';
import { mountTmpfs, type SmallFs } from '../../helpers/mount.js';
import { httpRequest, removeDir, run, tempDir, type RunResult } from '../../helpers/proc.js';

/** Long enough for a loaded machine; a start-up that hangs instead of failing ends here (timedOut). */
const RUN_BOUND_MS = 60_000;

let work: string;

interface Pair {
  readonly cert: string;
  readonly key: string;
}

/** A self-signed P-256 pair from openssl (fast; the project's own `certs init` is tested in test/certs). */
async function makePair(name: string): Promise<Pair> {
  const cert = path.join(work, `${name}.crt`);
  const key = path.join(work, `${name}.key`);
  const r = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-subj', `/CN=${name}`, '-days', '2']);
  assert.equal(r.code, 0, r.stderr);
  return { cert, key };
}

/** The edge's CLI with a config file of `yaml` and REGISTRY_EDGE_* overrides (listeners on port 0, the cache under work). */
function edgeCli(args: string[], env: Record<string, string> = {}, yaml = 'log:\n  level: info\n'): Promise<RunResult> {
  const configFile = path.join(work, `edge-${Math.random().toString(36).slice(2)}.yaml`);
  fs.writeFileSync(configFile, yaml);
  return run(process.execPath, [EDGE_BIN, ...args, '--config', configFile], {
    timeoutMs: RUN_BOUND_MS,
    env: {
      ...process.env,
      REGISTRY_EDGE_HTTP_ADDR: '127.0.0.1:0',
      REGISTRY_EDGE_ADMIN_ADDR: '127.0.0.1:0',
      REGISTRY_EDGE_CACHE_DIR: path.join(work, 'cache'),
      REGISTRY_EDGE_UPSTREAMS: 'http://127.0.0.1:9',
      ...env,
    },
  });
}

/** Exit 2, stderr exactly the expected lines (in any order), nothing that looks like a stack. */
function assertFails(r: RunResult, expected: RegExp[]): void {
  const detail = `exit ${r.code}${r.timedOut ? ' (timed out)' : ''}\nstderr:\n${r.stderr}\nstdout:\n${r.stdout.slice(0, 2000)}`;
  assert.equal(r.timedOut, false, `the edge did not end: ${detail}`);
  assert.equal(r.code, 2, detail);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, expected.length, detail);
  for (const want of expected) assert.ok(lines.some((l) => want.test(l)), `no line matches ${want}: ${detail}`);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `a stack trace on stderr: ${detail}`);
  assert.doesNotMatch(r.stdout, /registry-edge listening/, detail);
}

/** The same file problem through `serve` and `config check`, the same lines from both. */
async function bothFail(env: Record<string, string>, expected: RegExp[], yaml?: string): Promise<void> {
  const served = await edgeCli(['serve'], env, yaml);
  assertFails(served, expected);
  const checked = await edgeCli(['config', 'check'], env, yaml);
  assertFails(checked, expected);
  assert.equal(checked.stderr, served.stderr, 'config check reports what serve does');
}

/** A port held by this test process, as another program holding it would. */
async function holdPort(): Promise<{ port: number; release: () => Promise<void> }> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as net.AddressInfo).port;
  return { port, release: () => new Promise((resolve) => server.close(() => resolve())) };
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

before(() => {
  work = tempDir('re-startup-');
});

after(() => {
  removeDir(work);
});

describe('TLS pair at start', () => {
  let a: Pair;
  let b: Pair;
  before(async () => {
    a = await makePair('a');
    b = await makePair('b');
  });

  test('a missing certificate file names http.tls.certificate', async () => {
    const missing = path.join(work, 'missing.crt');
    await bothFail({ REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: missing, REGISTRY_EDGE_HTTP_TLS_KEY: a.key }, [
      new RegExp(`^config: http\\.tls\\.certificate: cannot read ${escape(missing)}: no such file or directory \\(ENOENT\\)$`),
    ]);
  });

  test('a missing key file names http.tls.key', async () => {
    const missing = path.join(work, 'missing.key');
    await bothFail({ REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: a.cert, REGISTRY_EDGE_HTTP_TLS_KEY: missing }, [
      new RegExp(`^config: http\\.tls\\.key: cannot read ${escape(missing)}: no such file or directory \\(ENOENT\\)$`),
    ]);
  });

  test('a key that does not match the certificate names http.tls.key and both files', async () => {
    await bothFail({ REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: a.cert, REGISTRY_EDGE_HTTP_TLS_KEY: b.key }, [
      new RegExp(`^config: http\\.tls\\.key: ${escape(b.key)} does not match the certificate in ${escape(a.cert)} \\(http\\.tls\\.certificate\\)$`),
    ]);
  });

  test('malformed PEM in either file names that file key', async () => {
    const junk = path.join(work, 'junk.pem');
    fs.writeFileSync(junk, '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');
    await bothFail({ REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: junk, REGISTRY_EDGE_HTTP_TLS_KEY: a.key }, [
      new RegExp(`^config: http\\.tls\\.certificate: ${escape(junk)} is not a PEM certificate: .+`),
    ]);
    await bothFail({ REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: a.cert, REGISTRY_EDGE_HTTP_TLS_KEY: junk }, [
      new RegExp(`^config: http\\.tls\\.key: ${escape(junk)} is not a PEM private key: .+`),
    ]);
  });

  test('a good pair passes config check', async () => {
    const checked = await edgeCli(['config', 'check'], { REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: a.cert, REGISTRY_EDGE_HTTP_TLS_KEY: a.key });
    assert.equal(checked.code, 0, checked.stderr);
    assert.equal((parseYaml(checked.stdout) as { http: { tls: { key: string } } }).http.tls.key, a.key);
  });
});

describe('ports at start', () => {
  for (const [key, envName] of [
    ['http.addr', 'REGISTRY_EDGE_HTTP_ADDR'],
    ['http.plain_addr', 'REGISTRY_EDGE_HTTP_PLAIN_ADDR'],
    ['admin.addr', 'REGISTRY_EDGE_ADMIN_ADDR'],
  ] as const) {
    test(`a port in use names ${key}; config check does not bind it`, async () => {
      const held = await holdPort();
      try {
        const addr = `127.0.0.1:${held.port}`;
        const served = await edgeCli(['serve'], { [envName]: addr });
        assertFails(served, [new RegExp(`^config: ${escape(key)}: cannot listen on ${escape(addr)}: address already in use \\(EADDRINUSE\\)$`)]);
        // The port is still held by this process: config check passing shows it never tried to bind.
        const checked = await edgeCli(['config', 'check'], { [envName]: addr });
        assert.equal(checked.code, 0, checked.stderr);
      } finally {
        await held.release();
      }
    });
  }
});

describe('cache.dir at start', () => {
  test('a cache.dir that is a file', async () => {
    const file = path.join(work, 'a-file');
    fs.writeFileSync(file, 'x');
    await bothFail({ REGISTRY_EDGE_CACHE_DIR: file }, [new RegExp(`^config: cache\\.dir: ${escape(file)} is not a directory$`)]);
  });

  test('a cache.dir under a regular file', async () => {
    const file = path.join(work, 'parent-file');
    fs.writeFileSync(file, 'x');
    const dir = path.join(file, 'deeper', 'cache');
    await bothFail({ REGISTRY_EDGE_CACHE_DIR: dir }, [new RegExp(`^config: cache\\.dir: cannot create ${escape(dir)}: ${escape(file)} is not a directory$`)]);
  });

  test('a cache.dir under /proc fails at once instead of hanging', async () => {
    // Node 20's recursive mkdir retries forever here (mkdir answers ENOENT under a parent that exists).
    await bothFail({ REGISTRY_EDGE_CACHE_DIR: '/proc/registry-edge/cache' }, [/^config: cache\.dir: cannot create \/proc\/registry-edge\/cache \(at \/proc\/registry-edge\): .+\(E[A-Z]+\)$/]);
  });

  test('a cache.dir on a read-only filesystem, existing or to be made', async () => {
    let small: SmallFs | undefined;
    try {
      small = await mountTmpfs(work, 'ro', 1024 * 1024);
      await small.setReadOnly(true);
      await bothFail({ REGISTRY_EDGE_CACHE_DIR: small.dir }, [new RegExp(`^config: cache\\.dir: ${escape(small.dir)} is not writable: read-only file system \\(EROFS\\)$`)]);
      const below = path.join(small.dir, 'cache');
      await bothFail({ REGISTRY_EDGE_CACHE_DIR: below }, [new RegExp(`^config: cache\\.dir: cannot create ${escape(below)}: read-only file system \\(EROFS\\)$`)]);
    } finally {
      await small?.unmount();
    }
  });

  test('config check proves a missing cache.dir can be made and leaves nothing behind; serve makes it', async () => {
    const top = path.join(work, 'fresh');
    const dir = path.join(top, 'a', 'cache');
    const checked = await edgeCli(['config', 'check'], { REGISTRY_EDGE_CACHE_DIR: dir });
    assert.equal(checked.code, 0, checked.stderr);
    assert.equal(fs.existsSync(top), false, 'config check removes the directories it made');
    // serve makes it and gets as far as listening; a port held for admin.addr then stops it after the cache is ready.
    const held = await holdPort();
    try {
      const served = await edgeCli(['serve'], { REGISTRY_EDGE_CACHE_DIR: dir, REGISTRY_EDGE_ADMIN_ADDR: `127.0.0.1:${held.port}` });
      assertFails(served, [/^config: admin\.addr: cannot listen on .+ \(EADDRINUSE\)$/]);
      assert.ok(fs.statSync(path.join(dir, 'blobs')).isDirectory(), 'serve made cache.dir and its layout');
    } finally {
      await held.release();
    }
  });
});

describe('auth files at start', () => {
  const tokenYaml = (bundle: string): string =>
    `auth:\n  mode: token\n  token:\n    service: edge\n    issuer: centre\n    realm: http://127.0.0.1:9/token\n    rootcertbundle: ${JSON.stringify(bundle)}\n`;

  test('an unreadable auth.token.rootcertbundle: missing, a directory, no certificate in it', async () => {
    const missing = path.join(work, 'no-bundle.pem');
    await bothFail({}, [new RegExp(`^config: auth\\.token\\.rootcertbundle: cannot read ${escape(missing)}: no such file or directory \\(ENOENT\\)$`)], tokenYaml(missing));
    // Root reads any file whatever its mode: a directory is what cannot be read here.
    const dir = fs.mkdtempSync(path.join(work, 'bundle-dir-'));
    await bothFail({}, [new RegExp(`^config: auth\\.token\\.rootcertbundle: cannot read ${escape(dir)}: illegal operation on a directory \\(EISDIR\\)$`)], tokenYaml(dir));
    const empty = path.join(work, 'empty-bundle.pem');
    fs.writeFileSync(empty, 'no certificates here\n');
    await bothFail({}, [new RegExp(`^config: auth\\.token\\.rootcertbundle: ${escape(empty)}: .*no CERTIFICATE block`)], tokenYaml(empty));
  });

  test('an unreadable or malformed auth.htpasswd.path', async () => {
    const missing = path.join(work, 'no-htpasswd');
    await bothFail({ REGISTRY_EDGE_AUTH_HTPASSWD_PATH: missing }, [new RegExp(`^config: auth\\.htpasswd\\.path: cannot read ${escape(missing)}: no such file or directory \\(ENOENT\\)$`)]);
    const bad = path.join(work, 'htpasswd-bad');
    fs.writeFileSync(bad, 'alice:plaintext\n');
    await bothFail({ REGISTRY_EDGE_AUTH_HTPASSWD_PATH: bad }, [new RegExp(`^config: auth\\.htpasswd\\.path: not an htpasswd file: ${escape(bad)}:1: `)]);
  });

  test('a file that never answers (a named pipe nobody writes) fails after startup.timeout, not never', async () => {
    const fifo = path.join(work, 'htpasswd-fifo');
    const r = await run('mkfifo', [fifo]);
    assert.equal(r.code, 0, r.stderr);
    for (const args of [['serve'], ['config', 'check']]) {
      const ended = await edgeCli(args, { REGISTRY_EDGE_AUTH_HTPASSWD_PATH: fifo, REGISTRY_EDGE_STARTUP_TIMEOUT: '2s' });
      assert.equal(ended.timedOut, false, ended.stderr);
      assert.equal(ended.code, 2, ended.stderr);
      // On a loaded machine other checks may not have answered within 2 s either: each such key gets its own line.
      const lines = ended.stderr.trim().split('\n');
      assert.ok(lines.includes('config: auth.htpasswd.path: no answer from the filesystem within 2s (startup.timeout); is it a hung mount?'), ended.stderr);
      assert.ok(lines.every((l) => /^config: [a-z_.]+: /.test(l)), ended.stderr);
    }
  });
});

describe('command line', () => {
  test('serve --help prints the usage and starts nothing', async () => {
    const held = await holdPort();
    try {
      // Were it to start, it would fail on the held port with exit 2.
      const r = await edgeCli(['serve', '--help'], { REGISTRY_EDGE_HTTP_ADDR: `127.0.0.1:${held.port}` });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^usage:\n\s+registry-edge serve/);
      assert.equal(r.stderr, '');
    } finally {
      await held.release();
    }
  });

  test('an unknown flag, command or a --config without a file: one line, the usage, exit 2', async () => {
    const cases: Array<[string[], string]> = [
      [['serve', '--bogus'], 'registry-edge: unknown option --bogus'],
      [['serve', 'a.yaml', 'extra'], 'registry-edge: unexpected argument extra'],
      [['frobnicate'], 'registry-edge: unknown command frobnicate'],
      [['config', 'frob'], 'registry-edge: unknown config command frob'],
      [['config', 'check', '--config'], 'registry-edge: --config needs a FILE'],
    ];
    for (const [args, line] of cases) {
      const r = await run(process.execPath, [EDGE_BIN, ...args], { timeoutMs: RUN_BOUND_MS });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      const [first, second] = r.stderr.split('\n');
      assert.equal(first, line);
      assert.equal(second, 'usage:');
      assert.equal(r.stdout, '');
    }
  });
});

describe('durations', () => {
  test('durations that are no whole number of milliseconds once multiplied (1.1s, 1.5ms) start the edge', async () => {
    const edge = await startEdge({
      workDir: work,
      upstreams: ['http://127.0.0.1:9'],
      env: { REGISTRY_EDGE_CACHE_OPEN_FILES_IDLE: '1.5ms', REGISTRY_EDGE_AUTH_CHECK_TTL: '1.1s', REGISTRY_EDGE_UPSTREAM_CONNECT_TIMEOUT: '1.1s' },
    });
    try {
      assert.equal((await httpRequest(`${edge.adminUrl}/healthz`)).status, 200);
    } finally {
      await edge.stop();
    }
  });
});
