// TLS client probes for the end-to-end tests of the edge's HTTPS listener:
// one handshake with chosen versions/ALPN/session (what did the server present
// and negotiate?), and HTTPS GETs that hash the body and report which
// certificate the connection carried and whether it was a reused socket.
import { createHash, X509Certificate } from 'node:crypto';
import * as https from 'node:https';
import * as tls from 'node:tls';

export interface HandshakeOptions {
  host: string;
  port: number;
  /** Trusted CA(s); the handshake fails when the chain does not verify (rejectUnauthorized). */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Skip verification (to look at what is served whatever it is). */
  insecure?: boolean;
  /** SNI and the name checked against the SANs (not sent for IP addresses). */
  servername?: string;
  minVersion?: tls.SecureVersion;
  maxVersion?: tls.SecureVersion;
  ciphers?: string;
  ALPNProtocols?: string[];
  /** A session from an earlier handshake, to resume. */
  session?: Buffer;
  /** Wait this long for a session ticket before closing (TLS 1.3 sends them after the handshake). */
  sessionWaitMs?: number;
  timeoutMs?: number;
}

export interface HandshakeResult {
  protocol: string | null;
  alpn: string | false;
  /** SHA-256 fingerprint of the leaf the server presented, as getPeerCertificate() spells it (AA:BB:...). */
  fingerprint256: string;
  authorized: boolean;
  reused: boolean;
  /** The session to resume with (undefined when none arrived in time). */
  session: Buffer | undefined;
}

/** The fingerprint of the first certificate of a PEM file, in getPeerCertificate()'s spelling. */
export function pemFingerprint256(pem: string | Buffer): string {
  return new X509Certificate(pem).fingerprint256;
}

/** One TLS handshake; rejects with the TLS error (its `code` says why) when it fails. */
export function tlsHandshake(opts: HandshakeOptions): Promise<HandshakeResult> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let session: Buffer | undefined;
    const socket = tls.connect({
      host: opts.host,
      port: opts.port,
      ca: opts.ca,
      rejectUnauthorized: !opts.insecure,
      servername: opts.servername,
      minVersion: opts.minVersion,
      maxVersion: opts.maxVersion,
      ciphers: opts.ciphers,
      ALPNProtocols: opts.ALPNProtocols,
      session: opts.session,
    });
    const timer = setTimeout(() => fail(new Error('TLS handshake timed out')), opts.timeoutMs ?? 10_000);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      if (settled) return;
      settled = true;
      reject(err);
    };
    socket.on('session', (s: Buffer) => {
      session = s;
    });
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      const finish = (): void => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        resolve({
          protocol: socket.getProtocol(),
          alpn: socket.alpnProtocol ?? false,
          fingerprint256: socket.getPeerCertificate().fingerprint256,
          authorized: socket.authorized,
          reused: socket.isSessionReused(),
          session,
        });
        socket.destroy();
      };
      const wait = opts.sessionWaitMs ?? 0;
      if (wait <= 0 || session) return finish();
      // Session tickets follow the handshake in TLS 1.3: read until one arrives (bounded).
      const bound = setTimeout(finish, wait);
      socket.once('session', () => {
        clearTimeout(bound);
        finish();
      });
      socket.resume();
    });
  });
}

export interface HttpsGetResult {
  status: number;
  bytes: number;
  digest: string;
  /** Leaf fingerprint of the connection the response came on. */
  fingerprint256: string;
  /** The request went on a kept-alive socket that had served an earlier request. */
  reusedSocket: boolean;
  /** Local port of the connection (identifies it). */
  localPort: number;
  complete: boolean;
}

export interface HttpsGetOptions {
  ca?: string | Buffer | Array<string | Buffer>;
  /** A keep-alive agent; without one every request makes a fresh connection. */
  agent?: https.Agent;
  servername?: string;
  timeoutMs?: number;
}

/** GET over HTTPS with the body hashed (sha256) as it streams; rejects on transport errors only. */
export function httpsGet(url: string, opts: HttpsGetOptions = {}): Promise<HttpsGetResult> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = https.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method: 'GET',
        ca: opts.agent ? undefined : opts.ca,
        servername: opts.servername,
        agent: opts.agent ?? false,
        timeout: opts.timeoutMs ?? 30_000,
      },
      (res) => {
        const socket = res.socket as tls.TLSSocket;
        const fingerprint256 = socket.getPeerCertificate().fingerprint256;
        const localPort = socket.localPort ?? 0;
        const hash = createHash('sha256');
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          hash.update(c);
        });
        res.once('error', reject);
        res.once('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            bytes,
            digest: `sha256:${hash.digest('hex')}`,
            fingerprint256,
            reusedSocket: req.reusedSocket,
            localPort,
            complete: res.complete,
          }),
        );
      },
    );
    req.once('timeout', () => req.destroy(new Error(`timeout requesting ${url}`)));
    req.once('error', reject);
    req.end();
  });
}
