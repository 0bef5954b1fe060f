#!/usr/bin/env bash
# npm run bench: installs the peers the benchmark runs against when they are missing
# (as root on Debian), builds the project, and runs bench/run.ts. Settings are
# environment variables (see bench/README.md); BENCH_QUICK=1 for a fast smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-peers.sh "benchmark peers" nginx=nginx docker-registry=docker-registry skopeo=skopeo wrk=wrk \
  openssl=openssl curl=curl
# Debian installs nginx in /usr/sbin, which is not on every user's PATH.
command -v nginx >/dev/null 2>&1 || export NGINX_BIN=/usr/sbin/nginx

[ -d node_modules ] || npm ci --no-audit --no-fund
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then npm run build --silent; fi
exec node dist/bench/run.js "$@"
