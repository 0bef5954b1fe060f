/** `registry-edge certs init|renew|show`: the argument handling around src/certs/. */
import { readFile } from 'node:fs/promises';
import { initCertificates, nextSteps, validateHosts } from '../certs/issue.js';
import { renewServerCertificate } from '../certs/renew.js';
import { describeCertificate, formatCertificateInfo } from '../certs/show.js';
import { CommandFailure, HelpRequested, UsageError, list, parseArgs, positiveInt, required, subcommand, type Command, type Io } from './args.js';

const USAGE = `usage:
  registry-edge certs init --hosts HOST[,HOST...] --out DIR [--days N] [--port N] [--force]
      create ca.crt, ca.key, server.crt (chain) and server.key in DIR;
      HOST is a DNS name (wildcards like *.example.com allowed) or an IP address;
      --days: server certificate validity (default 825); --port: the port clients use,
      for the printed instructions (default 5000); --force: replace existing files (a new CA)
  registry-edge certs renew --out DIR [--hosts HOST[,HOST...]] [--days N]
      a new server.key and server.crt from the CA in DIR, which stays: clients keep trusting
      the edge; hosts default to the current certificate's; a running edge reloads the pair
  registry-edge certs show FILE
      print subject, issuer, validity, SANs and fingerprint of every certificate in FILE`;

function parseHosts(text: string): string[] {
  const hosts = list(text);
  try {
    validateHosts(hosts);
  } catch (err) {
    throw new UsageError(`--hosts: ${(err as Error).message}`);
  }
  return hosts;
}

async function init(args: readonly string[], io: Io): Promise<number> {
  const parsed = parseArgs(args, { values: ['--hosts HOSTS', '--out DIR', '--days N', '--port N'], switches: ['--force'] });
  const hosts = parseHosts(required(parsed, '--hosts'));
  const outDir = required(parsed, '--out');
  const days = positiveInt(parsed, '--days', 36500);
  const port = positiveInt(parsed, '--port', 65535);
  const written = await initCertificates({ hosts, outDir, days, force: parsed.switches.has('--force') });
  io.stdout.write(`wrote:\n  ${written.caCert}\n  ${written.caKey}\n  ${written.cert}\n  ${written.key}\n\n`);
  io.stdout.write(nextSteps({ hosts, outDir, port }));
  return 0;
}

async function renew(args: readonly string[], io: Io): Promise<number> {
  const parsed = parseArgs(args, { values: ['--hosts HOSTS', '--out DIR', '--days N'] });
  const hosts = parsed.values.has('--hosts') ? parseHosts(required(parsed, '--hosts')) : undefined;
  const renewed = await renewServerCertificate({ outDir: required(parsed, '--out'), hosts, days: positiveInt(parsed, '--days', 36500) });
  io.stdout.write(`wrote:\n  ${renewed.cert}\n  ${renewed.key}\nfor ${renewed.hosts.join(', ')}, valid until ${renewed.notAfter.toISOString()}, signed by ${renewed.caCert} (unchanged)\n`);
  return 0;
}

async function show(args: readonly string[], io: Io): Promise<number> {
  const parsed = parseArgs(args, { positionals: 1 });
  const [file] = parsed.positionals;
  if (file === undefined) throw new UsageError('missing FILE (the certificate to show)');
  io.stdout.write(formatCertificateInfo(describeCertificate(await readFile(file, 'utf8'))));
  return 0;
}

export const command: Command = {
  usage: USAGE,
  async run(args, io) {
    const [sub, rest] = subcommand(args, 'certs', ['init', 'renew', 'show']);
    try {
      return await (sub === 'init' ? init(rest, io) : sub === 'renew' ? renew(rest, io) : show(rest, io));
    } catch (err) {
      // src/certs/ says what went wrong in its messages (a refused overwrite, a CA that expires too soon).
      throw err instanceof UsageError || err instanceof HelpRequested ? err : new CommandFailure((err as Error).message);
    }
  },
};
