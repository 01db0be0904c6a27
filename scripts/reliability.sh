#!/usr/bin/env bash
# The reliability suites (run by scripts/test.sh): the host tests under
# ASan + UBSan, the concurrency tests under TSan, valgrind memcheck on a
# representative subset, and the libFuzzer target for a fixed time on its
# committed seed corpus. Any report, crash or mismatch fails.
# RELATTN_FUZZ_SECONDS (default 60) sets the fuzzing time; the fixed seed makes
# a CI run replay the mutation sequence checked before landing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash toolchains/install-deps.sh clang-14 libclang-rt-14-dev valgrind

SECONDS=0
cmake --workflow --preset asan
echo "reliability: ASan + UBSan suites passed (${SECONDS} s)"

SECONDS=0
# pthreadpool (a Debian build, not instrumented) synchronises in ways TSan
# cannot see, so TSan runs test_concurrency: concurrent callers, and the
# library's own workers driven by a std::thread parallel_for.
TSAN_OPTIONS="halt_on_error=1" cmake --workflow --preset tsan
echo "reliability: TSan suites passed (${SECONDS} s)"

SECONDS=0
for t in test_api test_kv_cache; do
  valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite -q \
    build/test/tests/$t > "build/test/valgrind-$t.log" 2>&1 || {
    cat "build/test/valgrind-$t.log"
    echo "reliability: valgrind found errors in $t"
    exit 1
  }
done
echo "reliability: valgrind memcheck clean on test_api, test_kv_cache (${SECONDS} s)"

SECONDS=0
cmake --preset fuzz > /dev/null
cmake --build --preset fuzz
corpus=build/fuzz/corpus
mkdir -p "$corpus"
cp fuzz/seeds/* "$corpus"/
build/fuzz/fuzz/fuzz_attention -max_total_time="${RELATTN_FUZZ_SECONDS:-60}" -max_len=4096 -seed=1 \
  -print_final_stats=1 "$corpus" > build/fuzz/fuzz.log 2>&1 || {
  tail -40 build/fuzz/fuzz.log
  echo "reliability: the fuzzer found a failure (input saved under build/fuzz)"
  exit 1
}
grep -E "stat::number_of_executed_units|stat::peak_rss_mb" build/fuzz/fuzz.log || true
echo "reliability: fuzzing clean (${SECONDS} s)"
