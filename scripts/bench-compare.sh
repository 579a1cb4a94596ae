#!/usr/bin/env bash
# `make bench-compare`: see scripts/bench_compare.py. Installs the peers (restic, borg) and
# GNU time from Debian if they are missing; needs root for that and for dropping the page
# cache between steps.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(restic borgbackup time)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing missing packages: ${missing[*]}"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    else
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
fi
exec python3 scripts/bench_compare.py "$@"
