/** `client-config`: print, or write under a root, the client files that point Docker, containerd and podman at the edge. */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../cache/atomic-file.js';
import { isValidHost } from '../certs/hosts.js';
import { loadConfig } from '../config/load.js';
import { ORIGIN_HOST } from '../config/schema.js';
import { CommandFailure, UsageError, list, parseArgs, required, type Command, type Io } from './args.js';
import { CONTAINERD_DIR, DAEMON_JSON, clientFiles, prefixable, type ClientSetup } from './client-files.js';
import { warnConfig } from './config-file.js';

const USAGE = `usage:
  registry-edge client-config --host HOST[:PORT] [--ca FILE | --plain-http] [--origins ORIGIN[,ORIGIN...]] [--config FILE] [--write ROOT]
      the files that make Docker, containerd and podman/skopeo/CRI-O pull through the edge at HOST:
      /etc/docker/daemon.json (registry-mirrors, merged into the one under ROOT), the CA under
      /etc/docker/certs.d, /etc/containerd/certs.d/<origin>/hosts.toml and
      /etc/containers/registries.conf.d/registry-edge.conf (a prefix mirror per origin);
      --ca: the CA clients must trust (certs init's ca.crt); --plain-http: HOST is a plain HTTP
      listener (http.plain_addr), which clients are told is insecure; --origins: the registries the edge
      fronts as configured origins (default: those of --config, else docker.io through an edge
      with one origin); --write: write them under ROOT (/ on the client) instead of printing`;

/** host or host:port as an image reference writes it; [v6]:port too. */
function checkHost(text: string): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(text);
  const name = m?.[1]?.replace(/^\[(.*)\]$/, '$1') ?? '';
  if (!m || !isValidHost(name) || name.startsWith('*.') || Number(m[2] ?? 443) > 65535) throw new UsageError(`--host: ${JSON.stringify(text)} is not HOST or HOST:PORT (edge.zone-a.example:5000)`);
  return text;
}

function checkOrigins(origins: readonly string[]): readonly string[] {
  const bad = origins.find((o) => !ORIGIN_HOST.test(o));
  if (bad !== undefined || origins.length === 0) throw new UsageError(`--origins: ${JSON.stringify(bad ?? '')} is not a registry host (docker.io, ghcr.io, 10.0.0.5:5000)`);
  return origins;
}

/** Which registries, and whether the edge tells them apart (an `origins:` config) or has one. */
function originsOf(flag: string | undefined, file: string | undefined): Pick<ClientSetup, 'origins' | 'prefixed'> {
  const given = flag === undefined ? undefined : checkOrigins(list(flag));
  if (file === undefined) return { origins: given ?? ['docker.io'], prefixed: given !== undefined };
  const configured = loadConfig({ file, onWarning: warnConfig }).origins.map((o) => o.host).filter(Boolean);
  if (configured.length > 0) return { origins: given ?? configured, prefixed: true };
  const origins = given ?? ['docker.io'];
  if (origins.length > 1) throw new UsageError(`--origins: ${file} configures one origin (no origins:), so the edge serves one registry, not ${origins.join(', ')}`);
  return { origins, prefixed: false };
}

async function readDaemonJson(root: string): Promise<Record<string, unknown> | undefined> {
  const file = join(root, DAEMON_JSON);
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (text === undefined) return undefined;
  try {
    const doc: unknown = JSON.parse(text);
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('not a JSON object');
    return doc as Record<string, unknown>;
  } catch (err) {
    throw new CommandFailure(`${file}: cannot merge into it: ${(err as Error).message}`);
  }
}

async function readCa(file: string | undefined): Promise<string | undefined> {
  if (file === undefined) return undefined;
  const pem = await readFile(file, 'utf8');
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new CommandFailure(`--ca: ${file} holds no PEM certificate`);
  return pem;
}

function notes(setup: ClientSetup): string[] {
  const out = [`containerd reads ${CONTAINERD_DIR} when its CRI registry config_path says so (ctr: --hosts-dir ${CONTAINERD_DIR}).`];
  if (setup.origins.includes('docker.io')) out.push('Docker reads registry-mirrors at start: systemctl restart docker.');
  else out.push('Docker: no registry-mirrors (Docker mirrors docker.io only, which is not among the origins).');
  const unprefixed = setup.prefixed ? setup.origins.filter((o) => !prefixable(o)) : [];
  if (unprefixed.length > 0) out.push(`registries.conf: no prefix mirror for ${unprefixed.join(', ')} (a prefix cannot name a port); use containerd's ns for those.`);
  return out;
}

export const command: Command = {
  usage: USAGE,
  async run(args, io: Io) {
    const parsed = parseArgs(args, { values: ['--host HOST', '--ca FILE', '--origins ORIGINS', '--config FILE', '--write ROOT'], switches: ['--plain-http'] });
    const host = checkHost(required(parsed, '--host'));
    const plainHttp = parsed.switches.has('--plain-http');
    if (plainHttp && parsed.values.has('--ca')) throw new UsageError('--ca and --plain-http: a plain HTTP listener has no certificate to trust');
    const root = parsed.values.get('--write');
    const setup: ClientSetup = {
      host,
      ...originsOf(parsed.values.get('--origins'), parsed.values.get('--config')),
      ca: await readCa(parsed.values.get('--ca')),
      plainHttp,
      daemonJson: root === undefined ? undefined : await readDaemonJson(root),
    };
    const files = clientFiles(setup);
    if (root === undefined) {
      io.stdout.write(files.map((f) => `# ${f.path} (${f.what})\n${f.text}`).join('\n'));
    } else {
      for (const f of files) {
        const target = join(root, f.path);
        await mkdir(dirname(target), { recursive: true });
        await writeFileAtomic(`${target}.${process.pid}.tmp`, target, f.text, true);
      }
      io.stdout.write(`wrote under ${root}:\n${files.map((f) => `  ${f.path}  ${f.what}`).join('\n')}\n`);
    }
    io.stderr.write(notes(setup).join('\n') + '\n');
    return 0;
  },
};
