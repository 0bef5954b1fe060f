// The edge's HTTPS listener end to end: certificates from `registry-edge certs init`,
// a real docker-registry behind the edge, skopeo and Node's TLS client in front.
// Protocol versions, ALPN, session resumption, the optional plain listener, and
// certificate reload (file change, SIGHUP, bad pair) while clients keep pulling.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createServer as createTlsServer } from 'node:tls';
import { EDGE_BIN, logLines as parseLogLines, startEdge, type Edge } from '../helpers/edge.js';
import { makeOciLayout, pullImage, pushImage, verifyDirPull, type ImageInfo } from '../helpers/image.js';
import { freePort, httpRequest, removeDir, run, tempDir, waitFor } from '../helpers/proc.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { httpsGet, pemFingerprint256, tlsHandshake, type HttpsGetResult } from '../helpers/tls-client.js';

const KiB = 1024;
const REPO = 'team/app';
const TAG = '1.0';

interface CertDir {
  dir: string;
  ca: string;
  cert: string;
  key: string;
  /** Fingerprint of the server (leaf) certificate. */
  fingerprint: string;
}

/** `registry-edge certs init --hosts 127.0.0.1,localhost --out DIR`: a new CA and server pair. */
async function certsInit(dir: string): Promise<CertDir> {
  const r = await run(process.execPath, [EDGE_BIN, 'certs', 'init', '--hosts', '127.0.0.1,localhost', '--out', dir], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `certs init failed:\n${r.stderr}${r.stdout}`);
  const read = (name: string): string => fs.readFileSync(path.join(dir, name), 'utf8');
  const cert = read('server.crt');
  return { dir, ca: read('ca.crt'), cert, key: read('server.key'), fingerprint: pemFingerprint256(cert) };
}

/** A directory holding only ca.crt, as skopeo's --cert-dir wants. */
function caOnlyDir(parent: string, name: string, caPem: string): string {
  const dir = path.join(parent, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'ca.crt'), caPem);
  return dir;
}

interface LogLine {
  msg?: string;
  reason?: string;
  level?: number;
  plainAddress?: string;
  httpAddress?: string;
  tls?: boolean;
}

const logLines = (edge: Edge): LogLine[] => parseLogLines<LogLine>(edge.proc.logs());

const countLog = (edge: Edge, msg: string, reason?: string): number =>
  logLines(edge).filter((l) => l.msg?.startsWith(msg) && (reason === undefined || l.reason === reason)).length;

/** Writes a pair to temp names in the directory of the live files, then renames both over them. */
function replacePair(liveCert: string, liveKey: string, cert: string, key: string): void {
  const tmpCert = `${liveCert}.new`;
  const tmpKey = `${liveKey}.new`;
  fs.writeFileSync(tmpCert, cert);
  fs.writeFileSync(tmpKey, key, { mode: 0o600 });
  fs.renameSync(tmpKey, liveKey);
  fs.renameSync(tmpCert, liveCert);
}

const port = (hostPort: string): number => Number(hostPort.slice(hostPort.lastIndexOf(':') + 1));

describe('TLS listener (certs init, real registry, skopeo)', () => {
  let work: string;
  let registry: Registry;
  let image: ImageInfo;
  let certs: CertDir;
  let otherCerts: CertDir;
  let edge: Edge;
  let plainAddr: string;
  let pulls = 0;
  const pullDir = (): string => path.join(work, `pull-${++pulls}`);

  before(async () => {
    work = tempDir('re-tls-');
    [certs, otherCerts] = await Promise.all([certsInit(path.join(work, 'certs')), certsInit(path.join(work, 'other-ca'))]);
    registry = await startRegistry();
    image = await makeOciLayout(path.join(work, 'layout'), { layers: [300 * KiB, 1200 * KiB], tag: TAG });
    await pushImage(image.layoutDir, TAG, `${registry.host}/${REPO}:${TAG}`);
    plainAddr = `127.0.0.1:${await freePort()}`;
    edge = await startEdge({
      workDir: work,
      upstreams: [registry.url],
      env: {
        REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: path.join(certs.dir, 'server.crt'),
        REGISTRY_EDGE_HTTP_TLS_KEY: path.join(certs.dir, 'server.key'),
        REGISTRY_EDGE_HTTP_PLAIN_ADDR: plainAddr,
      },
    });
  });

  after(async () => {
    await edge?.stop();
    await registry?.dispose();
    if (work) removeDir(work);
  });

  test('skopeo pulls through the edge over verified TLS with only the CA in --src-cert-dir', async () => {
    const certDir = caOnlyDir(work, 'skopeo-ca', certs.ca);
    assert.deepEqual(fs.readdirSync(certDir), ['ca.crt']);
    const dest = pullDir();
    const r = await pullImage(`${edge.host}/${REPO}:${TAG}`, dest, { certDir, tlsVerify: true });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await verifyDirPull(dest, image), { ok: true });
    // The blobs came through the edge's cache, filled from the registry.
    for (const l of image.layers) {
      const hex = l.digest.slice('sha256:'.length);
      // The commit (fsync, rename) may finish just after the client has its last byte.
      await waitFor(() => fs.existsSync(path.join(edge.cacheDir, 'blobs', 'sha256', hex.slice(0, 2), hex)), { what: `edge cached ${l.digest}` });
    }
  });

  test('a client that trusts a different CA is refused (skopeo and Node), and names outside the SANs are refused', async () => {
    const wrongDir = caOnlyDir(work, 'skopeo-other-ca', otherCerts.ca);
    const r = await pullImage(`${edge.host}/${REPO}:${TAG}`, pullDir(), { certDir: wrongDir, tlsVerify: true, timeoutMs: 60_000 });
    assert.notEqual(r.code, 0, 'skopeo must not pull when the edge certificate does not chain to its CA');
    assert.match(r.stderr, /x509|certificate/i);

    const edgePort = port(edge.host);
    await assert.rejects(tlsHandshake({ host: '127.0.0.1', port: edgePort, ca: otherCerts.ca }), (err: NodeJS.ErrnoException) => {
      assert.match(err.code ?? '', /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/);
      return true;
    });
    // The right CA verifies, by IP SAN and by DNS SAN; another name does not.
    const ok = await tlsHandshake({ host: '127.0.0.1', port: edgePort, ca: certs.ca });
    assert.equal(ok.authorized, true);
    assert.equal(ok.fingerprint256, certs.fingerprint);
    assert.equal((await tlsHandshake({ host: '127.0.0.1', port: edgePort, ca: certs.ca, servername: 'localhost' })).authorized, true);
    await assert.rejects(tlsHandshake({ host: '127.0.0.1', port: edgePort, ca: certs.ca, servername: 'evil.example' }), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
      return true;
    });
  });

  test('TLS 1.1 is refused by the edge; TLS 1.2 and 1.3 are accepted; ALPN selects http/1.1', async () => {
    const edgePort = port(edge.host);
    // A client that can really speak TLS 1.1 here (OpenSSL 3 needs security level 0 for it):
    // proven against a throwaway Node server that allows it, so the refusal below is the edge's.
    const legacy = { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' } as const;
    const permissive = createTlsServer({ cert: certs.cert, key: certs.key, ...legacy }, (s) => s.end());
    await new Promise<void>((resolve) => permissive.listen(0, '127.0.0.1', resolve));
    try {
      const addr = permissive.address();
      assert.ok(addr !== null && typeof addr === 'object');
      const control = await tlsHandshake({ host: '127.0.0.1', port: addr.port, ca: certs.ca, ...legacy });
      assert.equal(control.protocol, 'TLSv1.1');
    } finally {
      permissive.close();
    }
    await assert.rejects(tlsHandshake({ host: '127.0.0.1', port: edgePort, ca: certs.ca, ...legacy }), (err: NodeJS.ErrnoException) => {
      // The server's protocol_version alert (70), not a local refusal.
      assert.equal(err.code, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', `${err.code}: ${err.message}`);
      return true;
    });
    await assert.rejects(tlsHandshake({ host: '127.0.0.1', port: edgePort, ca: certs.ca, minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' }));

    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      const h = await tlsHandshake({ host: '127.0.0.1', port: edgePort, ca: certs.ca, minVersion: version, maxVersion: version, ALPNProtocols: ['h2', 'http/1.1'] });
      assert.equal(h.protocol, version);
      assert.equal(h.authorized, true);
      assert.equal(h.alpn, 'http/1.1', `${version}: ALPN must pick http/1.1 out of h2,http/1.1`);
    }
    // And an HTTP/1.1 request over it is answered.
    const base = await httpsGet(`https://${edge.host}/v2/`, { ca: certs.ca });
    assert.equal(base.status, 200);
  });

  test('TLS sessions resume (TLS 1.2 and 1.3)', async () => {
    const edgePort = port(edge.host);
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      const opts = { host: '127.0.0.1', port: edgePort, ca: certs.ca, minVersion: version, maxVersion: version };
      const first = await tlsHandshake({ ...opts, sessionWaitMs: 3_000 });
      assert.equal(first.reused, false);
      assert.ok(first.session, `${version}: the edge gave a session to resume`);
      const second = await tlsHandshake({ ...opts, session: first.session });
      assert.equal(second.protocol, version);
      assert.equal(second.reused, true, `${version}: the second handshake resumed the first session`);
    }
  });

  test('the optional plain listener serves HTTP alongside the TLS one', async () => {
    const listening = logLines(edge).find((l) => l.msg === 'registry-edge listening');
    assert.ok(listening, 'listening line');
    assert.equal(listening.tls, true);
    assert.equal(listening.plainAddress, plainAddr);
    const plainUrl = `http://${listening.plainAddress ?? ''}`;
    const base = await httpRequest(`${plainUrl}/v2/`);
    assert.equal(base.status, 200);
    const layer = image.layers[0];
    assert.ok(layer);
    const blob = await httpRequest(`${plainUrl}/v2/${REPO}/blobs/${layer.digest}`);
    assert.equal(blob.status, 200);
    assert.equal(blob.body.length, layer.size);
    const dest = pullDir();
    const r = await pullImage(`${listening.plainAddress ?? ''}/${REPO}:${TAG}`, dest, { tlsVerify: false });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await verifyDirPull(dest, image), { ok: true });
    // Each listener speaks only its own protocol.
    await assert.rejects(tlsHandshake({ host: '127.0.0.1', port: port(plainAddr), insecure: true, timeoutMs: 5_000 }));
    await assert.rejects(httpRequest(`http://${edge.host}/v2/`, { timeoutMs: 5_000 }));
  });
});

/** Clients pulling one blob in loops: fresh TLS connections and one kept-alive connection. */
class PullLoad {
  readonly fresh: HttpsGetResult[] = [];
  readonly kept: HttpsGetResult[] = [];
  readonly failures: string[] = [];
  private running = true;
  private readonly workers: Promise<void>[] = [];
  private readonly agent: https.Agent;

  constructor(
    private readonly url: string,
    private readonly ca: string[],
    private readonly digest: string,
    private readonly size: number,
    freshWorkers: number,
  ) {
    this.agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
    for (let i = 0; i < freshWorkers; i++) this.workers.push(this.loop(this.fresh, undefined));
    this.workers.push(this.loop(this.kept, this.agent));
  }

  private async loop(into: HttpsGetResult[], agent: https.Agent | undefined): Promise<void> {
    while (this.running) {
      try {
        const r = await httpsGet(this.url, agent ? { agent } : { ca: this.ca });
        if (r.status !== 200 || r.digest !== this.digest || r.bytes !== this.size || !r.complete) {
          this.failures.push(`status ${r.status}, ${r.bytes} bytes, ${r.digest}, complete ${r.complete}`);
        }
        into.push(r);
      } catch (err) {
        this.failures.push(`${agent ? 'keep-alive' : 'fresh'}: ${(err as Error).message}`);
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
    this.agent.destroy();
  }
}

describe('certificate reload under load', () => {
  let work: string;
  let registry: Registry;
  let image: ImageInfo;
  let pairs: CertDir[];
  let liveCert: string;
  let liveKey: string;
  let edge: Edge;
  let load: PullLoad | undefined;

  before(async () => {
    work = tempDir('re-tls-reload-');
    pairs = await Promise.all([1, 2, 3].map((i) => certsInit(path.join(work, `ca-${i}`))));
    const live = path.join(work, 'live');
    fs.mkdirSync(live);
    liveCert = path.join(live, 'server.crt');
    liveKey = path.join(live, 'server.key');
    const first = pairs[0];
    assert.ok(first);
    fs.writeFileSync(liveCert, first.cert);
    fs.writeFileSync(liveKey, first.key, { mode: 0o600 });
    registry = await startRegistry();
    image = await makeOciLayout(path.join(work, 'layout'), { layers: [256 * KiB], tag: TAG });
    await pushImage(image.layoutDir, TAG, `${registry.host}/${REPO}:${TAG}`);
    edge = await startEdge({
      workDir: work,
      upstreams: [registry.url],
      env: { REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: liveCert, REGISTRY_EDGE_HTTP_TLS_KEY: liveKey },
    });
  });

  after(async () => {
    await load?.stop();
    await edge?.stop();
    await registry?.dispose();
    if (work) removeDir(work);
  });

  test('replaced files are picked up with no failed request; open connections keep working; a bad pair and SIGHUP', async (t) => {
    const [p1, p2, p3] = pairs;
    assert.ok(p1 && p2 && p3);
    assert.notEqual(p1.fingerprint, p2.fingerprint);
    const layer = image.layers[0];
    assert.ok(layer);
    const edgePort = port(edge.host);
    const allCAs = [p1.ca, p2.ca, p3.ca];
    const url = `https://${edge.host}/v2/${REPO}/blobs/${layer.digest}`;
    const served = async (): Promise<string> => (await tlsHandshake({ host: '127.0.0.1', port: edgePort, ca: allCAs })).fingerprint256;
    // Warm the cache so the load measures the listener, not the fill.
    const warm = await httpsGet(url, { ca: p1.ca });
    assert.equal(warm.status, 200);
    assert.equal(warm.digest, layer.digest);
    assert.equal(warm.fingerprint256, p1.fingerprint);

    const l = new PullLoad(url, allCAs, layer.digest, layer.size, 3);
    load = l;
    const freshWith = (fp: string): number => l.fresh.filter((r) => r.fingerprint256 === fp).length;
    await waitFor(() => freshWith(p1.fingerprint) >= 20 && l.kept.length >= 5, { timeoutMs: 20_000, what: 'load on the first certificate' });
    const keptSocket = l.kept[0]?.localPort;

    // 1. A good new pair renamed over the files: new handshakes present it.
    const reloadedBefore = countLog(edge, 'TLS certificate reloaded', 'file changed');
    replacePair(liveCert, liveKey, p2.cert, p2.key);
    await waitFor(async () => (await served()) === p2.fingerprint, { timeoutMs: 10_000, what: 'new handshakes to present the second certificate' });
    await waitFor(() => countLog(edge, 'TLS certificate reloaded', 'file changed') > reloadedBefore, { timeoutMs: 5_000, what: 'the reload log line' });
    const keptAtSwap = l.kept.length;
    await waitFor(() => freshWith(p2.fingerprint) >= 20 && l.kept.length >= keptAtSwap + 5, { timeoutMs: 20_000, what: 'load on the second certificate' });
    // The kept-alive connection opened before the swap is the same one and still serves, on its old certificate.
    const keptAfter = l.kept.slice(keptAtSwap);
    assert.ok(keptAfter.every((r) => r.localPort === keptSocket && r.reusedSocket && r.fingerprint256 === p1.fingerprint), JSON.stringify(keptAfter.slice(0, 3)));
    // Still TLS 1.2+ only and ALPN http/1.1 after a reload.
    await assert.rejects(tlsHandshake({ host: '127.0.0.1', port: edgePort, ca: allCAs, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }));
    assert.equal((await tlsHandshake({ host: '127.0.0.1', port: edgePort, ca: allCAs, ALPNProtocols: ['h2', 'http/1.1'] })).alpn, 'http/1.1');

    // 2. A bad pair (third certificate, second key): refused, the second keeps serving.
    const refusedBefore = countLog(edge, 'TLS certificate reload refused');
    replacePair(liveCert, liveKey, p3.cert, p2.key);
    await waitFor(() => countLog(edge, 'TLS certificate reload refused', 'file changed') > refusedBefore, { timeoutMs: 10_000, what: "'TLS certificate reload refused'" });
    const freshAtRefusal = l.fresh.length;
    await waitFor(() => l.fresh.length >= freshAtRefusal + 20, { timeoutMs: 20_000, what: 'load after the refused pair' });
    assert.ok(l.fresh.slice(freshAtRefusal).every((r) => r.fingerprint256 === p2.fingerprint), 'only the second certificate after the refusal');
    assert.equal(await served(), p2.fingerprint);

    // 3. SIGHUP reloads the files too: with the bad pair still there, refused again (reason 'reload')...
    const refusedByHup = countLog(edge, 'TLS certificate reload refused', 'reload');
    process.kill(edge.proc.pid, 'SIGHUP');
    await waitFor(() => countLog(edge, 'TLS certificate reload refused', 'reload') > refusedByHup, { timeoutMs: 10_000, what: 'SIGHUP reload refused' });
    assert.equal(await served(), p2.fingerprint);
    // ...and with a good pair, loaded.
    replacePair(liveCert, liveKey, p3.cert, p3.key);
    await waitFor(async () => (await served()) === p3.fingerprint, { timeoutMs: 10_000, what: 'the third certificate' });
    const reloadedByHup = countLog(edge, 'TLS certificate reloaded', 'reload');
    process.kill(edge.proc.pid, 'SIGHUP');
    await waitFor(() => countLog(edge, 'TLS certificate reloaded', 'reload') > reloadedByHup, { timeoutMs: 10_000, what: "'TLS certificate reloaded' after SIGHUP" });
    assert.equal(await served(), p3.fingerprint);
    const freshAtEnd = l.fresh.length;
    await waitFor(() => l.fresh.length >= freshAtEnd + 10, { timeoutMs: 20_000, what: 'load after SIGHUP' });

    await l.stop();
    load = undefined;
    const byCert = pairs.map((p, i) => `cert ${i + 1}: ${freshWith(p.fingerprint)}`).join(', ');
    t.diagnostic(`fresh-connection GETs ${l.fresh.length} (${byCert}); kept-alive GETs ${l.kept.length}; failures ${l.failures.length}`);
    assert.deepEqual(l.failures, [], `${l.failures.length} of ${l.fresh.length + l.kept.length + l.failures.length} requests failed`);
    assert.ok(freshWith(p3.fingerprint) >= 10);
    assert.ok(edge.proc.running(), 'the edge is still running');
  });
});

describe('certificate reload from a Kubernetes secret volume (..data symlink swap)', () => {
  let work: string;
  let registry: Registry;
  let pairs: CertDir[];
  let mount: string;
  let edge: Edge;
  let generation = 0;

  /** What kubelet's atomic writer does: a new timestamped dir, a new ..data link renamed over the old one. */
  function publish(pair: CertDir): void {
    const gen = `..gen_${++generation}`;
    fs.mkdirSync(path.join(mount, gen));
    fs.writeFileSync(path.join(mount, gen, 'server.crt'), pair.cert);
    fs.writeFileSync(path.join(mount, gen, 'server.key'), pair.key, { mode: 0o600 });
    const previous = fs.existsSync(path.join(mount, '..data')) ? fs.readlinkSync(path.join(mount, '..data')) : undefined;
    fs.symlinkSync(gen, path.join(mount, '..data_tmp'));
    fs.renameSync(path.join(mount, '..data_tmp'), path.join(mount, '..data'));
    for (const name of ['server.crt', 'server.key']) {
      if (!fs.existsSync(path.join(mount, name))) fs.symlinkSync(path.join('..data', name), path.join(mount, name));
    }
    if (previous) fs.rmSync(path.join(mount, previous), { recursive: true });
  }

  before(async () => {
    work = tempDir('re-tls-k8s-');
    pairs = await Promise.all([1, 2, 3].map((i) => certsInit(path.join(work, `ca-${i}`))));
    mount = path.join(work, 'secret');
    fs.mkdirSync(mount);
    const first = pairs[0];
    assert.ok(first);
    publish(first);
    registry = await startRegistry();
    edge = await startEdge({
      workDir: work,
      upstreams: [registry.url],
      env: { REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: path.join(mount, 'server.crt'), REGISTRY_EDGE_HTTP_TLS_KEY: path.join(mount, 'server.key') },
    });
  });

  after(async () => {
    await edge?.stop();
    await registry?.dispose();
    if (work) removeDir(work);
  });

  const served = async (): Promise<string> =>
    (await tlsHandshake({ host: '127.0.0.1', port: port(edge.host), ca: pairs.map((p) => p.ca) })).fingerprint256;

  // kubelet never touches server.crt/server.key themselves: only `..data` is renamed.
  test('a secret update (..data swapped) is picked up without SIGHUP', async () => {
    const [p1, p2] = pairs;
    assert.ok(p1 && p2);
    assert.equal(await served(), p1.fingerprint);
    publish(p2);
    await waitFor(async () => (await served()) === p2.fingerprint, { timeoutMs: 10_000, what: 'the edge to serve the updated secret' });
  });

  test('SIGHUP applies the files behind the symlinks', async () => {
    const p3 = pairs[2];
    assert.ok(p3);
    const reloadedByHup = countLog(edge, 'TLS certificate reloaded', 'reload');
    publish(p3);
    process.kill(edge.proc.pid, 'SIGHUP');
    await waitFor(() => countLog(edge, 'TLS certificate reloaded', 'reload') > reloadedByHup, { timeoutMs: 10_000, what: 'SIGHUP reload' });
    assert.equal(await served(), p3.fingerprint);
  });
});
