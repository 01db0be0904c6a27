// Adds the position bias and applies the masks to one row of a score tile
// (per-target code). Scores and biases are in log2 units.
#if defined(RELATTN_LIB_KERNELS_BIAS_TILE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_BIAS_TILE_INL_H_
#undef RELATTN_LIB_KERNELS_BIAS_TILE_INL_H_
#else
#define RELATTN_LIB_KERNELS_BIAS_TILE_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "hwy/highway.h"
#include "lib/driver/plan.h"
#include "lib/driver/visibility.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// The keys of one key block: j0 .. j0 + n_keys - 1 (n_keys <= kBlockKeys).
// contiguous: key j0 + j is at position k_first + j for every j < n_keys.
struct KeyBlock {
  int64_t j0, n_keys;
  int64_t k_first;
  bool contiguous;
  TileVisibility visibility;
};

// Per-head bias parameters, resolved once per work item.
struct HeadBias {
  BiasKind kind;
  bool alibi_causal;
  float alibi_slope_log2;     // ALiBi: m * log2(e)
  int64_t k_min, k_max;       // range of all key positions
  bool mask_causal;           // the masks, for the ALiBi anchor
  int64_t window;
  const float* table;         // table schemes: the padded table (FillBiasTable)
  int64_t table_radius;
  int64_t table_len;
};

// Index of offset r = p_k - p_q in the padded table of length
// 2 * table_radius + 1 + 2 * kBlockKeys, clamped into its constant edges.
HWY_INLINE int64_t TableIndex(const HeadBias& bias, int64_t r) {
  const int64_t edge = bias.table_radius + kBlockKeys;
  return std::clamp<int64_t>(r, -edge, edge) + bias.table_radius + kBlockKeys;
}

// ALiBi distance of key p_k from query p_q, minus a per-row anchor that the
// softmax ignores, chosen so that the distance is 0 where the row's bias is
// largest and the float bias keeps full precision near the row's dominant
// terms whatever the absolute offsets (10^12 behaves as 10):
//  - bidirectional, -m|r|: |r| - dist(p_q, [k_min, k_max]);
//  - causal form, -m r: anchor_key - p_k, anchor_key = the latest key position
//    the masks can let p_q see (p_q when causal, p_q + W - 1 with a window),
//    clamped into [k_min, k_max].
// Exact in int64: validation bounds every position difference and the key span.
HWY_INLINE int64_t ClampToKeys(const HeadBias& bias, int64_t p) {
  return std::clamp(p, bias.k_min, bias.k_max);
}

HWY_INLINE int64_t AlibiAnchorKey(const HeadBias& bias, int64_t p_q) {
  if (bias.mask_causal) return ClampToKeys(bias, p_q);
  if (bias.window > 0 && p_q <= bias.k_max - (bias.window - 1)) {
    return ClampToKeys(bias, p_q + (bias.window - 1));
  }
  return bias.k_max;
}

HWY_INLINE int64_t AlibiAnchoredDistance(const HeadBias& bias, int64_t p_q, int64_t p_k) {
  if (bias.alibi_causal) return AlibiAnchorKey(bias, p_q) - p_k;
  const int64_t r = p_q - p_k, nearest = p_q - ClampToKeys(bias, p_q);
  return (r < 0 ? -r : r) - (nearest < 0 ? -nearest : nearest);
}

// s[j] += bias(p_q, key j) for j < kBlockKeys; keys past n_keys are masked later.
HWY_INLINE void AddBiasRow(const HeadBias& bias, const PositionsRef& k_pos, const KeyBlock& kb,
                           int64_t p_q, float* HWY_RESTRICT s) {
  using DF = hn::CappedTag<float, kMaxLanes>;
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  if (bias.kind == BiasKind::kNone) return;
  if (!kb.contiguous) {
    for (int64_t j = 0; j < kb.n_keys; ++j) {
      const int64_t p_k = k_pos.At(kb.j0 + j);
      if (bias.kind == BiasKind::kAlibi) {
        s[j] -= bias.alibi_slope_log2 * static_cast<float>(AlibiAnchoredDistance(bias, p_q, p_k));
      } else {
        s[j] += bias.table[TableIndex(bias, p_k - p_q)];
      }
    }
    return;
  }
  if (bias.kind == BiasKind::kAlibi) {
    // Along the block the anchored distance is d0 - j (keys before or at the
    // query, and the causal form), d0 + j (keys after it), or |r0 - j| - anchor
    // when the block spans p_q (0 < r0 < kBlockKeys - 1, so all terms are small).
    const int64_t r0 = p_q - kb.k_first;
    const auto iota = hn::Iota(df, 0.0f);
    const auto slope = hn::Set(df, bias.alibi_slope_log2);
    const bool straddles = !bias.alibi_causal && r0 > 0 && r0 < kBlockKeys - 1;
    const float d0 = static_cast<float>(AlibiAnchoredDistance(bias, p_q, kb.k_first));
    const int64_t nearest = p_q - ClampToKeys(bias, p_q);
    const auto anchor = hn::Set(df, static_cast<float>(nearest < 0 ? -nearest : nearest));
    const float step = bias.alibi_causal || r0 >= kBlockKeys - 1 ? -1.0f : 1.0f;
    for (int64_t j = 0; j < kBlockKeys; j += lanes) {
      const auto jj = hn::Add(iota, hn::Set(df, static_cast<float>(j)));
      const auto dist =
          straddles ? hn::Sub(hn::Abs(hn::Sub(hn::Set(df, static_cast<float>(r0)), jj)), anchor)
                    : hn::MulAdd(hn::Set(df, step), jj, hn::Set(df, d0));
      hn::StoreU(hn::NegMulAdd(slope, dist, hn::LoadU(df, s + j)), df, s + j);
    }
    return;
  }
  // Table: r = p_k - p_q steps by one along the keys, so the row is one
  // contiguous slice of the padded table; past the edges it reads constants.
  const int64_t x0 = std::min(TableIndex(bias, kb.k_first - p_q), bias.table_len - kBlockKeys);
  const float* row = bias.table + std::max<int64_t>(x0, 0);
  for (int64_t j = 0; j < kBlockKeys; j += lanes) {
    hn::StoreU(hn::Add(hn::LoadU(df, s + j), hn::LoadU(df, row + j)), df, s + j);
  }
}

// Sets s[j] = -inf for hidden keys: j >= n_keys, and for kPartial blocks the
// pairs the causal / window masks hide.
HWY_INLINE void MaskRow(const Plan& plan, const PositionsRef& k_pos, const KeyBlock& kb,
                        int64_t p_q, float* HWY_RESTRICT s) {
  const float neg_inf = -HUGE_VALF;
  if (kb.visibility == TileVisibility::kPartial) {
    for (int64_t j = 0; j < kb.n_keys; ++j) {
      if (!PairVisible(plan, p_q, k_pos.At(kb.j0 + j))) s[j] = neg_inf;
    }
  }
  for (int64_t j = kb.n_keys; j < kBlockKeys; ++j) s[j] = neg_inf;
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_BIAS_TILE_INL_H_
