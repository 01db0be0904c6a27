// Per-target FMA-throughput and read-bandwidth loops (see limits_kernels.h).
#include "bench/limits_kernels.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "bench/limits_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace relattn_bench {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Throughput, not latency: Zen4/Zen5 issue 2 FMAs per cycle with a 4-cycle
// latency, so 8 chains in flight saturate both pipes; 12 leave margin for
// other cores' schedules and still fit in 16 (AVX2) or 32 (AVX-512) registers
// next to the two constants. acc converges to c / (1 - m): no denormals, no
// overflow, however long the loop.
HWY_NOINLINE float FmaChainsT(int64_t iterations) {
  const hn::ScalableTag<float> d;
  const auto m = hn::Set(d, 0.999f);
  const auto c = hn::Set(d, 0.001f);
  auto a0 = hn::Set(d, 0.0f), a1 = hn::Set(d, 0.1f), a2 = hn::Set(d, 0.2f);
  auto a3 = hn::Set(d, 0.3f), a4 = hn::Set(d, 0.4f), a5 = hn::Set(d, 0.5f);
  auto a6 = hn::Set(d, 0.6f), a7 = hn::Set(d, 0.7f), a8 = hn::Set(d, 0.8f);
  auto a9 = hn::Set(d, 0.9f), a10 = hn::Set(d, 1.0f), a11 = hn::Set(d, 1.1f);
  static_assert(kFmaChains == 12, "one accumulator per chain below");
  for (int64_t i = 0; i < iterations; ++i) {
    a0 = hn::MulAdd(a0, m, c);
    a1 = hn::MulAdd(a1, m, c);
    a2 = hn::MulAdd(a2, m, c);
    a3 = hn::MulAdd(a3, m, c);
    a4 = hn::MulAdd(a4, m, c);
    a5 = hn::MulAdd(a5, m, c);
    a6 = hn::MulAdd(a6, m, c);
    a7 = hn::MulAdd(a7, m, c);
    a8 = hn::MulAdd(a8, m, c);
    a9 = hn::MulAdd(a9, m, c);
    a10 = hn::MulAdd(a10, m, c);
    a11 = hn::MulAdd(a11, m, c);
  }
  const auto sum = hn::Add(
      hn::Add(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)), hn::Add(hn::Add(a4, a5), hn::Add(a6, a7))),
      hn::Add(hn::Add(a8, a9), hn::Add(a10, a11)));
  return hn::GetLane(hn::SumOfLanes(d, sum));
}

size_t FloatLanesT() { return hn::Lanes(hn::ScalableTag<float>()); }

// Four independent adds per round keep several loads in flight; the loop is
// bound by memory, not by the adds.
HWY_NOINLINE float SumFloatsT(const float* HWY_RESTRICT data, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  auto s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  for (size_t i = 0; i + 4 * lanes <= n; i += 4 * lanes) {
    s0 = hn::Add(s0, hn::Load(d, data + i));
    s1 = hn::Add(s1, hn::Load(d, data + i + lanes));
    s2 = hn::Add(s2, hn::Load(d, data + i + 2 * lanes));
    s3 = hn::Add(s3, hn::Load(d, data + i + 3 * lanes));
  }
  return hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
}

const char* TargetNameT() { return hwy::TargetName(HWY_TARGET); }

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn_bench
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace relattn_bench {

HWY_EXPORT(FmaChainsT);
HWY_EXPORT(FloatLanesT);
HWY_EXPORT(SumFloatsT);
HWY_EXPORT(TargetNameT);

float FmaChains(int64_t iterations) { return HWY_DYNAMIC_DISPATCH(FmaChainsT)(iterations); }
size_t FloatLanes() { return HWY_DYNAMIC_DISPATCH(FloatLanesT)(); }
float SumFloats(const float* data, size_t n) { return HWY_DYNAMIC_DISPATCH(SumFloatsT)(data, n); }
const char* LimitsTargetName() { return HWY_DYNAMIC_DISPATCH(TargetNameT)(); }

}  // namespace relattn_bench
#endif  // HWY_ONCE
