#!/usr/bin/env bash
# Sets up, builds and runs every test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash toolchains/install-deps.sh
cmake --workflow --preset test
