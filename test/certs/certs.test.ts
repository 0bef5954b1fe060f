// certs init / show: the certificates must work with a real TLS stack, not just parse.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tls from 'node:tls';
import { canonicalIP, ipBytes, isValidHost, registryAddress } from '../../src/certs/hosts.js';
import { initCertificates, nextSteps, randomSerial, validateHosts, type InitResult } from '../../src/certs/issue.js';
import { describeCertificate, formatCertificateInfo, parseSubjectAltName } from '../../src/certs/show.js';
import { EDGE_BIN } from '../helpers/edge.js';
import { run as runProcess } from '../helpers/proc.js';

const HOSTS = ['localhost', '127.0.0.1', '::1', 'edge.zone-a.internal'];
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const DAY_MS = 86_400_000;

/** `registry-edge certs <args>` through the real command line. */
async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await runProcess(process.execPath, [EDGE_BIN, 'certs', ...args], { timeoutMs: 60_000 });
  return { code: r.code ?? -1, out: r.stdout, err: r.stderr };
}

function mode(file: string): number {
  return fs.statSync(file).mode & 0o777;
}

function read(file: string): string {
  return fs.readFileSync(file, 'utf8');
}

let tmp = '';
let files: InitResult;
let caPem = '';
let serverPem = '';

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'registry-edge-certs-'));
  files = await initCertificates({ hosts: HOSTS, outDir: path.join(tmp, 'main') });
  caPem = read(files.caCert);
  serverPem = read(files.cert);
});

after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('initCertificates', () => {
  test('writes the CA, the chain and both keys, keys readable by the owner only', () => {
    const dir = path.join(tmp, 'main');
    assert.deepEqual(files, {
      caCert: path.join(dir, 'ca.crt'),
      caKey: path.join(dir, 'ca.key'),
      cert: path.join(dir, 'server.crt'),
      key: path.join(dir, 'server.key'),
    });
    for (const file of Object.values(files)) assert.ok(fs.existsSync(file), file);
    assert.equal(mode(files.caKey), 0o600);
    assert.equal(mode(files.key), 0o600);
    assert.equal(mode(files.caCert), 0o644);
  });

  test('the server certificate names every host and is issued by the CA', () => {
    const ca = new X509Certificate(caPem);
    const server = new X509Certificate(serverPem);
    const sans = server.subjectAltName ?? '';
    for (const san of ['DNS:localhost', 'DNS:edge.zone-a.internal', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1']) {
      assert.ok(sans.includes(san), `${san} in ${sans}`);
    }
    assert.equal(server.checkIP('::1'), '::1');
    assert.equal(server.checkHost('edge.zone-a.internal'), 'edge.zone-a.internal');
    assert.equal(server.subject, 'CN=localhost');
    assert.equal(server.verify(ca.publicKey), true);
    assert.equal(server.checkIssued(ca), true);
    assert.equal(server.ca, false);
    assert.deepEqual(server.keyUsage, [SERVER_AUTH]);
    assert.match(server.serialNumber, /^[0-7][0-9A-F]{31}$/);
  });

  test('the CA is a self-signed CA named after its creation time', () => {
    const ca = new X509Certificate(caPem);
    assert.equal(ca.ca, true);
    assert.equal(ca.checkIssued(ca), true);
    assert.equal(ca.verify(ca.publicKey), true);
    assert.match(ca.subject, /^CN=registry-edge CA \d{4}-\d\d-\d\dT/);
  });

  test('server.crt holds the chain: server certificate, then the CA', () => {
    const chain = describeCertificate(serverPem);
    assert.equal(chain.length, 2);
    assert.equal(chain[0]?.isCA, false);
    assert.equal(chain[1]?.sha256Fingerprint, new X509Certificate(caPem).fingerprint256);
  });

  test('validity: default 825 days for the server, 3650 for the CA, backdated a little', () => {
    const [server, ca] = describeCertificate(serverPem);
    const now = Date.now();
    assert.ok(server && ca);
    assert.ok(Date.parse(server.notBefore) < now);
    assert.ok(Math.abs(Date.parse(server.notAfter) - (now + 825 * DAY_MS)) < 60_000 + 1000);
    assert.ok(Math.abs(Date.parse(ca.notAfter) - (now + 3650 * DAY_MS)) < 60_000 + 1000);
  });

  test('refuses to overwrite without force, replaces everything with force', async () => {
    const outDir = path.join(tmp, 'force');
    const first = await initCertificates({ hosts: HOSTS, outDir, force: true });
    const firstCa = read(first.caCert);
    await assert.rejects(initCertificates({ hosts: HOSTS, outDir }), /ca\.crt/);
    assert.equal(read(first.caCert), firstCa, 'untouched after the refusal');

    fs.chmodSync(first.key, 0o644);
    await initCertificates({ hosts: HOSTS, outDir, force: true });
    assert.notEqual(read(first.caCert), firstCa);
    assert.equal(mode(first.key), 0o600, 'a replaced key does not keep the old loose mode');
    assert.deepEqual(fs.readdirSync(outDir).sort(), ['ca.crt', 'ca.key', 'server.crt', 'server.key']);
  });

  test('names the only existing file it refuses to overwrite', async () => {
    const outDir = path.join(tmp, 'partial');
    fs.mkdirSync(outDir);
    fs.writeFileSync(path.join(outDir, 'server.key'), 'precious');
    await assert.rejects(initCertificates({ hosts: ['a.example'], outDir }), /server\.key/);
    assert.deepEqual(fs.readdirSync(outDir), ['server.key']);
  });

  test('rejects bad hosts, naming them, before writing anything', async () => {
    const outDir = path.join(tmp, 'bad');
    for (const bad of ['bad_host', 'edge.example.com:5000', '[::1]', 'https://edge', '*.com', '1.2.3.999', 'a..b', '-x.example', 'fe80::1%eth0', '']) {
      await assert.rejects(initCertificates({ hosts: ['good.example', bad], outDir }), (err: Error) => {
        assert.ok(err.message.includes(JSON.stringify(bad)), err.message);
        return true;
      });
    }
    await assert.rejects(initCertificates({ hosts: [], outDir }), /at least one host/);
    await assert.rejects(initCertificates({ hosts: ['a.example'], outDir, days: 4000 }), /caDays/);
    await assert.rejects(initCertificates({ hosts: ['a.example'], outDir, keyBits: 1024 }), /keyBits/);
    assert.equal(fs.existsSync(outDir), false);
  });
});

describe('TLS with the issued certificate', () => {
  let server: https.Server;
  let port = 0;
  let otherCaPem = '';

  before(async () => {
    server = https.createServer({ cert: serverPem, key: read(files.key) }, (_req, res) => res.end('edge ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    const other = await initCertificates({ hosts: HOSTS, outDir: path.join(tmp, 'other') });
    otherCaPem = read(other.caCert);
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function handshake(options: tls.ConnectionOptions): Promise<tls.PeerCertificate> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ...options }, () => {
        const peer = socket.getPeerCertificate();
        socket.destroy();
        resolve(peer);
      });
      socket.once('error', reject);
    });
  }

  test('a client trusting only the CA accepts the DNS name', async () => {
    const peer = await handshake({ ca: caPem, servername: 'edge.zone-a.internal' });
    assert.equal(peer.subject.CN, 'localhost');
  });

  test('a client trusting only the CA accepts the IP address, and every SAN checks out', async () => {
    const peer = await handshake({ ca: caPem });
    for (const host of HOSTS) assert.equal(tls.checkServerIdentity(host, peer), undefined, host);
    assert.ok(tls.checkServerIdentity('other.example', peer) instanceof Error);
  });

  test('an HTTPS request goes through', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      const req = https.get({ host: '127.0.0.1', port, ca: caPem, servername: 'edge.zone-a.internal', agent: false, path: '/v2/' }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
    });
    assert.equal(body, 'edge ok');
  });

  test('a client trusting a different CA refuses the server', async () => {
    await assert.rejects(handshake({ ca: otherCaPem, servername: 'edge.zone-a.internal' }), (err: NodeJS.ErrnoException) => {
      assert.match(err.code ?? '', /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/);
      return true;
    });
  });

  test('a name that is not in the SANs is refused', async () => {
    await assert.rejects(handshake({ ca: caPem, servername: 'other.example' }), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });
});

describe('host helpers', () => {
  test('accepts names, wildcards and IPs', () => {
    validateHosts(['localhost', '*.zone-a.internal', '10.0.0.1', '2001:db8::1', '::ffff:10.0.0.1', 'EDGE.Example.com']);
    assert.equal(isValidHost('*.*.example.com'), false);
    assert.equal(isValidHost('a'.repeat(64) + '.example'), false);
  });

  test('ipBytes handles every IPv6 spelling', () => {
    assert.equal(ipBytes('127.0.0.1').toString('hex'), '7f000001');
    assert.equal(ipBytes('::1').toString('hex'), '0'.repeat(31) + '1');
    assert.equal(ipBytes('::').toString('hex'), '0'.repeat(32));
    assert.equal(ipBytes('2001:db8::').toString('hex'), '20010db8' + '0'.repeat(24));
    assert.equal(ipBytes('fe80::1:2').toString('hex'), 'fe80' + '0'.repeat(20) + '00010002');
    assert.equal(ipBytes('::ffff:10.0.0.1').toString('hex'), '0'.repeat(20) + 'ffff0a000001');
    assert.equal(canonicalIP('0:0:0:0:0:0:0:1'), '::1');
  });

  test('registry addresses bracket IPv6 and drop port 443', () => {
    assert.equal(registryAddress('::1', 5000), '[::1]:5000');
    assert.equal(registryAddress('edge.example', 443), 'edge.example');
  });

  test('serials are 16 bytes, positive and minimally encoded', () => {
    for (let i = 0; i < 200; i++) assert.match(randomSerial(), /^(0[1-9a-f]|[1-7][0-9a-f])[0-9a-f]{30}$/);
  });
});

describe('nextSteps', () => {
  test('covers the edge config, Docker, containerd and containers/image for each address', () => {
    const outDir = path.join(tmp, 'main');
    const text = nextSteps({ hosts: [...HOSTS, '*.zone-b.internal'], outDir });
    for (const expected of [
      `http.tls.certificate: ${outDir}/server.crt`,
      `http.tls.key: ${outDir}/server.key`,
      '/etc/docker/certs.d/edge.zone-a.internal:5000/ca.crt',
      '/etc/docker/certs.d/[::1]:5000/ca.crt',
      '/etc/containerd/certs.d/127.0.0.1:5000/hosts.toml',
      'server = "https://localhost:5000"',
      '[host."https://localhost:5000"]',
      `ca = "${outDir}/ca.crt"`,
      '/etc/containers/certs.d/localhost:5000/ca.crt',
      '--cert-dir',
      '*.zone-b.internal',
    ]) {
      assert.ok(text.includes(expected), `missing ${expected} in:\n${text}`);
    }
    assert.ok(!text.includes('certs.d/*.'), 'no directory named after a wildcard');
  });

  test('uses the given port', () => {
    const text = nextSteps({ hosts: ['edge.example'], outDir: '/srv/certs', port: 8443 });
    assert.ok(text.includes('/etc/docker/certs.d/edge.example:8443/ca.crt'));
    assert.ok(text.includes('ca = "/srv/certs/ca.crt"'));
  });
});

describe('describeCertificate / formatCertificateInfo', () => {
  test('parses quoted SAN values', () => {
    assert.deepEqual(parseSubjectAltName('DNS:"a\\u002cb.example", IP Address:10.0.0.1, DNS:c'), [
      { type: 'DNS', value: 'a,b.example' },
      { type: 'IP Address', value: '10.0.0.1' },
      { type: 'DNS', value: 'c' },
    ]);
    assert.deepEqual(parseSubjectAltName(''), []);
  });

  test('reports expiry relative to the given time', () => {
    const [server] = describeCertificate(serverPem);
    assert.ok(server);
    const later = new Date(Date.parse(server.notAfter) + 3 * DAY_MS);
    assert.match(formatCertificateInfo([server], later), /EXPIRED 3 days ago/);
    const earlier = new Date(Date.parse(server.notBefore) - 2 * DAY_MS);
    assert.match(formatCertificateInfo([server], earlier), /not valid yet, starts in 2 days/);
    assert.match(formatCertificateInfo([server]), /expires in 82[45] days/);
  });

  test('rejects text without certificates', () => {
    assert.throws(() => describeCertificate('hello'), /no PEM certificate/);
  });
});

describe('registry-edge certs', () => {
  test('show prints every certificate with its SANs', async () => {
    const { code, out, err } = await run(['show', files.cert]);
    assert.equal(code, 0, err);
    for (const expected of ['subject: CN=localhost', 'SANs: DNS:localhost, DNS:edge.zone-a.internal, IP:127.0.0.1, IP:::1', 'certificate 2 of 2 (CA)', 'CA: yes', 'SHA-256: ']) {
      assert.ok(out.includes(expected), `missing ${expected} in:\n${out}`);
    }
  });

  test('init writes the files and prints them with the next steps', async () => {
    const outDir = path.join(tmp, 'cli');
    const { code, out, err } = await run(['init', '--hosts', 'edge.example, 10.1.2.3,', `--out=${outDir}`, '--days', '30', '--port', '8443']);
    assert.equal(code, 0, err);
    assert.ok(out.includes(path.join(outDir, 'server.key')));
    assert.ok(out.includes('/etc/docker/certs.d/edge.example:8443/ca.crt'));
    const [server] = describeCertificate(read(path.join(outDir, 'server.crt')));
    assert.deepEqual(server?.dnsNames, ['edge.example']);
    assert.deepEqual(server?.ipAddresses, ['10.1.2.3']);
    assert.ok(Math.abs(Date.parse(server?.notAfter ?? '') - (Date.now() + 30 * DAY_MS)) < 61_000);

    const again = await run(['init', '--hosts', 'edge.example', '--out', outDir]);
    assert.equal(again.code, 1);
    assert.match(again.err, /refusing to overwrite .*ca\.crt/);
  });

  test('usage errors exit 2 and name the flag', async () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /missing certs command \(init, renew, show\)/],
      [['frobnicate'], /unknown certs command frobnicate/],
      [['init', '--out', tmp], /missing --hosts/],
      [['init', '--hosts', 'a.example'], /missing --out/],
      [['init', '--hosts', 'a.example', '--out'], /--out needs a DIR/],
      [['init', '--hosts', 'a.example,bad host', '--out', tmp], /--hosts: invalid host "bad host"/],
      [['init', '--hosts', ',', '--out', tmp], /--hosts: at least one host/],
      [['init', '--hosts', 'a.example', '--out', tmp, '--days', '0'], /--days must be/],
      [['init', '--hosts', 'a.example', '--out', tmp, '--days', '1y'], /--days must be .*"1y"/],
      [['init', '--hosts', 'a.example', '--out', tmp, '--bogus'], /unknown option --bogus/],
      [['show'], /missing FILE/],
      [['show', 'a', 'b'], /unexpected argument b/],
    ];
    for (const [args, message] of cases) {
      const { code, err } = await run(args);
      assert.equal(code, 2, args.join(' '));
      assert.match(err, message);
      assert.match(err, /usage:/);
    }
  });

  test('a missing file is a failure, not a usage error', async () => {
    const { code, err } = await run(['show', path.join(tmp, 'nope.crt')]);
    assert.equal(code, 1);
    assert.match(err, /nope\.crt/);
  });
});
