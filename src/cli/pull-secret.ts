/**
 * `pull-secret`: the `kubernetes.io/dockerconfigjson` Secret that `kubectl create secret
 * docker-registry` makes, for pods pulling from the edge with credentials, and the
 * imagePullSecrets patch of a service account. The password comes from stdin only, so it
 * never shows in argv (ps, shell history).
 */
import { dump as toYaml } from 'js-yaml';
import { CommandFailure, UsageError, parseArgs, required, type Command } from './args.js';

const USAGE = `usage:
  registry-edge pull-secret --server HOST[:PORT] --username USER --password-stdin
                            [--namespace NS] [--name NAME] [--service-account SA]
      print a kubernetes.io/dockerconfigjson Secret (as kubectl create secret docker-registry)
      with USER and the password read from stdin for HOST; --name defaults to registry-edge-pull;
      --service-account: also print (on stderr) the patch that adds it to SA's imagePullSecrets.
      e.g. registry-edge pull-secret --server edge.zone-a:443 --username ci --password-stdin < pw | kubectl apply -f -`;

const DEFAULT_NAME = 'registry-edge-pull';
// Kubernetes object names: DNS-1123 subdomains; namespaces: DNS-1123 labels.
const SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL = /^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function named(value: string | undefined, flag: string, pattern: RegExp, what: string): string | undefined {
  if (value !== undefined && !pattern.test(value)) throw new UsageError(`${flag}: ${JSON.stringify(value)} is not a Kubernetes ${what} (lower case letters, digits, '-')`);
  return value;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

interface PullSecretOptions {
  readonly server: string;
  readonly username: string;
  readonly password: string;
  readonly name: string;
  readonly namespace?: string | undefined;
}

/** The Secret object, as kubectl writes it. */
function pullSecret(opts: PullSecretOptions): Record<string, unknown> {
  const auth = Buffer.from(`${opts.username}:${opts.password}`).toString('base64');
  const dockerConfig = { auths: { [opts.server]: { username: opts.username, password: opts.password, auth } } };
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: opts.name, ...(opts.namespace ? { namespace: opts.namespace } : {}) },
    type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': Buffer.from(JSON.stringify(dockerConfig)).toString('base64') },
  };
}

/** imagePullSecrets is merged by name (strategic merge), so the account's other pull secrets stay. */
function serviceAccountPatch(account: string, secret: string, namespace: string | undefined): string {
  const patch = { imagePullSecrets: [{ name: secret }] };
  const ns = namespace ? ` --namespace ${namespace}` : '';
  return [
    `# add the secret to service account ${account} (a strategic merge patch: its other imagePullSecrets stay):`,
    `kubectl patch serviceaccount ${account}${ns} --type strategic --patch '${JSON.stringify(patch)}'`,
    '# the same patch as YAML, for kubectl patch --patch-file:',
    toYaml(patch).trimEnd(),
    '',
  ].join('\n');
}

export const command: Command = {
  usage: USAGE,
  async run(args, io) {
    const parsed = parseArgs(args, { values: ['--server HOST', '--username USER', '--namespace NS', '--name NAME', '--service-account SA'], switches: ['--password-stdin'] });
    const server = required(parsed, '--server');
    if (/\s/.test(server)) throw new UsageError(`--server: ${JSON.stringify(server)} is not a registry host (edge.zone-a:443)`);
    const username = required(parsed, '--username');
    if (username.includes(':')) throw new UsageError('--username: a user name cannot hold ":" (Basic auth splits on it)');
    if (!parsed.switches.has('--password-stdin')) throw new UsageError('missing --password-stdin (the password is read from stdin, never from the command line)');
    const namespace = named(parsed.values.get('--namespace'), '--namespace', LABEL, 'namespace');
    const name = named(parsed.values.get('--name'), '--name', SUBDOMAIN, 'name') ?? DEFAULT_NAME;
    const account = named(parsed.values.get('--service-account'), '--service-account', SUBDOMAIN, 'service account name');
    // A terminal echoes what is typed: said, so the wait is not silent and a pipe is preferred.
    if ((io.stdin as NodeJS.ReadStream).isTTY) io.stderr.write('reading the password from stdin until Ctrl-D (a terminal shows it as typed; prefer a pipe)\n');
    // One trailing newline is the echo or the file's, not the password's (docker login --password-stdin does the same).
    const password = (await readAll(io.stdin)).replace(/\r?\n$/, '');
    if (password === '') throw new CommandFailure('no password on stdin');
    io.stdout.write(toYaml(pullSecret({ server, username, password, name, namespace })));
    if (account !== undefined) io.stderr.write(serviceAccountPatch(account, name, namespace));
    return 0;
  },
};
