// Adds the position bias and applies the masks to one key row of a score
// sub-tile whose lanes are queries (per-target code). Scores and biases are in
// log2 units.
#if defined(RELATTN_LIB_KERNELS_BIAS_QLANES_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_BIAS_QLANES_INL_H_
#undef RELATTN_LIB_KERNELS_BIAS_QLANES_INL_H_
#else
#define RELATTN_LIB_KERNELS_BIAS_QLANES_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "hwy/highway.h"
#include "lib/driver/alibi_anchor.h"
#include "lib/driver/index_mask.h"
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
  const float* table;      // table schemes: the padded reversed table (FillBiasTable)
  int64_t table_radius;
  int64_t table_len;
};

// Index of offset r = p_k - p_q in the padded reversed table.
HWY_INLINE int64_t TableIndex(const HeadBias& bias, int64_t r) {
  return bias.table_radius + kTablePad - std::clamp(r, -bias.table_radius, bias.table_radius);
}

// The queries of one sub-tile: tokens [i0, i0 + rows), positions span.
// vector_alibi: contiguous queries and keys at start + j; then the visible
// keys of consecutive rows form ranges that move by one per row, the rows'
// ALiBi anchors differ by < kMaxSubTile, and the anchor of the first query
// serves every lane. Otherwise lane_anchors holds each lane's own, and, if
// the queries are contiguous and the anchors small, lane_anchors_f a float
// form the vector path takes (LaneAnchorsF).
struct SubTileQueries {
  int64_t i0, rows;
  PositionSpan span;
  bool vector_alibi;
  int64_t alibi_anchor;         // the first query's anchor (vector_alibi)
  const int64_t* lane_anchors;  // [rows] (!vector_alibi, ALiBi only)
  const float* lane_anchors_f;  // [w]; NaN in [0]: none (!vector_alibi, ALiBi only)
};

// Bound on the magnitudes the per-lane vector form adds and subtracts: below
// it every sum of two stays an exact integer in f32.
inline constexpr int64_t kExactLaneTerm = int64_t{1} << 22;

// Writes the float form of the lane anchors of contiguous queries from
// p_first: anchor - p_first in the causal form (so that anchor - p_k =
// f + (p_first - p_k)), anchor itself bidirectional (|p_q - p_k| - anchor);
// lanes past rows (up to the sub-tile's width w) 0. If a value reaches
// kExactLaneTerm, f[0] = NaN (none).
HWY_INLINE void LaneAnchorsF(bool causal_form, const int64_t* anchors, int64_t rows, int64_t w,
                             int64_t p_first, float* f) {
  for (int64_t i = 0; i < w; ++i) {
    const int64_t a = i < rows ? (causal_form ? anchors[i] - p_first : anchors[i]) : 0;
    if (a <= -kExactLaneTerm || a >= kExactLaneTerm) {
      f[0] = NAN;
      return;
    }
    f[i] = static_cast<float>(a);
  }
}

// Whether queries [i0, i0 + rows) at span take vector_alibi: contiguous, and
// the keys they can see at start + j, or (packed sequences) all of one
// segment id whose keys are one run at consecutive positions.
HWY_INLINE bool VectorAlibi(const Plan& plan, const PositionSpan& span, int64_t i0, int64_t rows) {
  if (!span.contiguous) return false;
  const IndexMaskRef& m = plan.index_mask;
  if (!m.on()) return !plan.k_pos.positions;
  if (m.allowed || !m.k_sorted || !m.k_runs_consecutive) return false;
  const SegmentRange ids = SegmentsOf(m.q_segments, i0, rows);
  return ids.min == ids.max;
}

// The scalar form of bias and mask, for one (query, key) pair: adds the
// bias to *s (ALiBi: anchored distance from the row's anchor; tables: the
// entry of p_k - p_q) and, if partial, hides the pair the masks hide. Both
// layouts take it where positions are not consecutive.
HWY_INLINE void BiasMaskPair(const Plan& plan, const HeadBias& bias, int64_t anchor, int64_t p_q,
                             int64_t p_k, bool partial, float* HWY_RESTRICT s) {
  if (bias.kind == BiasKind::kAlibi) {
    const int64_t dist = AlibiAnchoredDistance(bias.alibi_causal, anchor, p_q, p_k);
    *s -= bias.alibi_slope_log2 * static_cast<float>(dist);
  } else if (bias.kind == BiasKind::kTable) {
    *s += bias.table[TableIndex(bias, p_k - p_q)];
  }
  if (partial && !PairVisible(plan.mask, p_q, p_k)) *s = -HUGE_VALF;
}

// Scalar form for queries at arbitrary positions: lanes i < rows of s.
HWY_INLINE void BiasMaskQLanesScalar(const Plan& plan, const HeadBias& bias,
                                     const SubTileQueries& q, int64_t p_k, bool partial,
                                     float* HWY_RESTRICT s) {
  for (int64_t i = 0; i < q.rows; ++i) {
    const int64_t anchor = bias.kind == BiasKind::kAlibi ? q.lane_anchors[i] : 0;
    BiasMaskPair(plan, bias, anchor, plan.q_pos.At(q.i0 + i), p_k, partial, s + i);
  }
}

// Adds bias(p_q(lane), p_k) to the 2 vectors of scores s (lane = query) and,
// if partial, sets hidden lanes to -inf. Contiguous queries: lane i is at
// q.span.first + i.
HWY_INLINE void BiasMaskQLanes(const Plan& plan, const HeadBias& bias, const SubTileQueries& q,
                               int64_t p_k, bool partial, float* HWY_RESTRICT s) {
  const int64_t t = q.span.first - p_k;  // p_q - p_k of lane 0
  const bool lane_alibi = bias.kind == BiasKind::kAlibi && !q.vector_alibi;
  if (!q.span.contiguous || (lane_alibi && (std::isnan(q.lane_anchors_f[0]) ||
                                            t <= -kExactLaneTerm || t >= kExactLaneTerm))) {
    return BiasMaskQLanesScalar(plan, bias, q, p_k, partial, s);
  }
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const int64_t w = 2 * n;
  const auto lane0 = hn::Iota(df, 0.0f), lane1 = hn::Iota(df, static_cast<float>(n));
  auto s0 = hn::Load(df, s), s1 = hn::Load(df, s + n);
  if (lane_alibi) {
    // Each lane's own anchor, all terms exact: causal form f_i + t,
    // bidirectional |t + i| - f_i.
    const auto slope = hn::Set(df, bias.alibi_slope_log2);
    const auto vt = hn::Set(df, static_cast<float>(t));
    const auto f0 = hn::Load(df, q.lane_anchors_f), f1 = hn::Load(df, q.lane_anchors_f + n);
    const auto dist0 =
        bias.alibi_causal ? hn::Add(f0, vt) : hn::Sub(hn::Abs(hn::Add(vt, lane0)), f0);
    const auto dist1 =
        bias.alibi_causal ? hn::Add(f1, vt) : hn::Sub(hn::Abs(hn::Add(vt, lane1)), f1);
    s0 = hn::NegMulAdd(slope, dist0, s0);
    s1 = hn::NegMulAdd(slope, dist1, s1);
  } else if (bias.kind == BiasKind::kAlibi) {
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
    if (plan.mask.causal) lo = rel;
    if (plan.mask.window > 0) {
      const int64_t window = std::min<int64_t>(plan.mask.window, int64_t{1} << 41);
      hi = rel + window;
      if (!plan.mask.causal) lo = rel - window + 1;
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

#endif  // RELATTN_LIB_KERNELS_BIAS_QLANES_INL_H_
