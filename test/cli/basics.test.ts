// The command line as an operator meets it: --help everywhere, --version, one-line errors
// with exit 2, serve FILE, config check's masked, re-loadable YAML, "did you mean", unknown
// REGISTRY_EDGE_* variables, and the exit codes README "## Two commands" promises.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { load as parseYaml } from 'js-yaml';
import { loadConfig } from '../../src/config/load.js';
import { MASK } from '../../src/config/dump.js';
import { EDGE_BIN, logLines } from '../helpers/edge.js';
import { removeDir, run, startProcess, tempDir, waitFor, type RunResult } from '../helpers/proc.js';

const dir = tempDir('re-cli-basics-');
after(() => removeDir(dir));

const BOUND_MS = 30_000;
const cli = (args: string[], env: Record<string, string> = {}, input?: string): Promise<RunResult> =>
  run(process.execPath, [EDGE_BIN, ...args], { env: { ...process.env, ...env }, timeoutMs: BOUND_MS, ...(input === undefined ? {} : { input }) });

const HELP = [
  ['serve'], ['config'], ['config', 'check'], ['config', 'reference'],
  ['certs'], ['certs', 'init'], ['certs', 'renew'], ['certs', 'show'],
  ['client-config'], ['pull-secret'],
  ['cache'], ['cache', 'stats'], ['cache', 'ls'], ['cache', 'verify'], ['cache', 'gc'], ['cache', 'rm'],
];

describe('--help and --version', () => {
  test('--help after every command and subcommand prints its usage, and does nothing else', async () => {
    for (const args of HELP) {
      // Flags the command would need are left out: --help alone must suffice, and must not run it.
      const r = await cli([...args, '--help'], { REGISTRY_EDGE_CACHE_DIR: path.join(dir, 'never-made') });
      assert.equal(r.timedOut, false, `${args.join(' ')} --help must not start anything`);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, '', args.join(' '));
      assert.match(r.stdout, new RegExp(`^usage:\\n\\s+registry-edge ${args[0]}`), args.join(' '));
    }
    assert.equal(existsSync(path.join(dir, 'never-made')), false, 'nothing ran: no cache.dir was made');
  });

  test('--version prints the version of package.json', async () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    const r = await cli(['--version']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `registry-edge ${pkg.version}\n`);
  });

  test('an unknown command, subcommand or option: one line, that command\'s usage, exit 2', async () => {
    const cases: Array<[string[], string, RegExp]> = [
      [['frobnicate'], 'registry-edge: unknown command frobnicate', /registry-edge cache stats/],
      [[], 'registry-edge: no command given', /registry-edge serve/],
      [['cache', 'frob'], 'registry-edge: unknown cache command frob', /registry-edge cache gc --max-size/],
      [['client-config', '--bogus'], 'registry-edge: unknown option --bogus', /registry-edge client-config --host/],
      [['pull-secret', '--server'], 'registry-edge: --server needs a HOST', /registry-edge pull-secret --server/],
      [['serve', 'a.yaml', 'b.yaml'], 'registry-edge: unexpected argument b.yaml', /registry-edge serve \[FILE/],
      [['serve', 'a.yaml', '--config', 'b.yaml'], 'registry-edge: the config is given twice (a.yaml and --config b.yaml); give one', /registry-edge serve/],
    ];
    for (const [args, line, usage] of cases) {
      const r = await cli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      const [first, second, ...rest] = r.stderr.split('\n');
      assert.equal(first, line);
      assert.equal(second, 'usage:');
      assert.match(rest.join('\n'), usage);
      assert.equal(r.stdout, '');
    }
  });
});

test('serve FILE takes the config as a positional argument', async () => {
  const file = path.join(dir, 'positional.yaml');
  writeFileSync(file, `cache:\n  dir: ${path.join(dir, 'positional-cache')}\nupstreams: [http://127.0.0.1:9]\n`);
  const proc = startProcess(process.execPath, [EDGE_BIN, 'serve', file], {
    logFile: path.join(dir, 'positional.log'),
    env: { ...process.env, REGISTRY_EDGE_HTTP_ADDR: '127.0.0.1:0', REGISTRY_EDGE_ADMIN_ADDR: '127.0.0.1:0' },
  });
  try {
    await waitFor(() => {
      if (!proc.running()) throw new Error(`edge exited:\n${proc.logs()}`);
      return logLines(proc.logs()).some((l) => l.msg === 'registry-edge listening');
    }, { what: 'the edge to listen' });
    assert.ok(statSync(path.join(dir, 'positional-cache', 'tmp')).isDirectory(), 'the cache.dir of FILE is used');
  } finally {
    await proc.stop();
  }
  assert.equal(await proc.exited, 0, 'SIGTERM ends a serving edge with exit 0');
});

describe('config check', () => {
  const yaml = [
    'upstream:',
    '  auth: {username: edge, password: file-s3cret}',
    `cache: {dir: ${path.join(dir, 'check-cache')}, maxsize: 3GiB, tag_ttl: 90s, max_stale: 7d}`,
    'http: {addr: "127.0.0.1:7000"}',
    '',
  ].join('\n');

  test('prints YAML with secrets masked that loads back to the same config; --show-secrets prints them', async () => {
    const file = path.join(dir, 'secret.yaml');
    writeFileSync(file, yaml);
    const env = { REGISTRY_EDGE_UPSTREAMS: 'http://10.0.0.1:5000,https://reg.example/p' };
    const r = await cli(['config', 'check', file], env);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /file-s3cret/);
    assert.match(r.stderr, /^config: upstream\.auth\.password printed as <hidden>/m);
    const masked = path.join(dir, 'masked.yaml');
    writeFileSync(masked, r.stdout);
    const original = loadConfig({ file, env });
    const back = loadConfig({ file: masked, env: {} });
    assert.equal(back.upstream.auth.password, MASK);
    assert.deepEqual({ ...back, upstream: { ...back.upstream, auth: { ...back.upstream.auth, password: 'x' } }, origins: [] }, { ...original, upstream: { ...original.upstream, auth: { ...original.upstream.auth, password: 'x' } }, origins: [] });

    const shown = await cli(['config', 'check', '--config', file, '--show-secrets'], env);
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal(shown.stderr, '');
    const revealed = path.join(dir, 'revealed.yaml');
    writeFileSync(revealed, shown.stdout);
    assert.deepEqual(loadConfig({ file: revealed, env: {} }), original, 'pasted back, it is the same config');
    assert.equal((parseYaml(shown.stdout) as { cache: { maxsize: string } }).cache.maxsize, '3GiB', 'sizes as a person writes them');
  });

  test('an origins config is printed under origins and loads back the same; every origin\'s password is masked', async () => {
    const file = path.join(dir, 'origins.yaml');
    writeFileSync(file, [
      'origins:',
      '  docker.io: {upstreams: [https://registry-1.docker.io], cache: {tag_ttl: 5m}}',
      '  hub.example.internal:',
      '    upstreams: [{url: "http://10.0.0.11:5000", weight: 2}, {url: "http://10.0.0.12:5000", backup: true}]',
      '    upstream: {auth: {username: edge-a, password: origin-s3cret}}',
      '    push: true',
      'default_origin: docker.io',
      `cache: {dir: ${path.join(dir, 'origins-cache')}}`,
      '',
    ].join('\n'));
    const r = await cli(['config', 'check', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /origin-s3cret/);
    assert.match(r.stderr, /origins\.hub\.example\.internal\.upstream\.auth\.password printed as <hidden>/);
    const shown = await cli(['config', 'check', file, '--show-secrets']);
    const back = path.join(dir, 'origins-back.yaml');
    writeFileSync(back, shown.stdout);
    assert.deepEqual(loadConfig({ file: back, env: {} }), loadConfig({ file, env: {} }));
  });

  test('keys named password, secret or token are masked even without the flag in the table', async () => {
    const { isSecret } = await import('../../src/config/dump.js');
    const spec = { type: 'string' as const, default: '', doc: '' };
    assert.ok(isSecret({ ...spec, path: 'zone.secret' }));
    assert.ok(isSecret({ ...spec, path: 'prewarm.token' }));
    assert.ok(isSecret({ ...spec, path: 'zone.redis_password' }));
    assert.ok(!isSecret({ ...spec, path: 'token.path' }), 'a token route is no secret');
    assert.ok(!isSecret({ ...spec, path: 'auth.token.realm' }));
  });
});

test('an unknown variable\'s warning reaches stderr of the CLI and the command goes on', async () => {
  const r = await cli(['config', 'check', '--config', 'config/registry-edge.yaml'], { REGISTRY_EDGE_LOG_LEVL: 'debug', REGISTRY_EDGE_CACHE_DIR: path.join(dir, 'warn-cache') });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^config: warning: env REGISTRY_EDGE_LOG_LEVL: names no config key, so it is ignored; did you mean REGISTRY_EDGE_LOG_LEVEL\?$/m);
});

/** A port held open, so an edge told to listen on it fails. */
async function heldPort(): Promise<{ port: number; release(): Promise<void> }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { port, release: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('exit codes (README "## Two commands")', () => {
  test('every start-up failure: exit 2, one line per problem on stderr, never a stack', async () => {
    const notDir = path.join(dir, 'a-file');
    writeFileSync(notDir, 'x');
    mkdirSync(path.join(dir, 'a-dir.yaml'), { recursive: true });
    const write = (name: string, text: string): string => {
      writeFileSync(path.join(dir, name), text);
      return path.join(dir, name);
    };
    const held = await heldPort();
    try {
      const cases: Array<[string, string[], Record<string, string>, RegExp]> = [
        ['a missing config file', ['serve', path.join(dir, 'missing.yaml')], {}, /^config: --config: cannot read .*missing\.yaml/],
        ['a directory as the config', ['serve', path.join(dir, 'a-dir.yaml')], {}, /^config: --config: cannot read .*a-dir\.yaml: EISDIR/],
        ['YAML that does not parse', ['serve', write('broken.yaml', 'cache: [\n')], {}, /^config: .*broken\.yaml: not valid YAML/],
        ['a top level that is a list', ['serve', write('list.yaml', '- a\n')], {}, /the top level must be a mapping/],
        ['an unknown key', ['serve', write('unknown.yaml', 'cache: {max_size: 1}\n')], {}, /^config: cache\.max_size: unknown key; did you mean cache\.maxsize\?/],
        ['a bad env value', ['serve', write('ok.yaml', 'log: {level: info}\n')], { REGISTRY_EDGE_CACHE_MAXSIZE: 'lots' }, /^config: cache\.maxsize \(env REGISTRY_EDGE_CACHE_MAXSIZE\): "lots" is not allowed/],
        ['a cache.dir that is a file', ['serve', path.join(dir, 'ok.yaml')], { REGISTRY_EDGE_CACHE_DIR: notDir }, /^config: cache\.dir: /],
        ['a port in use', ['serve', path.join(dir, 'ok.yaml')], { REGISTRY_EDGE_HTTP_ADDR: `127.0.0.1:${held.port}`, REGISTRY_EDGE_CACHE_DIR: path.join(dir, 'port-cache') }, /^config: http\.addr: cannot listen on 127\.0\.0\.1:\d+: address already in use \(EADDRINUSE\)/],
        ['a TLS key without its certificate', ['serve', path.join(dir, 'ok.yaml')], { REGISTRY_EDGE_HTTP_TLS_KEY: notDir }, /^config: http\.tls\.certificate: http\.tls\.certificate and http\.tls\.key go together/],
      ];
      for (const [what, args, env, line] of cases) {
        const r = await cli(args, { REGISTRY_EDGE_ADMIN_ADDR: '127.0.0.1:0', ...env });
        assert.equal(r.code, 2, `${what}: ${r.stderr}`);
        assert.match(r.stderr, line, what);
        assert.doesNotMatch(r.stderr, /^\s+at /m, `${what}: no stack trace`);
        assert.ok(r.stderr.trim().split('\n').every((l) => /^(config|registry-edge): /.test(l)), `${what}: every line names its source:\n${r.stderr}`);
      }
    } finally {
      await held.release();
    }
  });

  test('a command that fails at its work: one line, exit 1', async () => {
    const r = await cli(['cache', 'rm', `sha256:${'0'.repeat(64)}`, '--dir', dir]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr, `registry-edge cache: sha256:${'0'.repeat(64)} is not in the cache\n`);
  });
});
