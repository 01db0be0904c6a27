// Online softmax of one query row over a block of keys in lanes (decode):
// the row's state is its running max (log2 units), sum and unnormalised
// output row (per-target code).
#if defined(RELATTN_LIB_KERNELS_SOFTMAX_ROWS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_SOFTMAX_ROWS_INL_H_
#undef RELATTN_LIB_KERNELS_SOFTMAX_ROWS_INL_H_
#else
#define RELATTN_LIB_KERNELS_SOFTMAX_ROWS_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "hwy/highway.h"
#include "lib/driver/plan.h"
#include "lib/kernels/exp2-inl.h"
#include "lib/kernels/pack-inl.h"
#include "lib/kernels/softmax_qlanes-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Marks the row poisoned if a score is NaN or +inf (non-finite inputs or
// overflow) or a visible score (> -inf) belongs to a key with a non-finite K
// or V row (bad_keys bit j); those scores then count as hidden.
HWY_INLINE void PoisonRow(float* HWY_RESTRICT s, int64_t n_keys, uint64_t bad_keys,
                          float* HWY_RESTRICT poison) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  bool any = bad_keys != 0;
  for (int64_t j = 0; j < kBlockKeys && !any; j += n) {
    any = !hn::AllFalse(df, PoisonedLanes(hn::Load(df, s + j), false));
  }
  if (!any) return;
  for (int64_t j = 0; j < n_keys; ++j) {
    const bool bad_key = (bad_keys >> j) & 1;
    if (std::isnan(s[j]) || s[j] == HUGE_VALF || (bad_key && s[j] != -HUGE_VALF)) {
      *poison = 1.0f;
      s[j] = -HUGE_VALF;
    }
  }
}

// Online softmax of one row over the block (keys in lanes); rescales o_row
// when the max grows. Returns false if the row has still seen no key.
HWY_INLINE bool SoftmaxRow(float* HWY_RESTRICT s, float* HWY_RESTRICT max, float* HWY_RESTRICT sum,
                           float* HWY_RESTRICT o_row, int64_t dv_pad) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  auto vmax = hn::Set(df, -HUGE_VALF);
  for (int64_t j = 0; j < kBlockKeys; j += n) vmax = hn::Max(vmax, hn::Load(df, s + j));
  const float new_max = std::max(hn::GetLane(hn::MaxOfLanes(df, vmax)), *max);
  if (new_max == -HUGE_VALF) return false;
  if (new_max > *max) {
    const float alpha = std::exp2(*max - new_max);  // 0 when *max = -inf
    *sum *= alpha;
    const auto valpha = hn::Set(df, alpha);
    for (int64_t e = 0; e < dv_pad; e += n) {
      hn::Store(hn::Mul(hn::Load(df, o_row + e), valpha), df, o_row + e);
    }
    *max = new_max;
  }
  const auto vref = hn::Set(df, new_max);
  auto vsum = hn::Zero(df);
  for (int64_t j = 0; j < kBlockKeys; j += n) {
    const auto p = Exp2NonPositive(df, hn::Sub(hn::Load(df, s + j), vref));
    vsum = hn::Add(vsum, p);
    hn::Store(p, df, s + j);
  }
  *sum += hn::GetLane(hn::SumOfLanes(df, vsum));
  return true;
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_SOFTMAX_ROWS_INL_H_
