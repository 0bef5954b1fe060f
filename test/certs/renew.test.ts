// `registry-edge certs renew`: a new server pair from the CA certs init made. Clients that
// trust that CA keep verifying (openssl verify, a TLS client), the CA stays byte for byte,
// and a running edge serves the new certificate without a restart.
import assert from 'node:assert/strict';
import { readFileSync, statSync, unlinkSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { describeCertificate } from '../../src/certs/show.js';
import { EDGE_BIN, startEdge, type Edge } from '../helpers/edge.js';
import { removeDir, run, tempDir, waitFor, type RunResult } from '../helpers/proc.js';
import { pemFingerprint256, tlsHandshake } from '../helpers/tls-client.js';

const certs = (args: string[]): Promise<RunResult> => run(process.execPath, [EDGE_BIN, 'certs', ...args], { timeoutMs: 60_000 });

describe('certs renew', () => {
  let work: string;
  let dir: string;
  let edge: Edge;
  const read = (name: string): string => readFileSync(path.join(dir, name), 'utf8');

  before(async () => {
    work = tempDir('re-renew-');
    dir = path.join(work, 'certs');
    const init = await certs(['init', '--hosts', 'localhost,127.0.0.1,edge.zone-a.internal', '--out', dir, '--days', '30']);
    assert.equal(init.code, 0, init.stderr);
    edge = await startEdge({
      workDir: work,
      upstreams: ['http://127.0.0.1:9'],
      env: { REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: path.join(dir, 'server.crt'), REGISTRY_EDGE_HTTP_TLS_KEY: path.join(dir, 'server.key') },
    });
  });

  after(async () => {
    await edge?.stop();
    if (work) removeDir(work);
  });

  const served = async (): Promise<string> => {
    const [host, port] = edge.host.split(':');
    return (await tlsHandshake({ host: host as string, port: Number(port), ca: read('ca.crt') })).fingerprint256;
  };

  test('a new certificate from the same CA, with the same SANs and a later notAfter, served by the running edge', async () => {
    const ca = read('ca.crt');
    const caKey = read('ca.key');
    const before = describeCertificate(read('server.crt'))[0];
    const oldFingerprint = pemFingerprint256(read('server.crt'));
    assert.equal(await served(), oldFingerprint);
    const pid = edge.proc.pid;

    const r = await certs(['renew', '--out', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /for localhost, edge\.zone-a\.internal, 127\.0\.0\.1, valid until /);
    assert.equal(read('ca.crt'), ca, 'the CA stays');
    assert.equal(read('ca.key'), caKey);
    const verify = await run('openssl', ['verify', '-CAfile', path.join(dir, 'ca.crt'), path.join(dir, 'server.crt')]);
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, /server\.crt: OK/);
    const [leaf, chainCa] = describeCertificate(read('server.crt'));
    assert.deepEqual(leaf?.dnsNames, before?.dnsNames);
    assert.deepEqual(leaf?.ipAddresses, before?.ipAddresses);
    assert.equal(leaf?.subject, before?.subject);
    assert.ok(Date.parse(leaf?.notAfter ?? '') > Date.parse(before?.notAfter ?? ''), 'valid for longer than the old one (825 days against 30)');
    assert.equal(chainCa?.isCA, true, 'server.crt still carries the chain');
    assert.equal(statSync(path.join(dir, 'server.key')).mode & 0o777, 0o600);

    const newFingerprint = pemFingerprint256(read('server.crt'));
    assert.notEqual(newFingerprint, oldFingerprint);
    // The edge watches the files; a client trusting the old CA verifies the new certificate.
    await waitFor(async () => (await served()) === newFingerprint, { what: 'the edge to serve the renewed certificate' });
    assert.equal(edge.proc.pid, pid);
    assert.ok(edge.proc.running(), 'no restart');
  });

  test('--hosts replaces the names; --days past the CA is refused; without a CA there is nothing to renew from', async () => {
    const r = await certs(['renew', '--out', dir, '--hosts', 'edge.zone-b.internal,127.0.0.1', '--days', '10']);
    assert.equal(r.code, 0, r.stderr);
    const [leaf] = describeCertificate(read('server.crt'));
    assert.deepEqual(leaf?.dnsNames, ['edge.zone-b.internal']);
    assert.deepEqual(leaf?.ipAddresses, ['127.0.0.1']);
    assert.equal(leaf?.subject, 'CN=edge.zone-b.internal');

    const long = await certs(['renew', '--out', dir, '--days', '36500']);
    assert.equal(long.code, 1);
    assert.match(long.stderr, /^registry-edge certs: the CA in .*ca\.crt expires in \d+ days, before the 36500 asked/);

    unlinkSync(path.join(dir, 'ca.key'));
    const noCa = await certs(['renew', '--out', dir]);
    assert.equal(noCa.code, 1);
    assert.match(noCa.stderr, /cannot read the CA key .*ca\.key: no such file \(make one with certs init\)/);
  });
});
