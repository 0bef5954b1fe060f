#!/usr/bin/env bash
# The test command (npm test): installs the real peers the end-to-end tests run
# against when they are missing (as root on Debian), builds, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-peers.sh "test peers" docker-registry=docker-registry skopeo=skopeo containerd=containerd \
  ctr=containerd openssl=openssl htpasswd=apache2-utils redis-server=redis-server

[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
# One file at a time: the end-to-end files start registries and daemons, and this machine has 2 cores.
exec node --test --test-concurrency=1 "${files[@]}"
