/**
 * A loaded config written back as the YAML the loader reads (`config check`), built from
 * the key table so every key appears once, secrets masked unless asked for.
 */
import { dump as toYaml } from 'js-yaml';
import { KEYS, ORIGIN_KEYS, type Config, type KeySpec } from './schema.js';

type Tree = Record<string, unknown>;

/** What a masked secret reads as: loading it back gives a visibly wrong value, never an empty one. */
export const MASK = '<hidden>';

// By name too, so a credential key added without the flag is still not printed.
const SECRET_NAME = /(^|_)(password|secret|token)$/;

export function isSecret(spec: KeySpec): boolean {
  return spec.secret === true || SECRET_NAME.test(spec.path.split('.').pop() ?? '');
}

function getPath(tree: unknown, path: string): unknown {
  let node = tree;
  for (const part of path.split('.')) node = typeof node === 'object' && node !== null ? (node as Tree)[part] : undefined;
  return node;
}

/** By parts: an origin's host has dots of its own. */
function setPath(tree: Tree, parts: readonly string[], value: unknown): void {
  let node = tree;
  for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Tree;
  node[parts[parts.length - 1] as string] = value;
}

const BINARY_UNITS: ReadonlyArray<[string, number]> = [['TiB', 1024 ** 4], ['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]];

/** Sizes and durations as a person writes them (10GiB, 7d), where that is exact. */
function written(spec: KeySpec, value: unknown): unknown {
  if (spec.type === 'bytes' && typeof value === 'number' && value > 0) {
    const unit = BINARY_UNITS.find(([, n]) => value % n === 0);
    return unit ? `${value / unit[1]}${unit[0]}` : value;
  }
  if (spec.type === 'duration' && typeof value === 'number') {
    if (value >= 86400 && value % 86400 === 0) return `${value / 86400}d`;
    // 1e-7 as text is no duration the loader reads; as a YAML number it is seconds.
    return /e/.test(String(value)) ? value : `${value}s`;
  }
  return value;
}

export interface DumpedConfig {
  readonly yaml: string;
  /** Dotted paths of the secrets that were set and masked. */
  readonly masked: readonly string[];
}

/** The config as YAML that loads to the same config (apart from masked secrets, unless `reveal`). */
export function dumpConfig(config: Config, reveal = false): DumpedConfig {
  const tree: Tree = {};
  const masked: string[] = [];
  const put = (spec: KeySpec, from: unknown, at: readonly string[]): void => {
    const value = getPath(from, spec.path);
    const hide = !reveal && isSecret(spec) && value !== '' && value !== undefined;
    if (hide) masked.push([...at, spec.path].join('.'));
    setPath(tree, [...at, ...spec.path.split('.')], hide ? MASK : written(spec, value));
  };
  // Without origins in the file the one origin is the top-level keys; with it, those keys are refused at the top.
  const single = config.origins.length === 1 && config.origins[0]?.host === '';
  for (const spec of KEYS) if (single || !ORIGIN_KEYS.includes(spec)) put(spec, config, []);
  if (!single) {
    for (const origin of config.origins) for (const spec of ORIGIN_KEYS) put(spec, origin, ['origins', origin.host]);
  }
  return { yaml: toYaml(tree, { lineWidth: -1, noRefs: true }), masked };
}
