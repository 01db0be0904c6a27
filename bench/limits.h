// The machine's limits, measured in the same run as the kernels: FP32 FMA
// peak per SIMD target and thread count, and DRAM read bandwidth.
#ifndef RELATTN_BENCH_LIMITS_H_
#define RELATTN_BENCH_LIMITS_H_

#include <pthreadpool.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace relattn_bench {

// A compiled SIMD target the CPU supports: its hwy::HWY_* bit and its name.
struct Target {
  int64_t bit;
  std::string name;  // hwy::TargetName: "AVX3", "AVX2", "SSE4", "SSSE3", "SCALAR"
};

// Compiled and supported targets, best first (from hwy::SupportedAndGeneratedTargets()).
std::vector<Target> AvailableTargets();

// The target called `name` (case-insensitive), or nullptr.
const Target* FindTarget(const std::vector<Target>& targets, const std::string& name);

// Makes Highway dispatch (the bench's loops and relattn's kernel) use only
// `target`; nullptr restores the best supported target.
void ForceTarget(const Target* target);

// FP32 GFLOP/s of n_threads threads (pool: NULL for 1) each running
// independent FMA chains on the currently dispatched target for about
// `seconds`; 2 FLOPs per lane per FMA. Best of `repeats` (a peak is a maximum).
double MeasureFmaPeakGflops(pthreadpool_t pool, int n_threads, double seconds, int repeats);

// The same for AVX512-BF16 vdpbf16ps (GFLOP/s, 2 per bf16 product) and
// AVX512-VNNI vpdpbusd (G int8 ops/s, 2 per product); 0 where the CPU (or a
// non-x86 build) lacks the instruction. Not per Highway target: one ISA each.
double MeasureBf16DotPeakGflops(pthreadpool_t pool, int n_threads, double seconds, int repeats);
double MeasureInt8DotPeakGops(pthreadpool_t pool, int n_threads, double seconds, int repeats);

// A buffer larger than any cache, for read bandwidth and cache flushing.
class BigBuffer {
 public:
  // Allocates `bytes` (rounded to 4 KiB), 64-byte aligned, and writes every page.
  explicit BigBuffer(size_t bytes);
  ~BigBuffer();
  BigBuffer(const BigBuffer&) = delete;
  BigBuffer& operator=(const BigBuffer&) = delete;

  bool ok() const { return data_ != nullptr; }
  size_t bytes() const { return n_floats_ * sizeof(float); }

  // GB/s (1e9 bytes/s) of summing the whole buffer with vector loads, split
  // evenly over n_threads threads (pool: NULL for 1). Best of `repeats`.
  double MeasureReadGbps(pthreadpool_t pool, int n_threads, int repeats) const;

  // Reads the whole buffer once (untimed): evicts what caches held before.
  void Flush() const;

 private:
  float* data_ = nullptr;
  size_t n_floats_ = 0;
};

}  // namespace relattn_bench

#endif  // RELATTN_BENCH_LIMITS_H_
