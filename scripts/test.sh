#!/usr/bin/env bash
# Sets up, builds and runs every test suite: the host build; the aarch64 and
# armv7 cross builds under qemu-user, every ARM SIMD target (toolchains/); then
# the reliability suites (scripts/reliability.sh). A cross suite is skipped,
# with a message, only when its compiler, qemu or target packages cannot be
# installed.
# RELATTN_CROSS=0 leaves out the cross suites, RELATTN_RELIABILITY=0 the
# reliability suites (for quicker local runs; CI runs everything).
set -euo pipefail
cd "$(dirname "$0")/.."
bash toolchains/install-deps.sh

# The SIMD targets each ctest entry of a build exercised, from its test log.
print_targets() {
  echo "test.sh: SIMD targets exercised ($1):"
  awk '/^[0-9]+\/[0-9]+ Testing: / { name = $3 }
       sub(/^SIMD targets under test: */, "") { print "  " name ": " $0 }' \
    "build/$1/Testing/Temporary/LastTest.log" | sort
}

SECONDS=0
cmake --workflow --preset test
print_targets test
summary=("host: passed (${SECONDS} s)")

if [ "${RELATTN_CROSS:-1}" != 0 ]; then
  for suite in aarch64:arm64 armv7:armhf; do
    preset="${suite%%:*}" debarch="${suite#*:}"
    rc=0
    bash toolchains/provision-sysroot.sh "$debarch" || rc=$?
    if [ "$rc" -eq 3 ]; then
      echo "test.sh: SKIPPED the $preset cross suite: its toolchain could not be installed (above)"
      summary+=("$preset: SKIPPED, toolchain not installable")
      continue
    elif [ "$rc" -ne 0 ]; then
      exit "$rc"
    fi
    SECONDS=0
    cmake --workflow --preset "$preset"
    print_targets "$preset"
    summary+=("$preset (qemu): passed (${SECONDS} s)")
  done
fi

if [ "${RELATTN_RELIABILITY:-1}" != 0 ]; then
  SECONDS=0
  bash scripts/reliability.sh
  summary+=("reliability: passed (${SECONDS} s)")
fi
printf 'test.sh: %s\n' "${summary[@]}"
