// config check's promise: whatever config loads, its dump (secrets shown) loads back to the
// same config, and its masked dump prints no secret.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { MASK, dumpConfig, isSecret } from '../../src/config/dump.js';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { KEYS, envName, type Config, type KeySpec } from '../../src/config/schema.js';
import { removeDir, tempDir } from '../helpers/proc.js';

const dir = tempDir('re-config-dump-');
after(() => removeDir(dir));

const url = fc.constantFrom('http://10.0.0.1:5000', 'https://reg.example/prefix', 'https://registry-1.docker.io', 'http://[::1]:5000');
const number = (spec: KeySpec, integer: boolean): fc.Arbitrary<number> => {
  const min = spec.min ?? 0;
  const max = spec.max ?? 1e12;
  return integer ? fc.integer({ min: Math.ceil(min), max: Math.floor(Math.min(max, Number.MAX_SAFE_INTEGER)) }) : fc.double({ min, max, noNaN: true });
};

function valueAt(config: Config, spec: KeySpec): unknown {
  let node: unknown = config;
  for (const part of spec.path.split('.')) node = (node as Record<string, unknown>)[part];
  return node;
}

/** A value each key takes, as an env variable writes it. */
function valueFor(spec: KeySpec): fc.Arbitrary<string> {
  switch (spec.type) {
    case 'duration':
      // Decimals as operators write them (0.0000001 is 1e-7 once loaded), and whole seconds.
      return fc.oneof(fc.tuple(fc.nat(100), fc.stringMatching(/^0{0,8}[1-9]$/)).map(([whole, fraction]) => `${whole}.${fraction}`), number(spec, true).map(String));
    case 'bytes':
    case 'int':
      return number(spec, true).map(String);
    case 'workers':
      return fc.oneof(number(spec, true).map(String), fc.constant('auto'));
    case 'bool':
      return fc.constantFrom('true', 'false');
    case 'enum':
      return fc.constantFrom(...(spec.values ?? []));
    case 'addr':
      return fc.constantFrom('0.0.0.0:5000', '127.0.0.1:0', '[::]:5001', ...(spec.optional ? [''] : []));
    case 'url':
      return spec.optional ? fc.oneof(url, fc.constant('')) : url;
    case 'strings':
      return fc.array(fc.constantFrom('10.0.0.0/8', 'auth.docker.io', '::1'), { maxLength: 3 }).map((l) => l.join(','));
    case 'upstreams':
      return fc.uniqueArray(url, { minLength: 1, maxLength: 3 }).map((l) => l.join(','));
    case 'string':
      return fc.oneof(fc.constant(''), fc.string({ maxLength: 20 }));
  }
}

// A few keys at a time: with every key set, some cross-key rule (token mode needs its keys, ...) almost always refuses.
const env = fc
  .subarray([...KEYS], { maxLength: 8 })
  .chain((keys) => fc.tuple(...keys.map((k) => valueFor(k).map((v): [string, string] => [envName(k.path), v]))))
  .map((pairs) => Object.fromEntries(pairs) as Record<string, string>);

test('a loaded config, dumped with its secrets and loaded again, is the same config', () => {
  let loaded = 0;
  fc.assert(
    fc.property(env, (variables) => {
      let config: Config;
      try {
        config = loadConfig({ env: variables });
      } catch (err) {
        // Cross-key rules (token mode needs its keys, ...): not this property's concern.
        if (err instanceof ConfigError) return;
        throw err;
      }
      loaded++;
      const file = path.join(dir, 'dumped.yaml');
      writeFileSync(file, dumpConfig(config, true).yaml);
      assert.deepEqual(loadConfig({ file, env: {} }), config);
      const masked = dumpConfig(config, false);
      writeFileSync(file, masked.yaml);
      const hidden = loadConfig({ file, env: {} });
      for (const spec of KEYS.filter(isSecret)) {
        if (!variables[envName(spec.path)]) continue;
        assert.ok(masked.masked.includes(spec.path), spec.path);
        assert.equal(valueAt(hidden, spec), MASK, `${spec.path} is printed as ${MASK}`);
      }
    }),
    { numRuns: 300 },
  );
  assert.ok(loaded > 100, `only ${loaded} of 300 generated configs loaded`);
});
