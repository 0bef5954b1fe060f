#!/usr/bin/env bash
# npm run soak: installs the peers the soak runs against when they are missing (as root on
# Debian), builds the project, and runs bench/soak.ts. Settings are environment variables
# (see the Soak section of bench/README.md), e.g. SOAK_SECONDS=60 SOAK_CLIENTS=100.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-peers.sh "soak peers" docker-registry=docker-registry openssl=openssl

[ -d node_modules ] || npm ci --no-audit --no-fund
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then npm run build --silent; fi
exec node dist/bench/soak.js "$@"
