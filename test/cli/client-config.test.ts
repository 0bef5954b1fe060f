// `registry-edge client-config`: the files it writes are read by the real clients. ctr pulls
// through the written hosts dir (TLS, the written CA, ?ns=) and skopeo through the written
// registries.conf prefix mirror, from an edge whose origin's own host resolves nowhere: a
// pull that works came through the edge.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ctrContentDigests, ctrForget, ctrPull, startContainerd, type Containerd } from '../helpers/containerd.js';
import { EDGE_BIN, logLines, startEdge, type Edge } from '../helpers/edge.js';
import { makeOciLayout, pushImage, skopeo, verifyDirPull, type ImageInfo } from '../helpers/image.js';
import { removeDir, run, tempDir, type RunResult } from '../helpers/proc.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { startShim, type Shim } from '../helpers/shim.js';

const KiB = 1024;
const ORIGIN = 'reg-a.test';
const OTHER = 'other.test';
const cli = (args: string[]): Promise<RunResult> => run(process.execPath, [EDGE_BIN, 'client-config', ...args], { timeoutMs: 60_000 });

describe('client-config files', () => {
  let work: string;
  before(() => {
    work = tempDir('re-client-config-');
  });
  after(() => removeDir(work));

  test('printed: daemon.json for docker.io only, a hosts.toml per origin with the edge as a pull mirror, a prefix mirror per origin', async () => {
    const r = await cli(['--host', 'edge.zone-a:443', '--origins', 'docker.io,ghcr.io']);
    assert.equal(r.code, 0, r.stderr);
    const sections = new Map(r.stdout.split(/^# (?=\/)/m).filter(Boolean).map((s) => [s.slice(0, s.indexOf(' ')), s.slice(s.indexOf('\n') + 1)]));
    assert.deepEqual([...sections.keys()], [
      '/etc/docker/daemon.json',
      '/etc/containerd/certs.d/docker.io/hosts.toml',
      '/etc/containerd/certs.d/ghcr.io/hosts.toml',
      '/etc/containers/registries.conf.d/registry-edge.conf',
    ]);
    assert.deepEqual(JSON.parse(sections.get('/etc/docker/daemon.json') ?? ''), { 'registry-mirrors': ['https://edge.zone-a:443'] });
    assert.equal(sections.get('/etc/containerd/certs.d/docker.io/hosts.toml'), 'server = "https://registry-1.docker.io"\n\n[host."https://edge.zone-a:443"]\n  capabilities = ["pull", "resolve"]\n\n');
    assert.match(sections.get('/etc/containerd/certs.d/ghcr.io/hosts.toml') ?? '', /^server = "https:\/\/ghcr\.io"\n/);
    const conf = sections.get('/etc/containers/registries.conf.d/registry-edge.conf') ?? '';
    assert.match(conf, /prefix = "ghcr\.io"\nlocation = "ghcr\.io"\n\[\[registry\.mirror\]\]\nlocation = "edge\.zone-a:443\/ghcr\.io"/);
    assert.match(conf, /prefix = "docker\.io"\nlocation = "docker\.io"\n\[\[registry\.mirror\]\]\nlocation = "edge\.zone-a:443\/docker\.io"/);
  });

  test('an edge with one origin: docker.io, and a mirror without a prefix (that edge takes none)', async () => {
    const r = await cli(['--host', 'edge.zone-a:5000']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\[\[registry\.mirror\]\]\nlocation = "edge\.zone-a:5000"\n/);
    const plain = await cli(['--host', 'edge.zone-a:5001', '--plain-http']);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /"registry-mirrors": \[\n\s+"http:\/\/edge\.zone-a:5001"\n\s+\],\n\s+"insecure-registries": \[\n\s+"edge\.zone-a:5001"/);
    assert.match(plain.stdout, /\[host\."http:\/\/edge\.zone-a:5001"\]/);
    assert.match(plain.stdout, /location = "edge\.zone-a:5001"\ninsecure = true\n/);
  });

  test('written under ROOT: daemon.json merged into the one there, its other keys and mirrors kept', async () => {
    const root = path.join(work, 'root');
    mkdirSync(path.join(root, 'etc/docker'), { recursive: true });
    writeFileSync(path.join(root, 'etc/docker/daemon.json'), JSON.stringify({ 'log-driver': 'journald', 'registry-mirrors': ['https://old.mirror', 'https://edge.zone-a:443'], 'insecure-registries': ['10.0.0.1:5000'] }));
    const r = await cli(['--host', 'edge.zone-a:443', '--write', root]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(readFileSync(path.join(root, 'etc/docker/daemon.json'), 'utf8')), {
      'log-driver': 'journald',
      'registry-mirrors': ['https://edge.zone-a:443', 'https://old.mirror'],
      'insecure-registries': ['10.0.0.1:5000'],
    });
    writeFileSync(path.join(root, 'etc/docker/daemon.json'), '{ not json');
    const broken = await cli(['--host', 'edge.zone-a:443', '--write', root]);
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /daemon\.json: cannot merge into it/);
    assert.equal(readFileSync(path.join(root, 'etc/docker/daemon.json'), 'utf8'), '{ not json', 'a file it cannot read is left as it was');
  });

  test('bad input: a host with a scheme, an origin that is no registry host', async () => {
    for (const [args, message] of [
      [['--host', 'https://edge:443'], /--host: "https:\/\/edge:443" is not HOST or HOST:PORT/],
      [['--host', 'edge:443', '--origins', 'Docker Hub'], /--origins: "Docker Hub" is not a registry host/],
      [['--origins', 'docker.io'], /missing --host/],
      [['--host', 'edge:5001', '--plain-http', '--ca', 'ca.crt'], /--ca and --plain-http/],
    ] as const) {
      const r = await cli([...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
    }
  });
});

describe('client-config read by ctr and skopeo, against a TLS edge with origins', () => {
  let work: string;
  let registry: Registry;
  let shim: Shim;
  let image: ImageInfo;
  let edge: Edge;
  let containerd: Containerd;
  let root: string;

  before(async () => {
    work = tempDir('re-client-real-');
    registry = await startRegistry();
    shim = await startShim(registry.url);
    image = await makeOciLayout(path.join(work, 'layout'), { layers: [120 * KiB, 30 * KiB], tag: '1.0' });
    await pushImage(image.layoutDir, '1.0', `${registry.host}/team/app:1.0`);
    const certs = path.join(work, 'certs');
    const init = await run(process.execPath, [EDGE_BIN, 'certs', 'init', '--hosts', '127.0.0.1', '--out', certs], { timeoutMs: 60_000 });
    assert.equal(init.code, 0, init.stderr);
    edge = await startEdge({
      workDir: work,
      // The default origin is another (dialling a closed port), so only ?ns= or the prefix reaches ORIGIN.
      configYaml: `origins:\n  ${OTHER}:\n    upstreams: [http://127.0.0.1:1]\n  ${ORIGIN}:\n    upstreams: [${shim.url}]\ndefault_origin: ${OTHER}\n`,
      env: { REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: path.join(certs, 'server.crt'), REGISTRY_EDGE_HTTP_TLS_KEY: path.join(certs, 'server.key'), REGISTRY_EDGE_HTTP_PLAIN_ADDR: '127.0.0.1:0' },
    });
    root = path.join(work, 'root');
    // The origins come from the edge's own config.
    const r = await cli(['--host', edge.host, '--ca', path.join(certs, 'ca.crt'), '--config', edge.configFile, '--write', root]);
    assert.equal(r.code, 0, r.stderr);
    containerd = await startContainerd();
  });

  after(async () => {
    await containerd?.stop();
    await edge?.stop();
    await shim?.stop();
    await registry?.dispose();
    if (work) removeDir(work);
  });

  test('ctr pulls through the written hosts.toml: TLS with the written CA, the origin named by ?ns=', async () => {
    const hostsDir = path.join(root, 'etc/containerd/certs.d');
    assert.match(readFileSync(path.join(hostsDir, ORIGIN, 'hosts.toml'), 'utf8'), /ca = "ca\.crt"/);
    assert.match(readFileSync(path.join(hostsDir, OTHER, 'hosts.toml'), 'utf8'), /^server = "https:\/\/other\.test"/, 'one per origin of the config');
    shim.reset();
    const r = await ctrPull(containerd.address, `${ORIGIN}/team/app:1.0`, hostsDir, { plainHttp: false, skipUnpack: true });
    assert.equal(r.code, 0, r.stderr);
    const content = await ctrContentDigests(containerd.address);
    for (const l of image.layers) {
      assert.ok(content.includes(l.digest), `containerd holds ${l.digest}`);
      assert.equal(shim.stats.blobGets(l.digest), 1, 'the edge fetched each layer from the upstream');
    }
    const lines = logLines<{ msg?: string; origin?: string; path?: string }>(edge.proc.logs()).filter((l) => l.msg === 'request');
    assert.ok(lines.some((l) => l.origin === ORIGIN && l.path === '/v2/team/app/manifests/1.0'), 'the edge took the origin from ?ns=');
  });

  test('skopeo pulls through the written registries.conf prefix mirror, trusting the written CA', async () => {
    const dest = path.join(work, 'skopeo-pull');
    const r = await skopeo([
      '--registries-conf', path.join(root, 'etc/containers/registries.conf.d/registry-edge.conf'),
      'copy', '--src-cert-dir', path.join(root, 'etc/containers/certs.d', edge.host), '--src-no-creds',
      `docker://${ORIGIN}/team/app:1.0`, `dir:${dest}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await verifyDirPull(dest, image), { ok: true });
    const lines = logLines<{ msg?: string; origin?: string; path?: string }>(edge.proc.logs()).filter((l) => l.msg === 'request');
    assert.ok(lines.some((l) => l.origin === ORIGIN && l.path === `/v2/${ORIGIN}/team/app/manifests/1.0`), 'the prefix named the origin');
  });

  test('--plain-http: ctr and skopeo pull through the plain listener, told it is insecure', async () => {
    const plain = logLines<{ msg?: string; plainAddress?: string }>(edge.proc.logs()).find((l) => l.msg === 'registry-edge listening')?.plainAddress ?? '';
    const plainRoot = path.join(work, 'plain-root');
    const r = await cli(['--host', plain, '--plain-http', '--config', edge.configFile, '--write', plainRoot]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync(path.join(plainRoot, 'etc/docker/daemon.json')), false, 'no docker.io among the origins: nothing for dockerd');
    const manifestGets = (): number =>
      logLines<{ msg?: string; origin?: string; path?: string }>(edge.proc.logs()).filter((l) => l.msg === 'request' && l.origin === ORIGIN && l.path === '/v2/team/app/manifests/1.0').length;
    await ctrForget(containerd.address);
    const before = manifestGets();
    // Without ctr's own --plain-http: the scheme comes from the written hosts.toml.
    const pulled = await ctrPull(containerd.address, `${ORIGIN}/team/app:1.0`, path.join(plainRoot, 'etc/containerd/certs.d'), { plainHttp: false, skipUnpack: true });
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.ok(manifestGets() > before, 'the edge answered');
    const dest = path.join(work, 'skopeo-plain');
    const copied = await skopeo(['--registries-conf', path.join(plainRoot, 'etc/containers/registries.conf.d/registry-edge.conf'), 'copy', '--src-no-creds', `docker://${ORIGIN}/team/app:1.0`, `dir:${dest}`]);
    assert.equal(copied.code, 0, copied.stderr);
    assert.deepEqual(await verifyDirPull(dest, image), { ok: true });
  });
});
