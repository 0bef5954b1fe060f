#!/usr/bin/env bash
# Makes sure the Debian packages a test or benchmark runs against are installed.
# Usage: install-peers.sh WHAT COMMAND=PACKAGE...
# As root with apt-get: installs the packages of missing commands. Otherwise prints
# the exact install line and exits 1.
set -euo pipefail
what=$1
shift
missing=()
for pair in "$@"; do
  cmd=${pair%%=*}
  # Debian puts some daemons (nginx) in /usr/sbin, not on every PATH.
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${pair#*=}")
done
((${#missing[@]})) || exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing $what: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing $what; install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
