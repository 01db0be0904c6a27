// The fused pipeline for a few queries (decode): keys stream one row at a time
// and each query row takes a dot product with it, so a vector lane is never
// idle for lack of queries (per-target code). Work item = one KV head with up
// to kMaxHeadsPerItem of its query heads and all n_q <= kDecodeMaxQueries
// queries; K and V are read once per work item.
#if defined(RELATTN_LIB_KERNELS_DECODE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_DECODE_INL_H_
#undef RELATTN_LIB_KERNELS_DECODE_INL_H_
#else
#define RELATTN_LIB_KERNELS_DECODE_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "hwy/highway.h"
#include "lib/driver/plan.h"
#include "lib/driver/visibility.h"
#include "lib/kernels/bias_tile-inl.h"
#include "lib/kernels/exp2-inl.h"
#include "lib/kernels/pack-inl.h"
#include "lib/kernels/worker-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Query rows of a decode work item: row r = slot * n_q + query, where slot g
// is query head head0 + g. Workspace regions as WorkspaceLayout's decode view.
struct DecodeRows {
  int32_t head0, n_slots;
  int64_t n_rows;
  float *q, *o, *max, *sum, *s;  // q [rows][d_pad], o [rows][dv_pad], s [rows][kBlockKeys]
};

// s[r][j] for keys j < n_keys: one converted key row at a time, a dot product
// per query row (vectors along the head dim, padded with zeros to d_pad).
HWY_INLINE void DecodeScores(const Plan& plan, const DecodeRows& rows, int32_t kv_head,
                             int64_t j0, int64_t n_keys, float* HWY_RESTRICT k_row) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t j = 0; j < n_keys; ++j) {
    const int64_t offset = (j0 + j) * plan.k.token_stride + kv_head * plan.k.head_stride;
    ConvertRow(plan.k.data, plan.k.dtype, offset, plan.d, 1.0f, k_row);
    for (int64_t r = 0; r < rows.n_rows; ++r) {
      const float* q = rows.q + r * plan.d_pad;
      auto a0 = hn::Zero(df), a1 = hn::Zero(df);
      int64_t e = 0;
      for (; e + 2 * n <= plan.d_pad; e += 2 * n) {
        a0 = hn::MulAdd(hn::Load(df, q + e), hn::Load(df, k_row + e), a0);
        a1 = hn::MulAdd(hn::Load(df, q + e + n), hn::Load(df, k_row + e + n), a1);
      }
      for (; e < plan.d_pad; e += n) {
        a0 = hn::MulAdd(hn::Load(df, q + e), hn::Load(df, k_row + e), a0);
      }
      rows.s[r * kBlockKeys + j] = hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, a1)));
    }
  }
}

// Bias and masks of row r's scores, one key at a time.
HWY_INLINE void DecodeBiasMask(const Plan& plan, const HeadBias& bias, int64_t p_q, int64_t j0,
                               int64_t n_keys, bool partial, float* HWY_RESTRICT s) {
  for (int64_t j = 0; j < n_keys; ++j) {
    const int64_t p_k = plan.k_pos.At(j0 + j);
    if (bias.kind == BiasKind::kAlibi) {
      s[j] -= bias.alibi_slope_log2 * static_cast<float>(AlibiAnchoredDistance(bias, p_q, p_k));
    } else if (bias.kind == BiasKind::kTable) {
      s[j] += bias.table[TableIndex(bias, p_k - p_q)];
    }
    if (partial && !PairVisible(plan, p_q, p_k)) s[j] = -HUGE_VALF;
  }
  for (int64_t j = n_keys; j < kBlockKeys; ++j) s[j] = -HUGE_VALF;
}

// Online softmax of one row over the block (keys in lanes); rescales o_row
// when the max grows. Returns false if the row has still seen no key.
HWY_INLINE bool DecodeSoftmaxRow(float* HWY_RESTRICT s, float* HWY_RESTRICT max,
                                 float* HWY_RESTRICT sum, float* HWY_RESTRICT o_row,
                                 int64_t dv_pad) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  auto vmax = hn::Set(df, -HUGE_VALF);
  for (int64_t j = 0; j < kBlockKeys; j += n) vmax = hn::Max(vmax, hn::Load(df, s + j));
  const float block_max = hn::GetLane(hn::MaxOfLanes(df, vmax));
  const float new_max = std::max(block_max, *max);
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

// o[r] += sum_j p[r][j] * v_j over the rows that saw keys, one converted
// value row at a time.
HWY_INLINE void DecodePV(const Plan& plan, const DecodeRows& rows, const bool* active,
                         int32_t kv_head, int64_t j0, int64_t n_keys, float* HWY_RESTRICT v_row) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t j = 0; j < n_keys; ++j) {
    const int64_t offset = (j0 + j) * plan.v.token_stride + kv_head * plan.v.head_stride;
    ConvertRow(plan.v.data, plan.v.dtype, offset, plan.dv, 1.0f, v_row);
    for (int64_t r = 0; r < rows.n_rows; ++r) {
      if (!active[r]) continue;
      const auto p = hn::Set(df, rows.s[r * kBlockKeys + j]);
      float* o = rows.o + r * plan.dv_pad;
      for (int64_t e = 0; e < plan.dv_pad; e += n) {
        hn::Store(hn::MulAdd(p, hn::Load(df, v_row + e), hn::Load(df, o + e)), df, o + e);
      }
    }
  }
}

HWY_INLINE void DecodeWorkItem(const Plan& plan, int64_t item, Worker& worker) {
  const DecodeLayout& l = plan.decode_ws;
  float* ws = worker.ws;
  const int32_t kv_head = static_cast<int32_t>(item / plan.head_batches);
  const int32_t head0 = kv_head * plan.group + static_cast<int32_t>(item % plan.head_batches) *
                                                   plan.heads_per_item;
  const int32_t n_slots = std::min(plan.heads_per_item, (kv_head + 1) * plan.group - head0);
  const DecodeRows rows{head0,         n_slots,         n_slots * plan.n_q,
                        ws + l.q_rows, ws + l.o_rows,   ws + l.row_max,
                        ws + l.row_sum, ws + l.s_rows};
  HeadBias biases[kMaxHeadsPerItem];
  for (int32_t g = 0; g < n_slots; ++g) biases[g] = BiasOfHead(plan, head0 + g, g, worker);
  std::memset(rows.q, 0, sizeof(float) * rows.n_rows * plan.d_pad);
  std::memset(rows.o, 0, sizeof(float) * rows.n_rows * plan.dv_pad);
  for (int64_t r = 0; r < rows.n_rows; ++r) {
    const int64_t offset = (r % plan.n_q) * plan.q.token_stride +
                           (head0 + r / plan.n_q) * plan.q.head_stride;
    ConvertRow(plan.q.data, plan.q.dtype, offset, plan.d, plan.scale_log2,
               rows.q + r * plan.d_pad);
    rows.max[r] = -HUGE_VALF;
    rows.sum[r] = 0.0f;
  }
  // The row buffers hold converted key / value rows, zero beyond d / dv.
  float* k_row = ws + l.k_row;
  float* v_row = ws + l.v_row;
  std::memset(k_row, 0, sizeof(float) * plan.d_pad);
  std::memset(v_row, 0, sizeof(float) * plan.dv_pad);

  const PositionSpan q_span = SpanOf(plan.q_pos, 0, plan.n_q);
  bool active[kMaxHeadsPerItem * kDecodeMaxQueries];
  for (int64_t j0 = 0; j0 < plan.n_valid_kv; j0 += kBlockKeys) {
    const int64_t n_keys = std::min(kBlockKeys, plan.n_valid_kv - j0);
    const PositionSpan k_span = SpanOf(plan.k_pos, j0, n_keys);
    const TileVisibility visibility =
        ClassifyTile(plan, q_span.min, q_span.max, k_span.min, k_span.max);
    if (visibility == TileVisibility::kHidden) {
      if (!plan.k_pos.positions && plan.causal && k_span.min > q_span.max) break;
      continue;
    }
    DecodeScores(plan, rows, kv_head, j0, n_keys, k_row);
    for (int64_t r = 0; r < rows.n_rows; ++r) {
      float* s = rows.s + r * kBlockKeys;
      DecodeBiasMask(plan, biases[r / plan.n_q], plan.q_pos.At(r % plan.n_q), j0, n_keys,
                     visibility == TileVisibility::kPartial, s);
      active[r] = DecodeSoftmaxRow(s, &rows.max[r], &rows.sum[r], rows.o + r * plan.dv_pad,
                                   plan.dv_pad);
    }
    DecodePV(plan, rows, active, kv_head, j0, n_keys, v_row);
  }

  for (int64_t r = 0; r < rows.n_rows; ++r) {
    const float inv_sum = rows.sum[r] > 0.0f ? 1.0f / rows.sum[r] : 0.0f;
    const int64_t offset = (r % plan.n_q) * plan.o_token_stride +
                           (head0 + r / plan.n_q) * plan.o_head_stride;
    StoreRow(rows.o + r * plan.dv_pad, plan.dv, inv_sum, plan.o, plan.o_dtype, offset);
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_DECODE_INL_H_
