import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { load as parseYaml } from 'js-yaml';
import { ConfigError, configReference, loadConfig } from '../../src/config/load.js';
import { KEYS, TIMER_MAX, envName } from '../../src/config/schema.js';
import { parseBytes, parseDuration } from '../../src/config/units.js';
import { EDGE_BIN } from '../helpers/edge.js';
import { removeDir, run, tempDir } from '../helpers/proc.js';

const dir = tempDir('re-config-');
after(() => removeDir(dir));

test('units', () => {
  assert.equal(parseBytes('10GiB'), 10 * 1024 ** 3);
  assert.equal(parseBytes('512MB'), 512e6);
  assert.equal(parseBytes(42), 42);
  assert.equal(parseBytes('ten'), undefined);
  assert.equal(parseDuration('5m'), 300);
  assert.equal(parseDuration('1h30m'), 5400);
  assert.equal(parseDuration('250ms'), 0.25);
  assert.equal(parseDuration('900'), 900);
  assert.equal(parseDuration('5 minutes'), undefined);
});

test('the shipped config is a Docker Hub mirror on :5000 with the cache in ./data', () => {
  const config = loadConfig({ file: 'config/registry-edge.yaml', env: {} });
  assert.equal(config.http.addr, '0.0.0.0:5000');
  assert.equal(config.cache.dir, './data');
  assert.deepEqual(config.upstreams.map((u) => u.url), ['https://registry-1.docker.io']);
  assert.equal(config.auth.mode, 'public');
  assert.ok(config.upstream.auth.realms.includes('auth.docker.io'));
});

test('env overrides REGISTRY_EDGE_<PATH> win over the file', () => {
  const file = path.join(dir, 'a.yaml');
  writeFileSync(file, 'http:\n  addr: 127.0.0.1:1\ncache:\n  maxsize: 1GiB\n  tag_ttl: 10s\n');
  const config = loadConfig({
    file,
    env: {
      REGISTRY_EDGE_HTTP_ADDR: '127.0.0.1:7000',
      REGISTRY_EDGE_ADMIN_ADDR: '[::1]:7001',
      REGISTRY_EDGE_UPSTREAMS: 'http://10.0.0.1:5000, https://reg.example/prefix/',
      REGISTRY_EDGE_CACHE_DIR: '/var/cache/edge',
      REGISTRY_EDGE_CACHE_MAXSIZE: '20GiB',
    },
  });
  assert.equal(config.http.addr, '127.0.0.1:7000');
  assert.equal(config.admin.addr, '[::1]:7001');
  assert.deepEqual(config.upstreams, [
    { url: 'http://10.0.0.1:5000', weight: 1, max_fails: 1, fail_timeout: 10, backup: false },
    { url: 'https://reg.example/prefix', weight: 1, max_fails: 1, fail_timeout: 10, backup: false },
  ]);
  assert.equal(config.cache.dir, '/var/cache/edge');
  assert.equal(config.cache.maxsize, 20 * 1024 ** 3);
  assert.equal(config.cache.tag_ttl, 10);
  assert.ok(Object.isFrozen(config.cache));
  assert.equal(envName('cache.tag_ttl'), 'REGISTRY_EDGE_CACHE_TAG_TTL');
});

test('every problem is reported, one line each, naming key, value and what is allowed', () => {
  const file = path.join(dir, 'bad.yaml');
  writeFileSync(file, 'http:\n  addr: nowhere\ncache:\n  maxsize: lots\nauth:\n  mode: open\nbogus: 1\n');
  try {
    loadConfig({ file, env: { REGISTRY_EDGE_UPSTREAMS: 'ftp://x' } });
    assert.fail('expected a ConfigError');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    const text = err.problems.join('\n');
    assert.match(text, /http\.addr: "nowhere" is not allowed; expected host:port/);
    assert.match(text, /cache\.maxsize: "lots" is not allowed/);
    assert.match(text, /auth\.mode: "open" is not allowed; expected one of public, token, upstream-check/);
    assert.match(text, /bogus: unknown key/);
    assert.match(text, /upstreams \(env REGISTRY_EDGE_UPSTREAMS\): "ftp:\/\/x" is not allowed/);
    assert.equal(err.problems.length, 5);
  }
});

test('the CLI exits 2 on a bad config with one line per problem', async () => {
  const r = await run(process.execPath, [EDGE_BIN, 'serve', '--config', path.join(dir, 'missing.yaml')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cannot read/);
  const bad = await run(process.execPath, [EDGE_BIN, 'config', 'check', '--config', 'config/registry-edge.yaml'], {
    env: { ...process.env, REGISTRY_EDGE_CACHE_MAXSIZE: '-1', REGISTRY_EDGE_HTTP_ADDR: 'x' },
  });
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim().split('\n').length, 2, bad.stderr);
  const good = await run(process.execPath, [EDGE_BIN, 'config', 'check', '--config', 'config/registry-edge.yaml']);
  assert.equal(good.code, 0, good.stderr);
  assert.equal((parseYaml(good.stdout) as { http: { addr: string } }).http.addr, '0.0.0.0:5000');
});

test('the reference lists every key with its env name', () => {
  const ref = configReference();
  for (const k of KEYS) assert.ok(ref.includes(`\`${envName(k.path)}\``), k.path);
});

/** The problem lines of a config that must not load. */
function problemsOf(options: Parameters<typeof loadConfig>[0]): readonly string[] {
  try {
    loadConfig(options);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  return assert.fail('expected a ConfigError');
}

test('a dotted key in the file is reported by name, not silently ignored', () => {
  const file = path.join(dir, 'dotted.yaml');
  writeFileSync(file, '"log.level": debug\ncache:\n  "tag.ttl": 5s\n  maxsize: 1GiB\n');
  assert.deepEqual(problemsOf({ file, env: {} }), [
    'log.level: unknown key "log.level": keys do not take dots; nest them (log: {level: ...})',
    'cache.tag.ttl: unknown key "tag.ttl": keys do not take dots; nest them (tag: {ttl: ...})',
  ]);
  // Nested, the same settings load.
  writeFileSync(file, 'log:\n  level: debug\ncache:\n  tag_ttl: 5s\n');
  const config = loadConfig({ file, env: {} });
  assert.equal(config.log.level, 'debug');
  assert.equal(config.cache.tag_ttl, 5);
});

// What each duration key feeds, read from its use in src/: a timer (setTimeout, setInterval,
// socket and undici timeouts) or a comparison with an age or a measured time.
const TIMERS = [
  'http.headers_timeout', 'http.idle_timeout', 'http.body_timeout', 'http.shutdown_timeout',
  'upstream.health.interval', 'upstream.health.timeout', 'upstream.connect_timeout', 'upstream.headers_timeout', 'upstream.body_timeout',
  'cache.revalidate_timeout', 'cache.open_files_idle', 'cache.write_retry_interval', 'cache.index_snapshot_interval', 'startup.timeout',
  'zone.redis.timeout', 'zone.redis.reconnect_max', 'zone.lease_ttl', 'zone.peer.timeout',
];
const COMPARED = ['auth.token.leeway', 'auth.check.ttl', 'cache.tag_ttl', 'cache.max_stale', 'cache.sync_read_max', 'prewarm.dedupe_ttl', 'status.window', 'zone.facts_ttl', 'zone.warn_interval'];
const NODE_TIMER_MAX_MS = 2 ** 31 - 1;

test('every duration key is a timer with a maximum that fits a Node timer, or a comparison without one', () => {
  const durations = KEYS.filter((k) => k.type === 'duration');
  assert.deepEqual(durations.map((k) => k.path).sort(), [...TIMERS, ...COMPARED].sort(), 'each duration key is classified');
  for (const k of durations) {
    if (TIMERS.includes(k.path)) assert.ok(k.max !== undefined && k.max * 1000 <= NODE_TIMER_MAX_MS, `${k.path}: max ${k.max}`);
    else assert.equal(k.max, undefined, k.path);
  }
  assert.equal(TIMER_MAX, 24 * 86400);
});

test('a timer duration past 24d is refused with one line naming the key and the range; 24d loads', () => {
  for (const key of TIMERS) {
    const env = envName(key);
    assert.deepEqual(problemsOf({ env: { [env]: '24d1s' } }), [
      `${key} (env ${env}): "24d1s" is not allowed; expected a duration like 30s, 5m, 1h or 7d (from ${KEYS.find((k) => k.path === key)?.min}s to 24d)`,
    ]);
    const config = loadConfig({ env: { [env]: '24d' } });
    let value: unknown = config;
    for (const part of key.split('.')) value = (value as Record<string, unknown>)[part];
    assert.equal(value, TIMER_MAX, key);
  }
  const file = path.join(dir, 'long.yaml');
  writeFileSync(file, 'upstream:\n  body_timeout: 30d\n');
  assert.deepEqual(problemsOf({ file, env: {} }), ['upstream.body_timeout: "30d" is not allowed; expected a duration like 30s, 5m, 1h or 7d (from 0.001s to 24d)']);
});

test('durations compared with ages keep taking long values', () => {
  const env = Object.fromEntries(COMPARED.map((key) => [envName(key), '400d']));
  const config = loadConfig({ env });
  assert.equal(config.cache.max_stale, 400 * 86400);
  assert.equal(config.cache.tag_ttl, 400 * 86400);
  assert.equal(config.auth.check.ttl, 400 * 86400);
});

test('the CLI refuses a timer past what Node holds before anything starts, with exit code 2', async () => {
  const r = await run(process.execPath, [EDGE_BIN, 'config', 'check', '--config', 'config/registry-edge.yaml'], {
    env: { ...process.env, REGISTRY_EDGE_CACHE_WRITE_RETRY_INTERVAL: '30d' },
  });
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /cache\.write_retry_interval \(env REGISTRY_EDGE_CACHE_WRITE_RETRY_INTERVAL\): "30d" is not allowed; .*to 24d/);
  assert.doesNotMatch(r.stderr, /TimeoutOverflowWarning/);
});

test('a retired key still loads, with one warning naming it and what to do; start-up goes on', async () => {
  const file = path.join(dir, 'retired.yaml');
  writeFileSync(file, 'cache:\n  fill_gc_every: 8MiB\n  maxsize: 1GiB\n');
  const warnings: string[] = [];
  const config = loadConfig({ file, env: {}, onWarning: (line) => warnings.push(line) });
  assert.equal(config.cache.maxsize, 1024 ** 3);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0] ?? '', /^cache\.fill_gc_every: no longer has an effect .*; delete it$/);
  const checked = await run(process.execPath, [EDGE_BIN, 'config', 'check', '--config', file], { env: { ...process.env, REGISTRY_EDGE_CACHE_DIR: path.join(dir, 'cache') } });
  assert.equal(checked.code, 0, checked.stderr);
  assert.match(checked.stderr, /^config: warning: cache\.fill_gc_every: no longer has an effect/);
});

describe('mistakes named', () => {
  test('a mistyped key: did you mean the nearest key, at the top and under an origin', () => {
    const file = path.join(dir, 'typo.yaml');
    writeFileSync(file, 'cache:\n  max_size: 1GiB\nupstream:\n  health:\n    intervall: 5s\nlogg: {level: debug}\nfrobnicate: 1\n');
    assert.deepEqual(problemsOf({ file, env: {} }), [
      'cache.max_size: unknown key; did you mean cache.maxsize?',
      'upstream.health.intervall: unknown key; did you mean upstream.health.interval?',
      'logg.level: unknown key; did you mean log.level?',
      "frobnicate: unknown key; see 'registry-edge config reference' for the keys",
    ]);
    writeFileSync(file, 'origins:\n  ghcr.io: {upstream: [https://ghcr.io]}\ndefault_origin: ghcr.io\n');
    assert.ok(problemsOf({ file, env: {} }).includes('origins.ghcr.io.upstream: unknown key; did you mean origins.ghcr.io.upstreams?'));
  });

  test('a REGISTRY_EDGE_* variable that names no key: a warning, with the nearest name', () => {
    const warnings: string[] = [];
    const config = loadConfig({ env: { REGISTRY_EDGE_CACHE_MAX_SIZE: '1GiB', REGISTRY_EDGE_CACHE_MAXSIZE: '2GiB', REGISTRY_EDGE_ORIGINS_GHCR_IO_UPSTREAMS: 'https://ghcr.io', OTHER_CACHE: 'x' }, onWarning: (l) => warnings.push(l) });
    assert.equal(config.cache.maxsize, 2 * 1024 ** 3);
    assert.deepEqual(warnings, [
      'env REGISTRY_EDGE_CACHE_MAX_SIZE: names no config key, so it is ignored; did you mean REGISTRY_EDGE_CACHE_MAXSIZE?',
      'env REGISTRY_EDGE_ORIGINS_GHCR_IO_UPSTREAMS: names no key of an origin the file declares (env overrides cannot add one), so it is ignored',
    ]);
    const file = path.join(dir, 'declared.yaml');
    writeFileSync(file, 'origins:\n  ghcr.io: {upstreams: [https://ghcr.io]}\ndefault_origin: ghcr.io\n');
    const quiet: string[] = [];
    loadConfig({ file, env: { REGISTRY_EDGE_ORIGINS_GHCR_IO_UPSTREAMS: 'https://ghcr.io' }, onWarning: (l) => quiet.push(l) });
    assert.deepEqual(quiet, [], 'a variable of a declared origin names a key');
  });
});

test('a secret of the wrong type is refused without printing it', () => {
  const file = path.join(dir, 'secret-number.yaml');
  writeFileSync(file, 'upstream:\n  auth:\n    password: 12345678\n');
  assert.deepEqual(problemsOf({ file, env: {} }), ['upstream.auth.password: <hidden> is not allowed; expected a string']);
});
