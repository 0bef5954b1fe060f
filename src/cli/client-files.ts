/**
 * The files that point Docker, containerd and containers/image (podman, skopeo, CRI-O)
 * at an edge, as text: what `client-config` prints or writes. Paths are those on the
 * client machine.
 */

export interface ClientSetup {
  /** host:port of the edge as clients write it (edge.zone-a:443). */
  readonly host: string;
  /** The registries whose pulls go through the edge (docker.io, ghcr.io). */
  readonly origins: readonly string[];
  /**
   * The edge fronts these as configured `origins` (it then tells them apart by ?ns= or a
   * path prefix); false for an edge with one origin, which takes no prefix.
   */
  readonly prefixed: boolean;
  /** The CA clients must trust (PEM), when the edge's certificate is from a private CA. */
  readonly ca?: string | undefined;
  /** The edge listens in plain HTTP (http.plain_addr, inside a cluster): clients must be told it is insecure. */
  readonly plainHttp?: boolean;
  /** The client's daemon.json as it is, to merge into. */
  readonly daemonJson?: Readonly<Record<string, unknown>> | undefined;
}

export interface ClientFile {
  readonly path: string;
  readonly text: string;
  /** What the file is, for the printed listing. */
  readonly what: string;
}

export const DAEMON_JSON = '/etc/docker/daemon.json';
export const CONTAINERD_DIR = '/etc/containerd/certs.d';
const REGISTRIES_CONF = '/etc/containers/registries.conf.d/registry-edge.conf';

/** The registry itself, for containerd's `server` (where it goes when every mirror fails). */
function upstreamOf(origin: string): string {
  return origin === 'docker.io' ? 'https://registry-1.docker.io' : `https://${origin}`;
}

const tomlString = (s: string): string => JSON.stringify(s);

const edgeUrl = (setup: ClientSetup): string => `${setup.plainHttp ? 'http' : 'https'}://${setup.host}`;

/** The list at `key` of a daemon.json, `first` at its head and never twice. */
function headed(current: Readonly<Record<string, unknown>>, key: string, first: string): string[] {
  const list = Array.isArray(current[key]) ? (current[key] as unknown[]).filter((m): m is string => typeof m === 'string' && m !== first) : [];
  return [first, ...list];
}

/** Docker takes mirrors for Docker Hub only; the edge goes first, other mirrors stay after it. */
function daemonJson(setup: ClientSetup): string {
  const current = setup.daemonJson ?? {};
  const merged: Record<string, unknown> = { ...current, 'registry-mirrors': headed(current, 'registry-mirrors', edgeUrl(setup)) };
  // dockerd speaks plain HTTP only to the registries it lists as insecure.
  if (setup.plainHttp) merged['insecure-registries'] = headed(current, 'insecure-registries', setup.host);
  return JSON.stringify(merged, null, 2) + '\n';
}

/**
 * containerd sends `?ns=<origin>` to a mirror by itself, which is how an edge with
 * several origins tells them apart; `ca` is relative, so it is read from next to the file.
 */
function hostsToml(setup: ClientSetup, origin: string): string {
  return [
    `server = ${tomlString(upstreamOf(origin))}`,
    '',
    `[host.${tomlString(edgeUrl(setup))}]`,
    '  capabilities = ["pull", "resolve"]',
    ...(setup.ca ? ['  ca = "ca.crt"'] : []),
    '',
  ].join('\n');
}

/** A prefix mirror per origin: the edge takes `/v2/<origin>/<name>` when it fronts several. */
function registriesConf(setup: ClientSetup, origins: readonly string[]): string {
  const stanzas = origins.map((origin) =>
    [
      '[[registry]]',
      `prefix = ${tomlString(origin)}`,
      `location = ${tomlString(origin)}`,
      '[[registry.mirror]]',
      `location = ${tomlString(setup.prefixed ? `${setup.host}/${origin}` : setup.host)}`,
      ...(setup.plainHttp ? ['insecure = true'] : []),
    ].join('\n'),
  );
  return `# written by registry-edge client-config: pulls of these registries go through ${setup.host}\n\n${stanzas.join('\n\n')}\n`;
}

/** A prefix names a path component, which cannot hold a port (the clients' reference grammar). */
export const prefixable = (origin: string): boolean => !origin.includes(':');

export function clientFiles(setup: ClientSetup): ClientFile[] {
  const files: ClientFile[] = [];
  if (setup.origins.includes('docker.io')) files.push({ path: DAEMON_JSON, text: daemonJson(setup), what: 'Docker: the edge as the Docker Hub mirror' });
  if (setup.ca) files.push({ path: `/etc/docker/certs.d/${setup.host}/ca.crt`, text: setup.ca, what: 'Docker: trust the edge' });
  for (const origin of setup.origins) {
    files.push({ path: `${CONTAINERD_DIR}/${origin}/hosts.toml`, text: hostsToml(setup, origin), what: `containerd: pulls of ${origin} through the edge` });
    if (setup.ca) files.push({ path: `${CONTAINERD_DIR}/${origin}/ca.crt`, text: setup.ca, what: 'containerd: trust the edge' });
  }
  const mirrored = setup.origins.filter((o) => !setup.prefixed || prefixable(o));
  if (mirrored.length > 0) files.push({ path: REGISTRIES_CONF, text: registriesConf(setup, mirrored), what: 'podman, skopeo, CRI-O: prefix mirrors' });
  if (setup.ca) files.push({ path: `/etc/containers/certs.d/${setup.host}/ca.crt`, text: setup.ca, what: 'podman, skopeo, CRI-O: trust the edge' });
  return files;
}
