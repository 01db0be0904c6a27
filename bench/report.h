// Results: one Record per measurement, printed as a table and as JSON lines.
#ifndef RELATTN_BENCH_REPORT_H_
#define RELATTN_BENCH_REPORT_H_

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/cases.h"

namespace relattn_bench {

inline constexpr double kUnset = NAN;  // a field that does not apply: left out of JSON

struct Record {
  std::string case_name;  // CaseName(), or "limits"
  std::string impl;       // "relattn", "xnnpack", "fma_peak", "dram_read"
  int threads = 1;
  double ms = kUnset;             // median time of one call
  double gflops = kUnset;         // useful GFLOP/s (UsefulFlops), or the FMA peak
  double peak_fraction = kUnset;  // gflops / measured FMA peak, same thread count
  // Prefill: gflops / the limit of the instructions the case's kernels use
  // (LimitOf in measure.cc): "fma_peak", "bf16_dot_peak", or a mix whose
  // limit is the harmonic mean, as Q.K and P.V take half the FLOPs each.
  std::string limit;
  double limit_fraction = kUnset;
  double gbps = kUnset;             // decode: K + V bytes / time; or DRAM read GB/s
  double bw_fraction = kUnset;      // gbps / measured DRAM read GB/s, same thread count
  double vs_xnnpack = kUnset;       // XNNPACK ms / relattn ms, same thread count (> 1: faster)
  double vs_separate = kUnset;      // sequences: separate calls' ms / the one call's ms
  double tokens_per_s = kUnset;     // models: 1 / the time of one token's attention, all layers
  double bytes_per_token = kUnset;  // models: K and V bytes one token's attention reads
  double create_ms = kUnset;        // XNNPACK: operator creation (K, V packing)
  double max_abs_diff = kUnset;     // XNNPACK: max |O_xnnpack - O_relattn| of the check
  double others_load = kUnset;      // CPU share other processes took meanwhile (cpu_load.h)
  int repeats = 0;
  std::string target;      // SIMD target that ran it
  std::string error;       // relattn or XNNPACK failure: the status and message
  std::string extra_json;  // more `,"key":value` pairs, written as they are (models.cc)
  bool has_case = false;
  Case kase{};  // the case's fields, written to JSON when has_case
};

// One JSON object on one line, without the newline. Unset fields are omitted.
std::string ToJson(const Record& r);

// The limits: one row per (impl, target, threads).
void PrintLimits(FILE* out, const std::vector<Record>& limits);

// The table of one shape: a row per (mask, scheme, dtype, impl), its
// thread counts side by side, then the n-thread / 1-thread speedup. Decode
// shapes also show K+V GB/s and the fraction of DRAM bandwidth.
void PrintShapeTable(FILE* out, const Shape& shape, const std::vector<Record>& records,
                     const std::vector<int>& thread_counts);

// Draws png_path from the JSON lines in json_path with bench/plot.py, using the
// first python3 that has matplotlib: the one on PATH, else Debian's
// /usr/bin/python3. Without one, prints a one-line note: never fails the run.
void DrawChart(const std::string& json_path, const std::string& png_path);

}  // namespace relattn_bench

#endif  // RELATTN_BENCH_REPORT_H_
