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

#include "hwy/highway.h"
#include "lib/kernels/pack-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// tanh(y) for |y| <= 9 as y P(y^2) / Q(y^2), P and Q of degree 4 with
// P(0) = Q(0) = 1, fitted for this library (relative minimax by Lawson's
// iterations on [0, 9]): relative error 2.1e-8 in exact arithmetic, within
// 5 ulp evaluated in f32 (tests/test_softcap_sinks.cc measures every target).
// Beyond |y| > 9, tanh(y) is +-1 in f32 (1 - tanh(9) = 3.0e-8 < 2^-25).
// 9 multiply-adds and a division: a third of an exp-based tanh's work.
inline constexpr float kTanhP[] = {1.0f, 1.338398127e-01f, 3.498997258e-03f, 2.066128172e-05f,
                                   1.341984767e-08f};
inline constexpr float kTanhQ[] = {1.0f, 4.671730275e-01f, 2.589021088e-02f, 3.291040293e-04f,
                                   7.804740095e-07f};
inline constexpr float kTanhSaturated = 9.0f;

// cap * tanh(x * inv_cap) of one vector: NaN stays NaN, +-inf gives +-cap.
template <class D, class V = hn::VFromD<D>>
HWY_INLINE V SoftcapVector(D d, V x, V cap, V inv_cap) {
  const V y = hn::Mul(x, inv_cap), y2 = hn::Mul(y, y);
  V p = hn::Set(d, kTanhP[4]), q = hn::Set(d, kTanhQ[4]);
  for (int i = 3; i >= 0; --i) {
    p = hn::MulAdd(p, y2, hn::Set(d, kTanhP[i]));
    q = hn::MulAdd(q, y2, hn::Set(d, kTanhQ[i]));
  }
  const V rational = hn::Div(hn::Mul(hn::Mul(y, cap), p), q);
  const auto saturated = hn::Gt(hn::Abs(y), hn::Set(d, kTanhSaturated));
  return hn::IfThenElse(saturated, hn::CopySign(cap, y), rational);
}

// s[i] = cap * tanh(s[i] * inv_cap) for i < n, n a multiple of Lanes(DF()).
// Called on content scores only, before the bias and the mask (-inf,
// hidden) are applied.
HWY_INLINE void SoftcapScores(float cap, float inv_cap, float* HWY_RESTRICT s, int64_t n) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const auto vcap = hn::Set(df, cap), vinv = hn::Set(df, inv_cap);
  for (int64_t i = 0; i < n; i += lanes) {
    hn::Store(SoftcapVector(df, hn::Load(df, s + i), vcap, vinv), df, s + i);
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_SOFTCAP_INL_H_
