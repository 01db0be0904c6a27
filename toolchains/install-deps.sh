#!/usr/bin/env bash
# Installs the Debian 12 packages relattn's host build, tests, demo and bench
# need. Idempotent: installs only what is missing, with one apt-get update.
# Usage: bash toolchains/install-deps.sh [extra-package...]
set -euo pipefail

packages=(cmake make g++ pkg-config libhwy-dev libxnnpack-dev libpthreadpool-dev doctest-dev python3-numpy python3-pytest python3-venv python3-setuptools python3-wheel "$@")

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
