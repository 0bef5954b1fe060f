/**
 * Loads the YAML config, applies `REGISTRY_EDGE_<PATH>` env overrides and validates
 * every key against the table in schema.ts. All problems are reported at once, one
 * line each naming the key, the value and what is allowed.
 */
import { readFileSync } from 'node:fs';
import { load as parseYaml } from 'js-yaml';
import { KEYS, ORIGIN_HOST, ORIGIN_KEYS, RETIRED_KEYS, envName, originEnvName, type Config, type KeySpec, type OriginConfig, type UpstreamConfig } from './schema.js';
import { MASK, isSecret } from './dump.js';
import { didYouMean, nearest } from './suggest.js';
import { parseBytes, parseDuration } from './units.js';
import { prewarmProblems } from '../prewarm/settings.js';

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n${problems.join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Tree = Record<string, unknown>;

function isTree(value: unknown): value is Tree {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function getPath(tree: Tree, path: string): unknown {
  let node: unknown = tree;
  for (const part of path.split('.')) {
    if (!isTree(node)) return undefined;
    node = node[part];
  }
  return node;
}

function setPath(tree: Tree, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = tree;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (!isTree(next)) node[part] = {};
    node = node[part] as Tree;
  }
  node[parts[parts.length - 1] as string] = value;
}

/** One problem line for each key in the file the schema does not know, named by its dotted path. */
function unknownKeys(tree: Tree, warn: (line: string) => void, known: readonly KeySpec[] = KEYS, at = '', prefix = ''): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(tree)) {
    const path = prefix ? `${prefix}.${key}` : key;
    // `log.level: debug` is one key named "log.level", never read (keys nest, as in registry:2); said so rather than ignored.
    if (key.includes('.')) out.push(`${at}${path}: unknown key ${show(key)}: keys do not take dots; nest them (${nested(key)})`);
    else if (known.some((k) => k.path === path)) continue;
    else if (known === KEYS && path === 'origins') continue;
    else if (RETIRED_KEYS[path] !== undefined) warn(`${at}${path}: ${RETIRED_KEYS[path]}`);
    else if (isTree(value)) out.push(...unknownKeys(value, warn, known, at, path));
    else {
      const near = nearest(path, knownPaths(known));
      out.push(`${at}${path}: unknown key; ${near === undefined ? "see 'registry-edge config reference' for the keys" : `did you mean ${at}${near}?`}`);
    }
  }
  return out;
}

function knownPaths(known: readonly KeySpec[]): string[] {
  return known === KEYS ? [...KEYS.map((k) => k.path), 'origins'] : known.map((k) => k.path);
}

/**
 * `REGISTRY_EDGE_*` variables that name no key are ignored by the loader; told, since a
 * typo in one (REGISTRY_EDGE_CACHE_MAX_SIZE) would otherwise leave the default in force unseen.
 */
function unknownVariables(tree: Tree, env: NodeJS.ProcessEnv, warn: (line: string) => void): void {
  const known = new Set(KEYS.map((k) => envName(k.path)));
  const hosts = isTree(tree.origins) ? Object.keys(tree.origins) : [];
  for (const host of hosts) for (const k of ORIGIN_KEYS) known.add(originEnvName(host, k.path));
  for (const name of Object.keys(env)) {
    if (!name.startsWith('REGISTRY_EDGE_') || known.has(name)) continue;
    const why = name.startsWith('REGISTRY_EDGE_ORIGINS_') ? 'names no key of an origin the file declares (env overrides cannot add one)' : 'names no config key';
    warn(`env ${name}: ${why}, so it is ignored${didYouMean(name, known)}`);
  }
}

/** `log.level` as YAML nests it: `log: {level: ...}`. */
function nested(dotted: string): string {
  const parts = dotted.split('.');
  return `${parts.map((part) => `${part}: `).join('{')}...${'}'.repeat(parts.length - 1)}`;
}

const show = (value: unknown): string => JSON.stringify(value) ?? String(value);

function validateUrl(text: string): string | undefined {
  try {
    const url = new URL(text);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
    return url.origin + url.pathname.replace(/\/+$/, '');
  } catch {
    return undefined;
  }
}

function isRedisUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== '';
  } catch {
    return false;
  }
}

/** `at least 1s` or `from 1s to 24d`: the range a numeric key allows, for problem lines. */
function bounds(spec: KeySpec, unit: (n: number) => string): string {
  const min = unit(spec.min ?? 0);
  return spec.max === undefined ? `at least ${min}` : `from ${min} to ${unit(spec.max)}`;
}

/** Seconds as the config writes them: whole days as `24d`, the rest as `90s`. */
const showSeconds = (s: number): string => (s >= 86400 && s % 86400 === 0 ? `${s / 86400}d` : `${s}s`);

/** A whole number from YAML, or from an env variable's digits; undefined for anything else. */
function integer(raw: unknown): number | undefined {
  const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw;
  return typeof n === 'number' && Number.isSafeInteger(n) ? n : undefined;
}

/** Returns [value] or a problem string. */
function coerce(spec: KeySpec, raw: unknown, fromEnv: string | undefined, at = ''): [unknown] | string {
  const where = fromEnv ? `${at}${spec.path} (env ${fromEnv})` : `${at}${spec.path}`;
  // A credential of the wrong type is still a credential: the line that refuses it does not print it.
  const bad = (allowed: string): string => `${where}: ${isSecret(spec) ? MASK : show(raw)} is not allowed; expected ${allowed}`;
  const outside = (n: number): boolean => (spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max);
  switch (spec.type) {
    case 'string':
      return typeof raw === 'string' ? [raw] : bad('a string');
    case 'bool':
      if (typeof raw === 'boolean') return [raw];
      if (raw === 'true' || raw === 'false') return [raw === 'true'];
      return bad('true or false');
    case 'int': {
      const n = integer(raw);
      if (n === undefined || outside(n)) return bad(`an integer (${bounds(spec, String)})`);
      return [n];
    }
    case 'bytes': {
      const n = parseBytes(raw);
      if (n === undefined || outside(n)) return bad(`a size like 1048576, 512MiB or 10GiB (${bounds(spec, (b) => `${b} bytes`)})`);
      return [n];
    }
    case 'duration': {
      const n = parseDuration(raw);
      if (n === undefined || outside(n)) return bad(`a duration like 30s, 5m, 1h or 7d (${bounds(spec, showSeconds)})`);
      return [n];
    }
    case 'enum':
      return typeof raw === 'string' && spec.values?.includes(raw) ? [raw] : bad(`one of ${spec.values?.join(', ')}`);
    case 'addr': {
      if (spec.optional && raw === '') return [''];
      const m = typeof raw === 'string' ? /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):(\d{1,5})$/.exec(raw) : null;
      if (!m || Number(m[2]) > 65535) return bad('host:port, e.g. 0.0.0.0:5000 or [::]:5000');
      return [raw];
    }
    case 'url': {
      if (spec.optional && raw === '') return [''];
      const url = typeof raw === 'string' ? validateUrl(raw) : undefined;
      return url === undefined ? bad('an http:// or https:// URL') : [url];
    }
    case 'strings': {
      const list = typeof raw === 'string' ? raw.split(',').map((s) => s.trim()).filter(Boolean) : raw;
      if (!Array.isArray(list) || !list.every((s) => typeof s === 'string')) return bad('a list of strings (env: comma-separated)');
      return [list];
    }
    case 'workers': {
      if (raw === 'auto') return [raw];
      const n = integer(raw);
      if (n === undefined || outside(n)) return bad(`an integer (${bounds(spec, String)}) or auto`);
      return [n];
    }
    case 'upstreams': {
      const list = typeof raw === 'string' ? raw.split(',').map((s) => s.trim()).filter(Boolean) : raw;
      if (!Array.isArray(list) || list.length === 0) return bad('a non-empty list of upstream URLs (env: comma-separated)');
      const out: UpstreamConfig[] = [];
      for (const item of list) {
        const server = upstreamServer(item);
        if (typeof server === 'string') return `${where}: ${show(item)} is not allowed; ${server}`;
        out.push(server);
      }
      if (new Set(out.map((u) => u.url)).size !== out.length) return `${where}: the same URL is listed twice`;
      if (out.every((u) => u.backup)) return `${where}: at least one upstream must not be a backup`;
      return [out];
    }
  }
}

const SERVER_KEYS = new Set(['url', 'weight', 'max_fails', 'fail_timeout', 'backup']);

/** One `upstreams:` entry, with nginx's defaults (weight 1, max_fails 1, fail_timeout 10s). */
function upstreamServer(item: unknown): UpstreamConfig | string {
  const entry: Tree = typeof item === 'string' ? { url: item } : isTree(item) ? item : {};
  const unknown = Object.keys(entry).filter((k) => !SERVER_KEYS.has(k));
  if (unknown.length) return `unknown upstream key ${unknown.join(', ')}; allowed: ${[...SERVER_KEYS].join(', ')}`;
  const url = typeof entry.url === 'string' ? validateUrl(entry.url) : undefined;
  if (url === undefined) return 'expected an http:// or https:// URL or {url: ..., weight, max_fails, fail_timeout, backup}';
  const weight = entry.weight ?? 1;
  const maxFails = entry.max_fails ?? 1;
  const failTimeout = parseDuration(entry.fail_timeout ?? '10s');
  if (typeof weight !== 'number' || !Number.isSafeInteger(weight) || weight < 1) return 'weight must be an integer >= 1';
  if (typeof maxFails !== 'number' || !Number.isSafeInteger(maxFails) || maxFails < 0) return 'max_fails must be an integer >= 0';
  if (failTimeout === undefined || failTimeout <= 0) return 'fail_timeout must be a duration like 10s';
  if (entry.backup !== undefined && typeof entry.backup !== 'boolean') return 'backup must be true or false';
  return { url, weight, max_fails: maxFails, fail_timeout: failTimeout, backup: entry.backup === true };
}

export interface LoadOptions {
  /** Path of the YAML file; undefined means defaults and env only. */
  readonly file?: string | undefined;
  readonly env?: NodeJS.ProcessEnv;
  /** Told of keys that still load but do nothing (retired ones) and of variables that name no key, one line each. */
  readonly onWarning?: (line: string) => void;
}

export function loadConfig(options: LoadOptions): Config {
  const env = options.env ?? process.env;
  const problems: string[] = [];
  let tree: Tree = {};
  if (options.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(options.file, 'utf8');
    } catch (err) {
      throw new ConfigError([`--config: cannot read ${options.file}: ${(err as Error).message}`]);
    }
    try {
      const doc = parseYaml(text);
      if (doc !== undefined && doc !== null && !isTree(doc)) throw new Error('the top level must be a mapping');
      tree = (doc as Tree | null | undefined) ?? {};
    } catch (err) {
      throw new ConfigError([`${options.file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
    }
  }
  const warn = options.onWarning ?? (() => undefined);
  problems.push(...unknownKeys(tree, warn));
  unknownVariables(tree, env, warn);
  const out: Tree = {};
  for (const spec of KEYS) {
    const fromEnv = env[envName(spec.path)];
    const raw = fromEnv !== undefined ? fromEnv : getPath(tree, spec.path) ?? spec.default;
    const result = coerce(spec, raw, fromEnv !== undefined ? envName(spec.path) : undefined);
    if (typeof result === 'string') problems.push(result);
    else setPath(out, spec.path, result[0]);
  }
  const top = out as unknown as Omit<Config, 'origins'>;
  const origins = tree.origins === undefined ? [topLevelOrigin(top)] : loadOrigins(tree, top.default_origin, env, problems);
  if (tree.origins === undefined && top.default_origin) problems.push(`${shownEnv('default_origin', env)}: names one of origins; set origins too (without it the top-level keys are the one origin)`);
  const config = { ...top, origins };
  if (problems.length === 0) problems.push(...crossChecks(config, env));
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(config);
}

const shownEnv = (path: string, env: NodeJS.ProcessEnv): string => (env[envName(path)] !== undefined ? `${path} (env ${envName(path)})` : path);

/** The one origin of a config without `origins`: today's top-level keys, taking pushes as before. */
function topLevelOrigin(top: Omit<Config, 'origins'>): OriginConfig {
  const { upstreams, upstream, token, auth, cache } = top;
  return { host: '', keyPrefix: '', push: true, upstreams, upstream, token, auth, cache: { tag_ttl: cache.tag_ttl, max_stale: cache.max_stale, revalidate_timeout: cache.revalidate_timeout } };
}

/**
 * `origins.<host>.<key>`: each entry takes ORIGIN_KEYS (unset keys take the table's
 * defaults, never the top-level values, so one origin's credentials cannot reach
 * another's upstreams), overridden by `REGISTRY_EDGE_ORIGINS_<HOST>_<PATH>`. The
 * default origin comes first.
 */
function loadOrigins(tree: Tree, defaultOrigin: string, env: NodeJS.ProcessEnv, problems: string[]): OriginConfig[] {
  const map = tree.origins;
  if (!isTree(map) || Object.keys(map).length === 0) {
    problems.push(`origins: ${show(map)} is not allowed; expected a mapping of registry hosts (docker.io: {upstreams: [...]}, ...)`);
    return [];
  }
  for (const spec of ORIGIN_KEYS) {
    const set = getPath(tree, spec.path) !== undefined ? spec.path : env[envName(spec.path)] !== undefined ? `${spec.path} (env ${envName(spec.path)})` : undefined;
    if (set && spec.path !== 'push') problems.push(`${set}: set it under origins.<host> (with origins, the top-level keys of an origin are not read)`);
  }
  const envNames = new Map<string, string>();
  const out: OriginConfig[] = [];
  for (const [host, sub] of Object.entries(map)) {
    const at = `origins.${host}.`;
    if (!ORIGIN_HOST.test(host)) {
      problems.push(`origins.${host}: ${show(host)} is not a registry host; expected a lower-case host with a dot or a port, as images name it (docker.io, ghcr.io, 10.0.0.5:5000)`);
      continue;
    }
    const mangled = originEnvName(host, '');
    const clash = envNames.get(mangled);
    if (clash !== undefined) problems.push(`origins.${host}: its env overrides (${mangled}*) are those of origins.${clash} too; hosts must differ in more than dots, dashes and colons`);
    envNames.set(mangled, host);
    if (!isTree(sub)) {
      problems.push(`origins.${host}: ${show(sub)} is not allowed; expected a mapping of its keys (upstreams, upstream, auth, token, cache, push)`);
      continue;
    }
    problems.push(...unknownKeys(sub, () => undefined, ORIGIN_KEYS, at));
    const entry: Tree = {};
    for (const spec of ORIGIN_KEYS) {
      const variable = originEnvName(host, spec.path);
      const fromEnv = env[variable];
      const given = fromEnv !== undefined ? fromEnv : getPath(sub, spec.path);
      if (given === undefined && spec.path === 'upstreams') problems.push(`${at}upstreams: must be set (the instances of ${host}, e.g. [https://${host}])`);
      const result = coerce(spec, given ?? spec.default, fromEnv !== undefined ? variable : undefined, at);
      if (typeof result === 'string') problems.push(result);
      else setPath(entry, spec.path, result[0]);
    }
    out.push({ ...(entry as unknown as Omit<OriginConfig, 'host' | 'keyPrefix'>), host, keyPrefix: at });
  }
  const first = out.findIndex((o) => o.host === defaultOrigin);
  if (!defaultOrigin) problems.push(`${shownEnv('default_origin', env)}: must be set when origins is set (the origin for requests with no ?ns= and no host prefix)`);
  else if (first < 0 && !problems.some((p) => p.startsWith(`origins.${defaultOrigin}`))) problems.push(`${shownEnv('default_origin', env)}: ${show(defaultOrigin)} is not one of origins (${Object.keys(map).join(', ')})`);
  if (first > 0) out.unshift(...out.splice(first, 1));
  return out;
}

/** Rules that span keys: what one setting requires of others. */
function crossChecks(config: Config, env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = [];
  const tokenPaths = new Map<string, string>();
  for (const origin of config.origins) {
    problems.push(...originChecks(origin, env));
    const { path } = origin.token;
    const taken = tokenPaths.get(path);
    if (path && taken !== undefined) problems.push(`${origin.keyPrefix}token.path: ${show(path)} is the token route of ${taken} already; give each origin its own`);
    if (path) tokenPaths.set(path, `origins.${origin.host}`);
  }
  const named = (path: string): string => shownEnv(path, env);
  if (Boolean(config.http.tls.certificate) !== Boolean(config.http.tls.key)) {
    problems.push(`${named(config.http.tls.certificate ? 'http.tls.key' : 'http.tls.certificate')}: http.tls.certificate and http.tls.key go together`);
  }
  problems.push(...prewarmProblems(config.prewarm, named));
  if (config.zone.redis.url && !isRedisUrl(config.zone.redis.url)) {
    // The value is not quoted: it may carry the Redis password.
    problems.push(`${named('zone.redis.url')}: not allowed; expected a redis:// or rediss:// URL with a host, e.g. redis://redis.zone-a:6379/0`);
  }
  const { peer, secret } = config.zone;
  if (peer.addr && !secret) problems.push(`${named('zone.secret')}: must be set when zone.peer.addr is set (the replicas of the zone authenticate to each other with it)`);
  if (peer.addr && config.zone.redis.url && !peer.url) problems.push(`${named('zone.peer.url')}: must be set when zone.redis.url and zone.peer.addr are set (how the zone's other replicas reach this one's peer listener, e.g. http://10.0.3.7:5002)`);
  if (config.workers !== 1 && config.zone.redis.url && (!peer.addr || peer.addr.endsWith(':0'))) {
    problems.push(`${named('zone.peer.addr')}: with workers above 1 in a zone (zone.redis.url), set a port: worker n listens on it + n - 1, and zone.peer.url's port + n - 1 names it`);
  } else if (config.workers !== 1 && !config.zone.redis.url && peer.addr) {
    problems.push(`${named('zone.peer.addr')}: a peer listener without zone.redis.url takes no part with workers above 1 (the workers follow each other on loopback); set zone.redis.url too or leave it empty`);
  }
  if (peer.tls && !config.http.tls.certificate) problems.push(`${named('zone.peer.tls')}: needs http.tls.certificate and http.tls.key (the peer listener serves that pair)`);
  return problems;
}

/** What one origin's settings require of each other. */
function originChecks(config: OriginConfig, env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = [];
  const named = (path: string): string => {
    const variable = config.host ? originEnvName(config.host, path) : envName(path);
    return env[variable] !== undefined ? `${config.keyPrefix}${path} (env ${variable})` : `${config.keyPrefix}${path}`;
  };
  if (config.auth.mode === 'token') {
    for (const key of ['service', 'issuer', 'rootcertbundle'] as const) {
      if (!config.auth.token[key]) problems.push(`${named(`auth.token.${key}`)}: must be set when auth.mode is token`);
    }
    if (!config.auth.token.realm && !(config.token.path && config.token.url)) {
      problems.push(`${named('auth.token.realm')}: set it, or token.path and token.url, when auth.mode is token (clients need a realm to get tokens)`);
    }
  }
  if (config.auth.htpasswd.path && config.auth.mode !== 'public') {
    problems.push(`${named('auth.htpasswd.path')}: only applies when auth.mode is public (the other modes let the centre decide)`);
  }
  if (Boolean(config.token.path) !== Boolean(config.token.url)) {
    problems.push(`${named(config.token.path ? 'token.url' : 'token.path')}: token.path and token.url go together`);
  }
  if (config.token.path && !/^\/[A-Za-z0-9._~\/-]*$/.test(config.token.path)) {
    problems.push(`${named('token.path')}: ${JSON.stringify(config.token.path)} is not allowed; expected a path like /token`);
  }
  return problems;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** The key table as Markdown, for the README and `config reference`. */
export function configReference(): string {
  const limit = (k: KeySpec): string => (k.max === undefined ? '' : `, at most ${k.type === 'duration' ? showSeconds(k.max) : k.max}`);
  const row = (k: KeySpec, path: string, env: string): string => `| \`${path}\` | \`${env}\` | ${k.type === 'workers' ? 'int or auto' : k.type}${k.values ? ` (${k.values.join(', ')})` : ''}${limit(k)} | \`${show(k.default)}\` | ${k.doc} |`;
  const rows = KEYS.map((k) => row(k, k.path, envName(k.path)));
  // The other per-origin keys are the top-level ones above, under origins.<host>.
  for (const k of ORIGIN_KEYS.filter((o) => !KEYS.includes(o))) rows.push(row(k, `origins.<host>.${k.path}`, originEnvName('<HOST>', k.path)));
  return ['| key | env | type | default | meaning |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}
