// Online softmax over streamed key blocks and P.V accumulation, for a sub-tile
// whose lanes are queries (per-target code). A query's state: running max m
// (log2 units), running sum l, unnormalised output o. A query that has seen no
// visible key has m = -inf, l = 0, o = 0, and finalizes to zeros.
#if defined(RELATTN_LIB_KERNELS_ONLINE_SOFTMAX_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_ONLINE_SOFTMAX_INL_H_
#undef RELATTN_LIB_KERNELS_ONLINE_SOFTMAX_INL_H_
#else
#define RELATTN_LIB_KERNELS_ONLINE_SOFTMAX_INL_H_
#endif

#include <cmath>
#include <cstdint>

#include "hwy/highway.h"
#include "lib/kernels/exp2-inl.h"
#include "lib/kernels/pack-inl.h"
#include "lib/kernels/scores-inl.h"

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
// of the W lanes: updates max and sum and turns s into probabilities relative
// to the new max. Returns whether any lane's max grew; then alpha[W] holds
// the factor exp2(old - new) by which the lanes' output must be rescaled
// (AccumulatePV applies it). Lanes that see a non-finite value
// (PoisonedLanes; bad_keys bit j marks key j) get poison = 1 and that score
// counts as hidden, so the arithmetic of every lane stays finite.
HWY_INLINE bool SoftmaxUpdate(float* HWY_RESTRICT s, int64_t n_keys, uint64_t bad_keys,
                              float* HWY_RESTRICT max, float* HWY_RESTRICT sum,
                              float* HWY_RESTRICT poison, float* HWY_RESTRICT alpha) {
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
    return false;
  }
  // exp2(old - new): 1 where unchanged, 0 where old = -inf.
  const auto alpha0 = Exp2NonPositive(df, hn::Sub(old0, ref0));
  const auto alpha1 = Exp2NonPositive(df, hn::Sub(old1, ref1));
  hn::Store(hn::MulAdd(hn::Load(df, sum), alpha0, sum0), df, sum);
  hn::Store(hn::MulAdd(hn::Load(df, sum + n), alpha1, sum1), df, sum + n);
  hn::Store(alpha0, df, alpha);
  hn::Store(alpha1, df, alpha + n);
  return true;
}

// o_t[e][0, W) = o_t[e][0, W) * alpha[0, W) (alpha: nullptr = 1) + sum_{j <
// n_keys} v[j][e] * p[j][0, W) for output channels e0 <= e < e0 + kRows: the
// accumulators (2 * kRows vectors) stay in registers across the key loop;
// per key, 2 loads of p and kRows broadcasts of v feed 2 * kRows FMAs.
template <int64_t kRows>
HWY_INLINE void PVBlock(const float* HWY_RESTRICT p, int64_t n_keys, RowsF32 v, int64_t e0,
                        const float* HWY_RESTRICT alpha, float* HWY_RESTRICT o_t) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const int64_t w = 2 * n;
  using V = decltype(hn::Zero(df));
  V a0[kRows], a1[kRows];
  float* o = o_t + e0 * w;
#pragma GCC unroll 16
  for (int64_t r = 0; r < kRows; ++r) {
    a0[r] = hn::Load(df, o + r * w);
    a1[r] = hn::Load(df, o + r * w + n);
  }
  if (alpha) {
    const V alpha0 = hn::Load(df, alpha), alpha1 = hn::Load(df, alpha + n);
#pragma GCC unroll 16
    for (int64_t r = 0; r < kRows; ++r) {
      a0[r] = hn::Mul(a0[r], alpha0);
      a1[r] = hn::Mul(a1[r], alpha1);
    }
  }
  for (int64_t j = 0; j < n_keys; ++j) {
    const V p0 = hn::Load(df, p + j * w), p1 = hn::Load(df, p + j * w + n);
    const float* vj = v.rows + j * v.stride + e0;
#pragma GCC unroll 16
    for (int64_t r = 0; r < kRows; ++r) {
      const V b = hn::Set(df, vj[r]);
      a0[r] = hn::MulAdd(b, p0, a0[r]);
      a1[r] = hn::MulAdd(b, p1, a1[r]);
    }
  }
#pragma GCC unroll 16
  for (int64_t r = 0; r < kRows; ++r) {
    hn::Store(a0[r], df, o + r * w);
    hn::Store(a1[r], df, o + r * w + n);
  }
}

// o_t[e][0, W) = o_t[e][0, W) * alpha + sum_{j < n_keys} v[j][e] * p[j][0, W)
// for e < dv, W = 2 lanes (alpha: from SoftmaxUpdate, or nullptr when no
// lane's max grew). p: [n_keys][W]; v: rows of dv floats; o_t: [dv][W].
HWY_INLINE void AccumulatePV(const float* HWY_RESTRICT p, int64_t n_keys, RowsF32 v, int64_t dv,
                             const float* HWY_RESTRICT alpha, float* HWY_RESTRICT o_t) {
  int64_t e = 0;
  for (; e + kBlockRows <= dv; e += kBlockRows) PVBlock<kBlockRows>(p, n_keys, v, e, alpha, o_t);
  for (; e < dv; ++e) PVBlock<1>(p, n_keys, v, e, alpha, o_t);
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_ONLINE_SOFTMAX_INL_H_
