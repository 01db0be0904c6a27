// Measured machine limits (see limits.h).
#include "bench/limits.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

#include "bench/limits_dot.h"
#include "bench/limits_kernels.h"
#include "bench/timing.h"
#include "hwy/targets.h"

namespace relattn_bench {
namespace {

volatile float g_sink;  // keeps the measured loops' results alive

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Runs fn(i) for i in [0, n_threads), one call per pool thread (pool NULL or
// one thread: on this thread). Each call is long (> 10 ms), so pthreadpool's
// work stealing never moves a call to another thread in practice.
template <class Fn>
void OnEachThread(pthreadpool_t pool, int n_threads, const Fn& fn) {
  if (pool == nullptr || n_threads <= 1) {
    fn(size_t{0});
    return;
  }
  pthreadpool_parallelize_1d(pool, fn, size_t(n_threads));
}

}  // namespace

std::vector<Target> AvailableTargets() {
  std::vector<Target> targets;
  for (int64_t bit : hwy::SupportedAndGeneratedTargets()) {
    targets.push_back({bit, hwy::TargetName(bit)});
  }
  // Highway's bits are lower for better x86 targets; best first.
  std::sort(targets.begin(), targets.end(),
            [](const Target& a, const Target& b) { return a.bit < b.bit; });
  return targets;
}

const Target* FindTarget(const std::vector<Target>& targets, const std::string& name) {
  for (const Target& t : targets) {
    if (Lower(t.name) == Lower(name)) return &t;
  }
  return nullptr;
}

void ForceTarget(const Target* target) {
  hwy::SetSupportedTargetsForTest(target ? target->bit : 0);
}

namespace {

// G operations per second of n_threads threads each running chains(iterations)
// for about `seconds` (ops_per_iteration: operations of one round, one
// thread); best of `repeats`.
double MeasurePeak(pthreadpool_t pool, int n_threads, double seconds, int repeats,
                   float (*chains)(int64_t), double ops_per_iteration) {
  // Calibrate on one thread: iterations for about `seconds` per thread.
  const int64_t probe = int64_t{1} << 16;
  chains(probe);  // warm-up: page-in, clocks up
  const double probe_s = std::max(TimeSeconds([&] { g_sink = chains(probe); }), 1e-7);
  const int64_t iterations = std::max<int64_t>(probe, int64_t(seconds / probe_s * probe));
  const double ops = ops_per_iteration * double(iterations) * double(n_threads);
  double best = 0.0;
  for (int r = 0; r < repeats; ++r) {
    const double s = TimeSeconds(
        [&] { OnEachThread(pool, n_threads, [&](size_t) { g_sink = chains(iterations); }); });
    best = std::max(best, ops / s * 1e-9);
  }
  return best;
}

}  // namespace

double MeasureFmaPeakGflops(pthreadpool_t pool, int n_threads, double seconds, int repeats) {
  return MeasurePeak(pool, n_threads, seconds, repeats, FmaChains,
                     2.0 * kFmaChains * double(FloatLanes()));
}

double MeasureBf16DotPeakGflops(pthreadpool_t pool, int n_threads, double seconds, int repeats) {
  if (!Bf16DotUsable()) return 0.0;
  return MeasurePeak(pool, n_threads, seconds, repeats, Bf16DotChains,
                     2.0 * kDotChains * kBf16DotMacs);
}

double MeasureInt8DotPeakGops(pthreadpool_t pool, int n_threads, double seconds, int repeats) {
  if (!Int8DotUsable()) return 0.0;
  return MeasurePeak(pool, n_threads, seconds, repeats, Int8DotChains,
                     2.0 * kDotChains * kInt8DotMacs);
}

BigBuffer::BigBuffer(size_t bytes) {
  const size_t rounded = (bytes + 4095) / 4096 * 4096;
  data_ = static_cast<float*>(std::aligned_alloc(4096, rounded));
  if (data_ == nullptr) return;
  n_floats_ = rounded / sizeof(float);
  std::fill(data_, data_ + n_floats_, 1.0f);  // commits every page before any timing
}

BigBuffer::~BigBuffer() { std::free(data_); }

double BigBuffer::MeasureReadGbps(pthreadpool_t pool, int n_threads, int repeats) const {
  // Slices are multiples of 64 floats (SumFloats' precondition); the tail is
  // at most 64 * n_threads floats, left out of the byte count.
  const size_t slice = n_floats_ / size_t(n_threads) / 64 * 64;
  const double bytes = double(slice) * n_threads * sizeof(float);
  auto read_all = [&] {
    OnEachThread(pool, n_threads, [&](size_t i) { g_sink = SumFloats(data_ + i * slice, slice); });
  };
  read_all();  // warm-up: TLB, clocks
  double best = 0.0;
  for (int r = 0; r < repeats; ++r) best = std::max(best, bytes / TimeSeconds(read_all) * 1e-9);
  return best;
}

void BigBuffer::Flush() const { g_sink = SumFloats(data_, n_floats_ / 64 * 64); }

}  // namespace relattn_bench
