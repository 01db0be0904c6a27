// Adds the position bias and applies the masks to the scores of one query
// row against a block of keys in lanes (decode; per-target code). Scores and
// biases are in log2 units.
#if defined(RELATTN_LIB_KERNELS_BIAS_ROW_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_BIAS_ROW_INL_H_
#undef RELATTN_LIB_KERNELS_BIAS_ROW_INL_H_
#else
#define RELATTN_LIB_KERNELS_BIAS_ROW_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "hwy/highway.h"
#include "lib/driver/alibi_anchor.h"
#include "lib/driver/plan.h"
#include "lib/driver/visibility.h"
#include "lib/kernels/bias_qlanes-inl.h"
#include "lib/kernels/pack-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Scalar form of BiasMaskRow for keys at arbitrary positions.
HWY_INLINE void BiasMaskRowScalar(const Plan& plan, const HeadBias& bias, int64_t p_q,
                                  int64_t anchor, int64_t j0, int64_t n_keys, bool partial,
                                  float* HWY_RESTRICT s) {
  for (int64_t j = 0; j < n_keys; ++j) {
    BiasMaskPair(plan, bias, anchor, p_q, plan.k_pos.At(j0 + j), partial, s + j);
  }
}

// Bias and masks of one row's scores s[0, kBlockKeys); keys past n_keys are
// hidden. Contiguous keys (k_first + j) take a vector form, others a scalar one.
// anchor: the row's AlibiRowAnchor.
HWY_INLINE void BiasMaskRow(const Plan& plan, const HeadBias& bias, int64_t p_q, int64_t anchor,
                            int64_t j0, int64_t n_keys, const PositionSpan& k_span, bool partial,
                            float* HWY_RESTRICT s) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  if (!k_span.contiguous) {
    BiasMaskRowScalar(plan, bias, p_q, anchor, j0, n_keys, partial, s);
  } else {
    const int64_t r0 = p_q - k_span.first;  // p_q - p_k of key 0
    if (bias.kind == BiasKind::kAlibi) {
      // Anchored distance along the keys: base - j, base + j, or |r0 - j| - nearest.
      const auto slope = hn::Set(df, bias.alibi_slope_log2);
      const bool one_side = bias.alibi_causal || r0 >= kBlockKeys - 1 || r0 <= 0;
      const float base =
          static_cast<float>(AlibiAnchoredDistance(bias.alibi_causal, anchor, p_q, k_span.first));
      const float step = bias.alibi_causal || r0 > 0 ? -1.0f : 1.0f;
      const auto vr0 = hn::Set(df, static_cast<float>(r0));
      const auto nearest = hn::Set(df, static_cast<float>(anchor));
      for (int64_t j = 0; j < kBlockKeys; j += n) {
        const auto jj = hn::Iota(df, static_cast<float>(j));
        const auto dist = one_side ? hn::MulAdd(hn::Set(df, step), jj, hn::Set(df, base))
                                   : hn::Sub(hn::Abs(hn::Sub(vr0, jj)), nearest);
        hn::Store(hn::NegMulAdd(slope, dist, hn::Load(df, s + j)), df, s + j);
      }
    } else if (bias.kind == BiasKind::kTable) {
      // Key j has r = (k_first - p_q) + j: index x0 - j in the reversed table,
      // whose kBlockKeys edge copies keep the whole window inside it.
      const int64_t edge = bias.table_radius + kTablePad + 1;
      const int64_t x0 = std::clamp(bias.table_radius + kTablePad + std::clamp(r0, -edge, edge),
                                    int64_t{kBlockKeys - 1}, bias.table_len - 1);
      const float* row = bias.table + x0;
      for (int64_t j = 0; j < n_keys; ++j) s[j] += row[-j];
    }
    if (partial) {
      for (int64_t j = 0; j < n_keys; ++j) {
        if (!PairVisible(plan.mask, p_q, k_span.first + j)) s[j] = -HUGE_VALF;
      }
    }
  }
  for (int64_t j = n_keys; j < kBlockKeys; ++j) s[j] = -HUGE_VALF;
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_BIAS_ROW_INL_H_
