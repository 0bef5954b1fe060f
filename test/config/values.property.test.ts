// Properties of config values: the unit parsers give a usable number or nothing, and
// loadConfig, whatever the env and the file hold, either returns sane values or throws
// ConfigError whose every line names the key it is about.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { KEYS, envName, type Config, type KeySpec } from '../../src/config/schema.js';
import { parseBytes, parseDuration } from '../../src/config/units.js';
import { removeDir, tempDir } from '../helpers/proc.js';

const dir = tempDir('re-config-prop-');
after(() => removeDir(dir));

const RUNS = { numRuns: 1000 };

const digitString = (min: number, max: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: min, maxLength: max });
/** Numbers as text, from small to far past what a double holds. */
const numeric = fc.oneof(fc.nat().map(String), digitString(1, 25), digitString(300, 400), fc.tuple(digitString(1, 5), digitString(1, 5)).map(([a, b]) => `${a}.${b}`));
const unit = fc.constantFrom('', 'b', 'k', 'KiB', 'mb', 'MiB', 'g', 'GiB', 'T', 'tib', 'ms', 's', 'm', 'h', 'd', 'x', 'e3', 'seconds');
const unitValue = fc.tuple(numeric, fc.constantFrom('', ' '), unit).map(([n, s, u]) => `${n}${s}${u}`);
/** What an operator (or a typo) puts in a REGISTRY_EDGE_* variable. */
const envValue = fc.oneof(
  unitValue,
  fc.array(fc.tuple(numeric, fc.constantFrom('ms', 's', 'm', 'h', 'd')).map(([n, u]) => n + u), { minLength: 1, maxLength: 3 }).map((p) => p.join('')),
  fc.constantFrom('', 'true', 'false', 'yes', '0', '-1', 'info', 'token', 'public', 'upstream-check', 'round_robin', 'client', '/token', 'token', '../x', 'NaN', 'Infinity', '1e400'),
  fc.constantFrom('0.0.0.0:5000', '[::]:0', ':99999', 'localhost:', 'http://a:1', 'https://h.example/x/', 'ftp://x', 'http://[::1', 'http://a,https://b', 'http://a,http://a', ',', ' , '),
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
);
const env = fc.dictionary(fc.constantFrom(...KEYS.map((k) => envName(k.path))), envValue, { maxKeys: 6 });

/** Every problem line starts with the key it is about (with the env variable when that is where the value came from). */
function namesAKey(line: string, extraKeys: readonly string[] = []): boolean {
  const keys = [...KEYS.map((k) => k.path), ...extraKeys];
  return keys.some((key) => line.startsWith(`${key}: `) || line.startsWith(`${key} (env ${envName(key)}): `));
}

function valueAt(config: Config, spec: KeySpec): unknown {
  let node: unknown = config;
  for (const part of spec.path.split('.')) node = (node as Record<string, unknown>)[part];
  return node;
}

/** What a loaded config promises its users: numbers they can hand to timers, buffers and comparisons. */
function checkLoaded(config: Config): void {
  for (const spec of KEYS) {
    const v = valueAt(config, spec);
    if (spec.type === 'bytes' || spec.type === 'int') assert.ok(typeof v === 'number' && Number.isSafeInteger(v) && v >= (spec.min ?? 0), `${spec.path} = ${String(v)}`);
    if (spec.type === 'duration') assert.ok(typeof v === 'number' && Number.isFinite(v) && v >= (spec.min ?? 0), `${spec.path} = ${String(v)}`);
    // A key with a maximum feeds a timer: what it loads must fit one (2^31-1 ms), or Node fires it after 1 ms.
    if (spec.max !== undefined) assert.ok(typeof v === 'number' && v <= spec.max && (spec.type !== 'duration' || v * 1000 <= 2 ** 31 - 1), `${spec.path} = ${String(v)}`);
  }
}

function load(options: Parameters<typeof loadConfig>[0], extraKeys: readonly string[] = []): void {
  let config: Config;
  try {
    config = loadConfig(options);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `threw ${String(err)}`);
    assert.ok(err.problems.length > 0);
    for (const line of err.problems) assert.ok(namesAKey(line, extraKeys), `a problem line names no key: ${line}`);
    return;
  }
  checkLoaded(config);
}

test('parseBytes and parseDuration give a usable number or undefined, for any value', () => {
  const value = fc.oneof(fc.anything(), unitValue, envValue, fc.double(), fc.integer());
  fc.assert(fc.property(value, (v) => {
    const bytes = parseBytes(v);
    if (bytes !== undefined) assert.ok(Number.isSafeInteger(bytes) && bytes >= 0, `${String(v)} -> ${bytes} bytes`);
    const seconds = parseDuration(v);
    if (seconds !== undefined) assert.ok(Number.isFinite(seconds) && seconds >= 0, `${String(v)} -> ${seconds} s`);
  }), { numRuns: 2000 });
});

test('sizes and durations mean what their units say', () => {
  const bytesUnit = fc.constantFrom(['', 1], ['b', 1], ['KiB', 1024], ['MiB', 1024 ** 2], ['GiB', 1024 ** 3], ['kb', 1e3], ['MB', 1e6], ['g', 1e9]);
  fc.assert(fc.property(fc.nat({ max: 100_000 }), bytesUnit, (n, [u, factor]) => assert.equal(parseBytes(`${n}${u}`), n * factor)), RUNS);
  const durationUnit = fc.constantFrom(['ms', 0.001], ['s', 1], ['m', 60], ['h', 3600], ['d', 86400]);
  fc.assert(fc.property(fc.nat({ max: 100_000 }), durationUnit, fc.nat({ max: 59 }), (n, [u, factor], extra) => {
    assert.equal(parseDuration(`${n}${u}`), n * factor);
    assert.equal(parseDuration(`${n}h${extra}m`), n * 3600 + extra * 60);
  }), RUNS);
});

test('loadConfig with random env values: sane values, or ConfigError lines that each name a key', () => {
  fc.assert(fc.property(env, (e) => load({ env: e })), RUNS);
});

test('loadConfig with a random file: sane values, or ConfigError lines that each name a key', () => {
  const knownPath = fc.constantFrom(...KEYS.map((k) => k.path));
  const unknownPath = fc.constantFrom('log.colour', 'cache.max_size', 'http.tls', 'upstream', 'nope', 'auth.token.realm.x', 'upstreams.url');
  const entry = fc.tuple(fc.oneof(knownPath, unknownPath), fc.oneof(envValue, fc.jsonValue({ maxDepth: 2 })));
  fc.assert(fc.property(fc.array(entry, { maxLength: 6 }), fc.nat(), (entries, n) => {
    const tree: Record<string, unknown> = {};
    const paths: string[] = [];
    for (const [key, value] of entries) {
      let node = tree;
      const parts = key.split('.');
      for (const part of parts.slice(0, -1)) {
        if (typeof node[part] !== 'object' || node[part] === null || Array.isArray(node[part])) node[part] = {};
        node = node[part] as Record<string, unknown>;
      }
      node[parts[parts.length - 1] as string] = value;
      paths.push(key);
    }
    // A JSON document is a YAML document.
    const file = path.join(dir, `c${n}.yaml`);
    writeFileSync(file, JSON.stringify(tree));
    // Unknown keys are reported by their own path, wherever they sit in the tree.
    load({ file, env: {} }, [...paths, ...leafPaths(tree)]);
  }), { numRuns: 500 });
});

test('loadConfig with dotted keys in the file: each is a problem line naming it, never a silently ignored setting', () => {
  const dotted = fc.oneof(fc.constantFrom(...KEYS.map((k) => k.path).filter((p) => p.includes('.'))), fc.constantFrom('a.b', 'log.', '.x', 'cache..dir'));
  fc.assert(fc.property(dotted, fc.oneof(envValue, fc.jsonValue({ maxDepth: 1 })), fc.nat(), (key, value, n) => {
    const file = path.join(dir, `d${n}.yaml`);
    writeFileSync(file, JSON.stringify({ [key]: value }));
    try {
      loadConfig({ file, env: {} });
    } catch (err) {
      assert.ok(err instanceof ConfigError, `threw ${String(err)}`);
      assert.ok(err.problems.some((line) => line.startsWith(`${key}: unknown key ${JSON.stringify(key)}`)), err.problems.join('\n'));
      return;
    }
    assert.fail(`${key} in the file loaded`);
  }), { numRuns: 300 });
});

function leafPaths(tree: unknown, prefix = ''): string[] {
  if (typeof tree !== 'object' || tree === null || Array.isArray(tree)) return prefix ? [prefix] : [];
  const out = prefix ? [prefix] : [];
  for (const [k, v] of Object.entries(tree)) out.push(...leafPaths(v, prefix ? `${prefix}.${k}` : k));
  return out;
}
