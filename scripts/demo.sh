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
