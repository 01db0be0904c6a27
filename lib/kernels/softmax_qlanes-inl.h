// Online softmax over streamed key blocks for a sub-tile whose lanes are
// queries (per-target code). A query's state: running max m
// (log2 units), running sum l, unnormalised output o. A query that has seen no
// visible key has m = -inf, l = 0, o = 0, and finalizes to zeros.
#if defined(RELATTN_LIB_KERNELS_SOFTMAX_QLANES_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_SOFTMAX_QLANES_INL_H_
#undef RELATTN_LIB_KERNELS_SOFTMAX_QLANES_INL_H_
#else
#define RELATTN_LIB_KERNELS_SOFTMAX_QLANES_INL_H_
#endif

#include <cmath>
#include <cstdint>

#include "hwy/highway.h"
#include "lib/kernels/exp2-inl.h"
#include "lib/kernels/pack-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Lanes of a score vector that poison their query: NaN or +inf (from
// non-finite inputs or overflow), or any visible score (> -inf) of a key whose
// K or V row is non-finite (bad_key).
template <class V>
HWY_INLINE auto PoisonedLanes(V scores, bool bad_key) {
  const DF df;
  auto bad = hn::Or(hn::IsNaN(scores), hn::Eq(scores, hn::Set(df, HUGE_VALF)));
  if (bad_key) bad = hn::Or(bad, hn::Not(hn::Eq(scores, hn::Set(df, -HUGE_VALF))));
  return bad;
}

// Folds the scores s[n_keys][W] (log2 units, -inf = hidden) into the state
// of the W lanes: updates max and sum, rescales o_t[dv][W] where the max grew
// (skipped when no lane's max changed), and turns s into probabilities
// relative to the new max. Lanes that see a non-finite value (PoisonedLanes;
// bad_keys bit j marks key j) get poison = 1 and that score counts as hidden,
// so the arithmetic of every lane stays finite.
HWY_INLINE void SoftmaxQLanes(float* HWY_RESTRICT s, int64_t n_keys, uint64_t bad_keys,
                              float* HWY_RESTRICT max, float* HWY_RESTRICT sum,
                              float* HWY_RESTRICT poison, float* HWY_RESTRICT o_t, int64_t dv) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const int64_t w = 2 * n;
  const auto neg_inf = hn::Set(df, -HUGE_VALF);
  const auto old0 = hn::Load(df, max), old1 = hn::Load(df, max + n);
  auto new0 = old0, new1 = old1;
  auto poison0 = hn::Lt(hn::Zero(df), hn::Load(df, poison));
  auto poison1 = hn::Lt(hn::Zero(df), hn::Load(df, poison + n));
  for (int64_t j = 0; j < n_keys; ++j) {
    auto s0 = hn::Load(df, s + j * w), s1 = hn::Load(df, s + j * w + n);
    const bool bad_key = (bad_keys >> j) & 1;
    const auto bad0 = PoisonedLanes(s0, bad_key), bad1 = PoisonedLanes(s1, bad_key);
    if (!hn::AllFalse(df, hn::Or(bad0, bad1))) {
      poison0 = hn::Or(poison0, bad0);
      poison1 = hn::Or(poison1, bad1);
      s0 = hn::IfThenElse(bad0, neg_inf, s0);
      s1 = hn::IfThenElse(bad1, neg_inf, s1);
      hn::Store(s0, df, s + j * w);
      hn::Store(s1, df, s + j * w + n);
    }
    new0 = hn::Max(new0, s0);
    new1 = hn::Max(new1, s1);
  }
  hn::Store(hn::IfThenElseZero(poison0, hn::Set(df, 1.0f)), df, poison);
  hn::Store(hn::IfThenElseZero(poison1, hn::Set(df, 1.0f)), df, poison + n);
  // A lane that has seen no key keeps max -inf; subtracting 0 instead keeps
  // its probabilities 0 (exp2(-inf)) rather than NaN (-inf - -inf).
  const auto ref0 = hn::IfThenZeroElse(hn::Eq(new0, neg_inf), new0);
  const auto ref1 = hn::IfThenZeroElse(hn::Eq(new1, neg_inf), new1);
  auto sum0 = hn::Zero(df), sum1 = hn::Zero(df);
  for (int64_t j = 0; j < n_keys; ++j) {
    const auto p0 = Exp2NonPositive(df, hn::Sub(hn::Load(df, s + j * w), ref0));
    const auto p1 = Exp2NonPositive(df, hn::Sub(hn::Load(df, s + j * w + n), ref1));
    hn::Store(p0, df, s + j * w);
    hn::Store(p1, df, s + j * w + n);
    sum0 = hn::Add(sum0, p0);
    sum1 = hn::Add(sum1, p1);
  }
  hn::Store(new0, df, max);
  hn::Store(new1, df, max + n);
  if (hn::AllTrue(df, hn::Eq(new0, old0)) && hn::AllTrue(df, hn::Eq(new1, old1))) {
    hn::Store(hn::Add(hn::Load(df, sum), sum0), df, sum);
    hn::Store(hn::Add(hn::Load(df, sum + n), sum1), df, sum + n);
    return;
  }
  // exp2(old - new): 1 where unchanged, 0 where old = -inf.
  const auto alpha0 = Exp2NonPositive(df, hn::Sub(old0, ref0));
  const auto alpha1 = Exp2NonPositive(df, hn::Sub(old1, ref1));
  hn::Store(hn::MulAdd(hn::Load(df, sum), alpha0, sum0), df, sum);
  hn::Store(hn::MulAdd(hn::Load(df, sum + n), alpha1, sum1), df, sum + n);
  for (int64_t e = 0; e < dv; ++e) {
    hn::Store(hn::Mul(hn::Load(df, o_t + e * w), alpha0), df, o_t + e * w);
    hn::Store(hn::Mul(hn::Load(df, o_t + e * w + n), alpha1), df, o_t + e * w + n);
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_SOFTMAX_QLANES_INL_H_
