// Logit soft-capping of content scores (relattn_attention_desc.softcap),
// per-target code: x -> cap * tanh(x / cap), scores in log2 units (the cap
// too: softcap * log2(e), Plan::softcap_log2).
#if defined(RELATTN_LIB_KERNELS_SOFTCAP_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_SOFTCAP_INL_H_
#undef RELATTN_LIB_KERNELS_SOFTCAP_INL_H_
#else
#define RELATTN_LIB_KERNELS_SOFTCAP_INL_H_
#endif

#include <cstdint>

#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "lib/kernels/pack-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// s[i] = cap * tanh(s[i] * inv_cap) for i < n, n a multiple of Lanes(DF()).
// Highway's Tanh: within 4 ulp on all of f32 (tests/test_softcap.cc measures
// each target); NaN stays NaN, +-inf gives +-cap. Called on content scores
// only, before the bias and the mask (-inf, hidden) are applied.
HWY_INLINE void SoftcapScores(float cap, float inv_cap, float* HWY_RESTRICT s, int64_t n) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const auto vcap = hn::Set(df, cap), vinv = hn::Set(df, inv_cap);
  for (int64_t i = 0; i < n; i += lanes) {
    const auto t = hn::Tanh(df, hn::Mul(hn::Load(df, s + i), vinv));
    hn::Store(hn::Mul(t, vcap), df, s + i);
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_SOFTCAP_INL_H_
