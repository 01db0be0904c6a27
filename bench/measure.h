// Measuring one shape: every selected relattn case at every thread count and
// the XNNPACK peer, alternating in rounds so that drifts in clock speed or
// background load fall on all of them alike.
#ifndef RELATTN_BENCH_MEASURE_H_
#define RELATTN_BENCH_MEASURE_H_

#include <pthreadpool.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "bench/cases.h"
#include "bench/limits.h"
#include "bench/report.h"

namespace relattn_bench {

// The measured limits the fractions refer to, by thread count.
struct Limits {
  std::map<int, double> peak_gflops;  // best compiled target
  std::map<int, double> read_gbps;
  std::map<int, double> bf16_dot_gflops, int8_dot_gops;  // where the CPU has them
};

struct MeasureConfig {
  std::vector<int> thread_counts;  // e.g. {1, 2}; counts > 1 run on `pool`
  pthreadpool_t pool = nullptr;    // pthreadpool of the largest count
  relattn_threads threads{};       // relattn's view of `pool`
  bool with_xnnpack = true;
  size_t xnnpack_scratch_bytes = 0;  // XnnpackAttention::Create's; 0: tuned
  // Rounds: as many as fit in budget_s (judged from the warm-up call), kept
  // within [min_rounds, max_rounds]; fixed_rounds > 0 overrides.
  double budget_s = 10.0;
  int min_rounds = 3, max_rounds = 11, fixed_rounds = 0;
  const BigBuffer* flush = nullptr;  // read before each decode call (cold K/V)
  std::string target;                // relattn's dispatched SIMD target, for the records
};

// One timed thing: an implementation of a case at one thread count.
struct Runner {
  Runner(std::function<std::string()> run_fn, bool cold)
      : run(std::move(run_fn)), cold_caches(cold) {}
  std::function<std::string()> run;  // "" on success, else the error
  bool cold_caches;                  // flush caches before each call
  std::vector<double> seconds;
  std::string error;
};

// Warms each runner up once (a failing runner keeps its error and is not
// timed), then runs rounds in which every runner runs once, in order, as
// many as config's budget allows; returns the number of rounds.
int MeasureAlternating(std::vector<Runner>& runners, const MeasureConfig& config);

struct ShapeResult {
  std::vector<Record> records;  // relattn and XNNPACK, one per (case, impl, threads)
  Record check;                 // XNNPACK vs relattn on one case: max_abs_diff or error
  double xnnpack_create_ms = kUnset;
  long long xnnpack_rows_per_block = 0;
  int rounds = 0;
};

// Measures `cases` (all of `shape`) and the XNNPACK peer of the shape. Each
// time is the median over rounds of one call, after one warm-up call each.
ShapeResult MeasureShape(const Shape& shape, const std::vector<Case>& cases,
                         const MeasureConfig& config, const Limits& limits);

}  // namespace relattn_bench

#endif  // RELATTN_BENCH_MEASURE_H_
