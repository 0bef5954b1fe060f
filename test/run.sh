#!/usr/bin/env bash
# The test command (npm test): installs the real peers the end-to-end tests run
# against when they are missing (as root on Debian), builds, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A PEERS=([htpasswd]=apache2-utils [docker-registry]=docker-registry [skopeo]=skopeo [redis-server]=redis-server [containerd]=containerd [ctr]=containerd [openssl]=openssl)
missing=()
for cmd in "${!PEERS[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${PEERS[$cmd]}")
done
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing test peers: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing test peers; install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
# One file at a time: the end-to-end files start registries and daemons, and this machine has 2 cores.
exec node --test --test-concurrency=1 "${files[@]}"
