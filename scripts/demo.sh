#!/usr/bin/env bash
# The main job: set up, build (Release) and run the relattn demo (every
# position scheme and mask against the fp64 reference, with errors and
# timings), the benchmark's short run, and the streaming decode example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash toolchains/install-deps.sh python3-matplotlib
cmake --preset release
# Also librelattn.so (Python, JNI and other loaders) and the relattn CLI, which the
# README's and bindings' examples use from this build.
cmake --build --preset release --target relattn-demo relattn-stream relattn-bench relattn_shared \
  relattn_cli
./build/release/examples/relattn-demo "$@"
# The benchmark's short run: relattn against XNNPACK and the machine's limits.
./build/release/bench/relattn-bench --quick --json build/release/bench-quick.jsonl \
  --chart build/release/bench-quick.png
./build/release/examples/relattn-stream --steps 1000000
# Positions pass 2^31 (int64 throughout): the same stream from 2^31 - 1000.
./build/release/examples/relattn-stream --steps 20000 --start 2147482648
