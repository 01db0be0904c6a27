// Adds the position bias and applies the masks to one key row of a score
// sub-tile whose lanes are queries (per-target code). Scores and biases are in
// log2 units.
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
#include "lib/kernels/pack-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Positions of tokens [t0, t0 + n): their range, and whether they are
// consecutive (token t0 + t at first + t).
struct PositionSpan {
  int64_t min, max, first;
  bool contiguous;
};

// Per-head bias parameters and the masks, resolved once per work item.
struct HeadBias {
  BiasKind kind;
  bool alibi_causal;
  float alibi_slope_log2;  // ALiBi: m * log2(e)
  int64_t k_min, k_max;    // range of all key positions
  bool mask_causal;
  int64_t window;
  const float* table;  // table schemes: the padded reversed table (FillBiasTable)
  int64_t table_radius;
  int64_t table_len;
};

// ALiBi precision: the bias only matters relative to the other keys of a row,
// so each row drops a constant (softmax is invariant to it), chosen so that
// the remaining distance is ~0 where the row's bias is largest. Then the float
// bias keeps full precision near the row's dominant terms whatever the
// absolute offsets (10^12 behaves as 10):
//  - bidirectional, -m|r|: |r| - dist(p_q, [k_min, k_max]);
//  - causal form, -m r: anchor_key - p_k, anchor_key = the latest key position
//    the masks can let p_q see (p_q when causal, p_q + W - 1 with a window),
//    clamped into [k_min, k_max].
// All in exact int64: validation bounds every position difference and the
// key span.
HWY_INLINE int64_t ClampToKeys(const HeadBias& bias, int64_t p) {
  return std::clamp(p, bias.k_min, bias.k_max);
}

HWY_INLINE int64_t AlibiAnchorKey(const HeadBias& bias, int64_t p_q) {
  if (bias.mask_causal) return ClampToKeys(bias, p_q);
  int64_t reach;  // p_q + W - 1: beyond k_max (or int64) leaves k_max
  if (bias.window > 0 && !__builtin_add_overflow(p_q, bias.window - 1, &reach) &&
      reach <= bias.k_max) {
    return ClampToKeys(bias, reach);
  }
  return bias.k_max;
}

HWY_INLINE int64_t AlibiNearest(const HeadBias& bias, int64_t p_q) {
  const int64_t nearest = p_q - ClampToKeys(bias, p_q);
  return nearest < 0 ? -nearest : nearest;
}

HWY_INLINE int64_t AlibiAnchoredDistance(const HeadBias& bias, int64_t p_q, int64_t p_k) {
  if (bias.alibi_causal) return AlibiAnchorKey(bias, p_q) - p_k;
  const int64_t r = p_q - p_k;
  return (r < 0 ? -r : r) - AlibiNearest(bias, p_q);
}

// Index of offset r = p_k - p_q in the padded reversed table.
HWY_INLINE int64_t TableIndex(const HeadBias& bias, int64_t r) {
  return bias.table_radius + kTablePad - std::clamp(r, -bias.table_radius, bias.table_radius);
}

// The queries of one sub-tile: tokens [i0, i0 + rows), positions span.
// For contiguous positions the ALiBi anchor of the first query serves the
// whole sub-tile (rows differ by < kMaxSubTile: precision is unchanged).
struct SubTileQueries {
  int64_t i0, rows;
  PositionSpan span;
  int64_t alibi_anchor;  // anchor key (causal form) or nearest distance (bidirectional)
};

HWY_INLINE SubTileQueries MakeSubTileQueries(const HeadBias& bias, int64_t i0, int64_t rows,
                                             const PositionSpan& span) {
  const int64_t anchor = bias.kind != BiasKind::kAlibi ? 0
                         : bias.alibi_causal           ? AlibiAnchorKey(bias, span.first)
                                                       : AlibiNearest(bias, span.first);
  return {i0, rows, span, anchor};
}

// Scalar form for queries at arbitrary positions: lanes i < rows of s.
HWY_INLINE void BiasMaskRowScalar(const Plan& plan, const HeadBias& bias,
                                  const SubTileQueries& q, int64_t p_k, bool partial,
                                  float* HWY_RESTRICT s) {
  for (int64_t i = 0; i < q.rows; ++i) {
    const int64_t p_q = plan.q_pos.At(q.i0 + i);
    if (bias.kind == BiasKind::kAlibi) {
      s[i] -= bias.alibi_slope_log2 * static_cast<float>(AlibiAnchoredDistance(bias, p_q, p_k));
    } else if (bias.kind == BiasKind::kTable) {
      s[i] += bias.table[TableIndex(bias, p_k - p_q)];
    }
    if (partial && !PairVisible(plan, p_q, p_k)) s[i] = -HUGE_VALF;
  }
}

// Adds bias(p_q(lane), p_k) to the 2 vectors of scores s (lane = query) and,
// if partial, sets hidden lanes to -inf. Contiguous queries: lane i is at
// q.span.first + i.
HWY_INLINE void BiasMaskRow(const Plan& plan, const HeadBias& bias, const SubTileQueries& q,
                            int64_t p_k, bool partial, float* HWY_RESTRICT s) {
  if (!q.span.contiguous) return BiasMaskRowScalar(plan, bias, q, p_k, partial, s);
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const int64_t w = 2 * n;
  const auto lane0 = hn::Iota(df, 0.0f), lane1 = hn::Iota(df, static_cast<float>(n));
  auto s0 = hn::Load(df, s), s1 = hn::Load(df, s + n);
  const int64_t t = q.span.first - p_k;  // p_q - p_k of lane 0
  if (bias.kind == BiasKind::kAlibi) {
    const auto slope = hn::Set(df, bias.alibi_slope_log2);
    hn::Vec<DF> dist0, dist1;
    if (bias.alibi_causal) {
      dist0 = dist1 = hn::Set(df, static_cast<float>(q.alibi_anchor - p_k));
    } else if (t >= 0 || t <= -(w - 1)) {
      // One side of the key: |r| - anchor = base +- lane, base exact and small.
      const float sign = t >= 0 ? 1.0f : -1.0f;
      const auto base = hn::Set(df, static_cast<float>((t >= 0 ? t : -t) - q.alibi_anchor));
      dist0 = hn::MulAdd(hn::Set(df, sign), lane0, base);
      dist1 = hn::MulAdd(hn::Set(df, sign), lane1, base);
    } else {  // the key lies among the queries: |t| < w, all terms small
      const auto vt = hn::Set(df, static_cast<float>(t));
      const auto anchor = hn::Set(df, static_cast<float>(q.alibi_anchor));
      dist0 = hn::Sub(hn::Abs(hn::Add(vt, lane0)), anchor);
      dist1 = hn::Sub(hn::Abs(hn::Add(vt, lane1)), anchor);
    }
    s0 = hn::NegMulAdd(slope, dist0, s0);
    s1 = hn::NegMulAdd(slope, dist1, s1);
  } else if (bias.kind == BiasKind::kTable) {
    // Lane i has r = (p_k - first) - i, at index x0 + i; outside the table's
    // range the clamped window reads its constant edges.
    const int64_t edge = bias.table_radius + kTablePad + 1;
    const int64_t x0 = bias.table_radius + kTablePad - std::clamp(-t, -edge, edge);
    const float* row = bias.table + std::clamp<int64_t>(x0, 0, bias.table_len - w);
    s0 = hn::Add(s0, hn::LoadU(df, row));
    s1 = hn::Add(s1, hn::LoadU(df, row + n));
  }
  if (partial) {
    // Visible lanes form one range [lo, hi) of i: causal needs p_q >= p_k
    // (i >= -t); a window W needs p_q - p_k < W (i < W - t), and without
    // causal also p_k - p_q < W (i > -t - W).
    const int64_t rel = std::clamp<int64_t>(-t, -(int64_t{1} << 40), int64_t{1} << 40);
    int64_t lo = INT64_MIN / 2, hi = INT64_MAX / 2;
    if (plan.causal) lo = rel;
    if (plan.window > 0) {
      const int64_t window = std::min<int64_t>(plan.window, int64_t{1} << 41);
      hi = rel + window;
      if (!plan.causal) lo = rel - window + 1;
    }
    const auto vlo = hn::Set(df, static_cast<float>(std::clamp<int64_t>(lo, -1, w + 1)));
    const auto vhi = hn::Set(df, static_cast<float>(std::clamp<int64_t>(hi, -1, w + 1)));
    const auto neg_inf = hn::Set(df, -HUGE_VALF);
    s0 = hn::IfThenElse(hn::And(hn::Ge(lane0, vlo), hn::Lt(lane0, vhi)), s0, neg_inf);
    s1 = hn::IfThenElse(hn::And(hn::Ge(lane1, vlo), hn::Lt(lane1, vhi)), s1, neg_inf);
  }
  hn::Store(s0, df, s);
  hn::Store(s1, df, s + n);
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_BIAS_TILE_INL_H_
