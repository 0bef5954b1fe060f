// `registry-edge pull-secret`: the Secret kubectl create secret docker-registry would make,
// decoded back; the password from stdin only, never in argv.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { load as parseYaml } from 'js-yaml';
import { EDGE_BIN } from '../helpers/edge.js';
import { run, waitFor, type RunResult } from '../helpers/proc.js';

const PASSWORD = 'p@ss: wörd "quoted"';
const cli = (args: string[], input?: string): Promise<RunResult> =>
  run(process.execPath, [EDGE_BIN, 'pull-secret', ...args], { timeoutMs: 30_000, ...(input === undefined ? {} : { input }) });

interface Secret {
  apiVersion: string;
  kind: string;
  type: string;
  metadata: { name: string; namespace?: string };
  data: Record<string, string>;
}

test('a kubernetes.io/dockerconfigjson Secret with the credentials under auths[server], as kubectl makes it', async () => {
  const r = await cli(['--server', 'edge.zone-a:443', '--username', 'ci-bot', '--password-stdin', '--namespace', 'builds', '--name', 'edge-pull'], `${PASSWORD}\n`);
  assert.equal(r.code, 0, r.stderr);
  const secret = parseYaml(r.stdout) as Secret;
  assert.equal(secret.apiVersion, 'v1');
  assert.equal(secret.kind, 'Secret');
  assert.equal(secret.type, 'kubernetes.io/dockerconfigjson');
  assert.deepEqual(secret.metadata, { name: 'edge-pull', namespace: 'builds' });
  assert.deepEqual(Object.keys(secret.data), ['.dockerconfigjson']);
  const config = JSON.parse(Buffer.from(secret.data['.dockerconfigjson'] ?? '', 'base64').toString('utf8')) as { auths: Record<string, { username: string; password: string; auth: string }> };
  assert.deepEqual(Object.keys(config.auths), ['edge.zone-a:443']);
  const entry = config.auths['edge.zone-a:443'];
  assert.equal(entry?.username, 'ci-bot');
  assert.equal(entry?.password, PASSWORD, 'the trailing newline of the input is not the password\'s');
  assert.equal(Buffer.from(entry?.auth ?? '', 'base64').toString('utf8'), `ci-bot:${PASSWORD}`);
  assert.equal(r.stderr, '', 'no service account patch asked for');
});

test('--service-account: the strategic merge patch and the kubectl patch line that add it to imagePullSecrets', async () => {
  const r = await cli(['--server', 'edge:5000', '--username', 'u', '--password-stdin', '--namespace', 'apps', '--service-account', 'default'], 'pw');
  assert.equal(r.code, 0, r.stderr);
  assert.equal((parseYaml(r.stdout) as Secret).metadata.name, 'registry-edge-pull');
  const [, line] = r.stderr.split('\n');
  assert.equal(line, `kubectl patch serviceaccount default --namespace apps --type strategic --patch '{"imagePullSecrets":[{"name":"registry-edge-pull"}]}'`);
  const yamlPart = r.stderr.slice(r.stderr.indexOf('--patch-file:\n') + '--patch-file:\n'.length);
  assert.deepEqual(parseYaml(yamlPart), { imagePullSecrets: [{ name: 'registry-edge-pull' }] });
  assert.doesNotMatch(r.stdout + r.stderr, /\bpw\b/);
});

test('the password is read from stdin, never taken from the command line', async () => {
  const child = spawn(process.execPath, [EDGE_BIN, 'pull-secret', '--server', 'edge:443', '--username', 'u', '--password-stdin'], { stdio: ['pipe', 'pipe', 'pipe'] });
  try {
    // While it waits for stdin, what the process table shows of it holds no password.
    const cmdline = await waitFor(() => {
      const text = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8');
      return text.includes('--password-stdin') ? text : undefined;
    }, { what: 'the command line' });
    assert.doesNotMatch(cmdline, /s3cret/);
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    child.stdin.end('s3cret');
    assert.equal(await exited, 0);
    assert.match(Buffer.concat(out).toString(), /\.dockerconfigjson: /);
  } finally {
    child.kill('SIGKILL');
  }
});

test('no password, a password flag, bad names: refused', async () => {
  const empty = await cli(['--server', 'edge:443', '--username', 'u', '--password-stdin'], '');
  assert.equal(empty.code, 1);
  assert.equal(empty.stderr, 'registry-edge pull-secret: no password on stdin\n');
  for (const [args, message] of [
    [['--server', 'edge:443', '--username', 'u', '--password', 'x'], /unknown option --password/],
    [['--server', 'edge:443', '--username', 'u'], /missing --password-stdin/],
    [['--server', 'edge:443', '--username', 'a:b', '--password-stdin'], /--username: a user name cannot hold ":"/],
    [['--server', 'edge:443', '--username', 'u', '--password-stdin', '--namespace', 'Not_OK'], /--namespace: "Not_OK" is not a Kubernetes namespace/],
    [['--username', 'u', '--password-stdin'], /missing --server/],
  ] as const) {
    const r = await cli([...args], 'pw');
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});
