// A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI,
// shared by every TLS edge of a run (same key type, same chain, same handshake cost).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../test/helpers/proc.js';

export interface BenchCerts {
  readonly dir: string;
  readonly caCert: string;
  readonly cert: string;
  readonly key: string;
  /** A directory holding only ca.crt, for skopeo --src-cert-dir. */
  readonly skopeoCertDir: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await run('openssl', args, { cwd, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`openssl ${args[0] ?? ''} failed (code ${r.code}):\n${r.stderr}`);
}

/** ECDSA P-256 CA and leaf (SAN IP:127.0.0.1, DNS:localhost), valid for a day. */
export async function makeCerts(dir: string): Promise<BenchCerts> {
  fs.mkdirSync(dir, { recursive: true });
  const ext = path.join(dir, 'leaf.ext');
  fs.writeFileSync(
    ext,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '',
    ].join('\n'),
  );
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
  await openssl(
    ['req', '-x509', '-new', '-key', 'ca.key', '-sha256', '-days', '2', '-subj', '/CN=registry-edge bench CA', '-out', 'ca.crt',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    dir,
  );
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'server.key'], dir);
  await openssl(['req', '-new', '-key', 'server.key', '-subj', '/CN=127.0.0.1', '-out', 'server.csr'], dir);
  await openssl(
    ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-sha256',
      '-extfile', ext, '-out', 'server.crt'],
    dir,
  );
  const skopeoCertDir = path.join(dir, 'skopeo');
  fs.mkdirSync(skopeoCertDir, { recursive: true });
  fs.copyFileSync(path.join(dir, 'ca.crt'), path.join(skopeoCertDir, 'ca.crt'));
  return {
    dir,
    caCert: path.join(dir, 'ca.crt'),
    cert: path.join(dir, 'server.crt'),
    key: path.join(dir, 'server.key'),
    skopeoCertDir,
  };
}
