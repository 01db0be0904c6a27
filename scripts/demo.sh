#!/usr/bin/env bash
# The main job: set up, build (Release) and run the relattn demo, which runs
# every position scheme and mask, checks each against the fp64 reference and
# prints errors and timings.
set -euo pipefail
cd "$(dirname "$0")/.."
bash toolchains/install-deps.sh
cmake --preset release
cmake --build --preset release --target relattn-demo relattn-stream
./build/release/examples/relattn-demo "$@"
./build/release/examples/relattn-stream --steps 1000000
# Positions pass 2^31 (int64 throughout): the same stream from 2^31 - 1000.
./build/release/examples/relattn-stream --steps 20000 --start 2147482648
