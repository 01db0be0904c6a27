// Wall-clock timing helpers shared by the bench's files.
#ifndef RELATTN_BENCH_TIMING_H_
#define RELATTN_BENCH_TIMING_H_

#include <algorithm>
#include <chrono>
#include <vector>

namespace relattn_bench {

// Seconds on the steady clock since an arbitrary origin.
inline double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seconds `fn()` takes, once.
template <class Fn>
double TimeSeconds(Fn&& fn) {
  const double start = NowSeconds();
  fn();
  return NowSeconds() - start;
}

// Median of a non-empty sample (the mean of the two middle values if even).
inline double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

}  // namespace relattn_bench

#endif  // RELATTN_BENCH_TIMING_H_
