#!/usr/bin/env bash
# Installs the Debian packages that building and testing need, if any are missing.
# Needs root (or sudo) only when something must be installed.
set -euo pipefail

packages=(build-essential pkg-config libssl-dev tar libarchive-tools python3)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing missing packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
elif command -v sudo >/dev/null; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
    echo "error: please install as root: apt-get install ${missing[*]}" >&2
    exit 1
fi
