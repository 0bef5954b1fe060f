/** The certs subcommands' usage, apart from their code: node-forge costs ~12 MiB of RSS, so `serve` never loads it. */
export const CERTS_USAGE = `usage:
  registry-edge certs init --hosts HOST[,HOST...] --out DIR [--days N] [--port N] [--force]
      create ca.crt, ca.key, server.crt (chain) and server.key in DIR;
      HOST is a DNS name (wildcards like *.example.com allowed) or an IP address;
      --days: server certificate validity (default 825); --port: the port clients use,
      for the printed instructions (default 5000); --force: replace existing files
  registry-edge certs show FILE
      print subject, issuer, validity, SANs and fingerprint of every certificate in FILE`;
