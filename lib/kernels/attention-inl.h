// The fused attention pipeline for one work item (one head x one block of
// queries), per target: pack Q -> for each visible key block: pack K, V ->
// scores -> + bias -> mask -> online softmax -> P.V -> finalize.
#if defined(RELATTN_LIB_KERNELS_ATTENTION_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_ATTENTION_INL_H_
#undef RELATTN_LIB_KERNELS_ATTENTION_INL_H_
#else
#define RELATTN_LIB_KERNELS_ATTENTION_INL_H_
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "hwy/highway.h"
#include "lib/driver/plan.h"
#include "lib/driver/visibility.h"
#include "lib/kernels/bias_tile-inl.h"
#include "lib/kernels/online_softmax-inl.h"
#include "lib/kernels/pack-inl.h"
#include "lib/kernels/scores-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {

// Positions of tokens [t0, t0 + n): their range, and whether they are
// consecutive (t0 + t at first + t).
struct PositionSpan {
  int64_t min, max, first;
  bool contiguous;
};

HWY_INLINE PositionSpan SpanOf(const PositionsRef& pos, int64_t t0, int64_t n) {
  if (!pos.positions) return {pos.start + t0, pos.start + t0 + n - 1, pos.start + t0, true};
  PositionSpan span{pos.positions[t0], pos.positions[t0], pos.positions[t0], true};
  for (int64_t t = 1; t < n; ++t) {
    const int64_t p = pos.positions[t0 + t];
    span.min = std::min(span.min, p);
    span.max = std::max(span.max, p);
    // p > first, so the unsigned difference is exact even where p - first
    // would overflow int64.
    span.contiguous = span.contiguous && p > span.first &&
                      static_cast<uint64_t>(p) - static_cast<uint64_t>(span.first) ==
                          static_cast<uint64_t>(t);
  }
  return span;
}

// The worker's scratch regions (WorkspaceLayout offsets applied).
struct WorkerTiles {
  float *q, *kt, *v, *s, *o, *max, *sum, *table, *k_row;
  int32_t table_head;  // head whose bias table `table` holds; -1: none
};

HWY_INLINE WorkerTiles TilesOf(const Plan& plan, float* ws) {
  const WorkspaceLayout& l = plan.ws;
  return {ws + l.q_tile,  ws + l.kt_tile,    ws + l.v_tile, ws + l.s_tile, ws + l.o_acc,
          ws + l.row_max, ws + l.row_sum, ws + l.bias_table, ws + l.k_row, -1};
}

HWY_INLINE HeadBias BiasOfHead(const Plan& plan, int32_t h, WorkerTiles& tiles) {
  HeadBias bias{plan.bias_kind, false,       0.0f,        plan.k_min,       plan.k_max,
                plan.causal,     plan.window, tiles.table, plan.table_radius, plan.table_len};
  if (plan.bias_kind == BiasKind::kAlibi) {
    bias.alibi_causal = plan.desc->bias.alibi.causal != 0;
    bias.alibi_slope_log2 = AlibiSlopeLog2(plan, h);
  } else if (plan.bias_kind == BiasKind::kTable && tiles.table_head != h) {
    FillBiasTable(plan, h, tiles.table);
    tiles.table_head = h;
  }
  return bias;
}

HWY_INLINE void AttendWorkItem(const Plan& plan, int64_t item, WorkerTiles& tiles) {
  const int32_t h = static_cast<int32_t>(item % plan.n_heads);
  // Latest query blocks first: under a causal mask they see the most keys.
  const int64_t i0 = (plan.n_q_blocks - 1 - item / plan.n_heads) * kBlockQueries;
  const int64_t rows = std::min(kBlockQueries, plan.n_q - i0);
  const int32_t kv_head = h / plan.group;
  const HeadBias bias = BiasOfHead(plan, h, tiles);

  PackQueries(plan, h, i0, rows, tiles.q);
  const PositionSpan q_span = SpanOf(plan.q_pos, i0, rows);
  for (int64_t r = 0; r < rows; ++r) {
    tiles.max[r] = -HUGE_VALF;
    tiles.sum[r] = 0.0f;
  }
  std::memset(tiles.o, 0, sizeof(float) * kBlockQueries * plan.dv_pad);

  for (int64_t j0 = 0; j0 < plan.n_valid_kv; j0 += kBlockKeys) {
    const int64_t n_keys = std::min(kBlockKeys, plan.n_valid_kv - j0);
    const PositionSpan k_span = SpanOf(plan.k_pos, j0, n_keys);
    const KeyBlock kb{j0, n_keys, k_span.first, k_span.contiguous,
                      ClassifyTile(plan, q_span.min, q_span.max, k_span.min, k_span.max)};
    if (kb.visibility == TileVisibility::kHidden) {
      // Keys at start + j only move away once they pass the last query.
      if (!plan.k_pos.positions && plan.causal && k_span.min > q_span.max) break;
      continue;
    }
    PackKeysTransposed(plan, kv_head, j0, n_keys, tiles.k_row, tiles.kt);
    PackValues(plan, kv_head, j0, n_keys, tiles.v);
    TileScores(tiles.q, plan.d_pad, tiles.kt, plan.d, RoundUp(rows, 4), tiles.s);
    for (int64_t r = 0; r < rows; ++r) {
      float* s_row = tiles.s + r * kBlockKeys;
      const int64_t p_q = plan.q_pos.At(i0 + r);
      AddBiasRow(bias, plan.k_pos, kb, p_q, s_row);
      MaskRow(plan, plan.k_pos, kb, p_q, s_row);
      float* o_row = tiles.o + r * plan.dv_pad;
      if (SoftmaxRowUpdate(s_row, &tiles.max[r], &tiles.sum[r], o_row, plan.dv_pad)) {
        AccumulatePV(s_row, tiles.v, n_keys, plan.dv_pad, o_row);
      }
    }
  }

  for (int64_t r = 0; r < rows; ++r) {
    const float inv_sum = tiles.sum[r] > 0.0f ? 1.0f / tiles.sum[r] : 0.0f;
    const int64_t offset = (i0 + r) * plan.o_token_stride + h * plan.o_head_stride;
    StoreRow(tiles.o + r * plan.dv_pad, plan.dv, inv_sum, plan.o, plan.o_dtype, offset);
  }
}

HWY_INLINE void AttendWorkItemsImpl(const Plan& plan, float* worker_ws,
                                    std::atomic<int64_t>* next_item) {
  WorkerTiles tiles = TilesOf(plan, worker_ws);
  for (;;) {
    const int64_t item = next_item->fetch_add(1, std::memory_order_relaxed);
    if (item >= plan.n_work_items) return;
    AttendWorkItem(plan, item, tiles);
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_ATTENTION_INL_H_
