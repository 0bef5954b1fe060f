import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { originEnvName } from '../../src/config/schema.js';
import { removeDir, tempDir } from '../helpers/proc.js';

const dir = tempDir('re-config-origins-');
after(() => removeDir(dir));

const load = (yaml: string, env: NodeJS.ProcessEnv = {}): ReturnType<typeof loadConfig> => {
  const file = path.join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  return loadConfig({ file, env });
};

const problemsOf = (yaml: string, env: NodeJS.ProcessEnv = {}): readonly string[] => {
  try {
    load(yaml, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  assert.fail('the config loaded');
};

const ZONE = `
origins:
  hub.example.internal:
    upstreams: [http://10.0.0.11:5000, http://10.0.0.12:5000]
    upstream: {balance: round_robin, auth: {username: edge, password: secret}}
    push: true
  docker.io:
    upstreams: [https://registry-1.docker.io]
    upstream: {auth: {realms: [auth.docker.io]}}
    cache: {tag_ttl: 5m}
default_origin: docker.io
`;

test('without origins the top-level keys are the one origin, taking pushes, with no host', () => {
  const config = load('upstreams: [http://10.0.0.1:5000]\ncache:\n  tag_ttl: 10s\n');
  assert.equal(config.origins.length, 1);
  const [one] = config.origins;
  assert.equal(one?.host, '');
  assert.equal(one?.push, true);
  assert.deepEqual(one?.upstreams.map((u) => u.url), ['http://10.0.0.1:5000']);
  assert.equal(one?.cache.tag_ttl, 10);
});

test('origins: each host with its own keys, the default first; unset keys take the table defaults, pushes off unless set', () => {
  const config = load(ZONE);
  assert.deepEqual(config.origins.map((o) => o.host), ['docker.io', 'hub.example.internal']);
  const [hub, centre] = config.origins;
  assert.equal(hub?.push, false);
  assert.equal(hub?.cache.tag_ttl, 300);
  assert.equal(hub?.upstream.auth.username, '', "the centre's credentials do not reach docker.io");
  assert.deepEqual(hub?.upstream.auth.realms, ['auth.docker.io']);
  assert.equal(centre?.push, true);
  assert.equal(centre?.upstream.balance, 'round_robin');
  assert.equal(centre?.cache.tag_ttl, 60);
  assert.equal(centre?.keyPrefix, 'origins.hub.example.internal.');
});

test('env REGISTRY_EDGE_ORIGINS_<HOST>_<PATH> reaches an origin key; a bad value names the key and the variable', () => {
  const variable = originEnvName('hub.example.internal', 'upstream.auth.password');
  assert.equal(variable, 'REGISTRY_EDGE_ORIGINS_HUB_EXAMPLE_INTERNAL_UPSTREAM_AUTH_PASSWORD');
  assert.equal(originEnvName('10.0.0.5:5000', 'push'), 'REGISTRY_EDGE_ORIGINS_10_0_0_5_5000_PUSH');
  const config = load(ZONE, { [variable]: 'from-env', REGISTRY_EDGE_ORIGINS_DOCKER_IO_CACHE_TAG_TTL: '1m' });
  assert.equal(config.origins[1]?.upstream.auth.password, 'from-env');
  assert.equal(config.origins[0]?.cache.tag_ttl, 60);
  assert.deepEqual(problemsOf(ZONE, { REGISTRY_EDGE_ORIGINS_DOCKER_IO_PUSH: 'maybe' }), [
    'origins.docker.io.push (env REGISTRY_EDGE_ORIGINS_DOCKER_IO_PUSH): "maybe" is not allowed; expected true or false',
  ]);
});

test('problems of origins: one line each naming the key', () => {
  const problems = problemsOf(`
upstreams: [http://10.0.0.1:5000]
origins:
  ghcr.io:
    upstreams: [https://ghcr.io]
    cache: {dir: /tmp, tag_ttl: soon}
    colour: blue
  Bad_Host:
    upstreams: [https://x.example]
  quay.io:
    upstream: {balance: random}
default_origin: gcr.io
`);
  assert.deepEqual([...problems].sort(), [
    'default_origin: "gcr.io" is not one of origins (ghcr.io, Bad_Host, quay.io)',
    'origins.Bad_Host: "Bad_Host" is not a registry host; expected a lower-case host with a dot or a port, as images name it (docker.io, ghcr.io, 10.0.0.5:5000)',
    "origins.ghcr.io.cache.dir: unknown key; see 'registry-edge config reference' for the keys",
    'origins.ghcr.io.cache.tag_ttl: "soon" is not allowed; expected a duration like 30s, 5m, 1h or 7d (at least 0s)',
    "origins.ghcr.io.colour: unknown key; see 'registry-edge config reference' for the keys",
    'origins.quay.io.upstream.balance: "random" is not allowed; expected one of ip_hash, round_robin, least_conn',
    'origins.quay.io.upstreams: must be set (the instances of quay.io, e.g. [https://quay.io])',
    'upstreams: set it under origins.<host> (with origins, the top-level keys of an origin are not read)',
  ]);
});

test('default_origin is required with origins and means nothing without them', () => {
  assert.deepEqual(problemsOf('origins:\n  docker.io:\n    upstreams: [https://registry-1.docker.io]\n'), [
    'default_origin: must be set when origins is set (the origin for requests with no ?ns= and no host prefix)',
  ]);
  assert.deepEqual(problemsOf('default_origin: docker.io\n'), [
    'default_origin: names one of origins; set origins too (without it the top-level keys are the one origin)',
  ]);
});

test("per-origin rules name the origin's keys: token mode needs its settings there", () => {
  const problems = problemsOf('origins:\n  hub.example.internal:\n    upstreams: [http://10.0.0.1:5000]\n    auth: {mode: token}\ndefault_origin: hub.example.internal\n');
  assert.ok(problems.includes('origins.hub.example.internal.auth.token.service: must be set when auth.mode is token'), problems.join('\n'));
});
