// Vectorised 2^x for the online softmax (per-target code; include after
// hwy/highway.h under foreach_target).
#if defined(RELATTN_LIB_KERNELS_EXP2_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_EXP2_INL_H_
#undef RELATTN_LIB_KERNELS_EXP2_INL_H_
#else
#define RELATTN_LIB_KERNELS_EXP2_INL_H_
#endif

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// 2^x for x <= 0, including x = -inf.
// Range: x in [-126, 0] is computed; x < -126 (and -inf) returns 0 or a value
// below 2^-126, which the softmax treats as underflow (relative weight < 1e-38).
// Method: x = n + f, n = nearest integer, f in [-0.5, 0.5]; 2^f by its degree-7
// Taylor polynomial in f*ln2 (truncation error < 5.2e-9 relative), 2^n built
// in the exponent bits. Max error: 2 ulp relative on [-126, 0] (polynomial
// rounding in Horner's scheme dominates).
template <class D, class V = hn::VFromD<D>>
HWY_INLINE V Exp2NonPositive(D d, V x) {
  const hn::RebindToSigned<D> di;
  x = hn::Max(x, hn::Set(d, -127.0f));
  const auto n = hn::NearestInt(x);
  const V f = hn::Sub(x, hn::ConvertTo(d, n));
  V p = hn::Set(d, 1.525273380405984e-05f);
  p = hn::MulAdd(p, f, hn::Set(d, 1.5403530393381608e-04f));
  p = hn::MulAdd(p, f, hn::Set(d, 1.3333558146428443e-03f));
  p = hn::MulAdd(p, f, hn::Set(d, 9.618129107628477e-03f));
  p = hn::MulAdd(p, f, hn::Set(d, 5.550410866482158e-02f));
  p = hn::MulAdd(p, f, hn::Set(d, 2.402265069591007e-01f));
  p = hn::MulAdd(p, f, hn::Set(d, 6.931471805599453e-01f));
  p = hn::MulAdd(p, f, hn::Set(d, 1.0f));
  // n in [-127, 0]: biased exponent n + 127 in [0, 127]; 0 encodes +0.0.
  const auto scale = hn::BitCast(d, hn::ShiftLeft<23>(hn::Add(n, hn::Set(di, 127))));
  return hn::Mul(p, scale);
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_EXP2_INL_H_
