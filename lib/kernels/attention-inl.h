// The fused attention pipeline for prefill work items (one KV head, up to
// kMaxHeadsPerItem of its query heads, plan.chunk queries), per target:
// pack Q^T -> for each visible key block: K, V as f32 -> for each sub-tile:
// scores -> + bias -> mask -> online softmax -> P.V -> finalize. Few queries
// take the decode pipeline (decode-inl.h) instead.
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
#include "lib/kernels/decode-inl.h"
#include "lib/kernels/int_dot-inl.h"
#include "lib/kernels/online_softmax-inl.h"
#include "lib/kernels/pack-inl.h"
#include "lib/kernels/rope-inl.h"
#include "lib/kernels/scores-inl.h"
#include "lib/kernels/shaw_vector-inl.h"
#include "lib/kernels/worker-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {

// One sub-tile: W queries of one head and their state in the workspace.
struct SubTile {
  int32_t head;
  SubTileQueries queries;
  float *q_t, *q_mul, *o_t, *max, *sum, *poison;
  void* q_int;  // int8_dot: the queries as the integer kernel reads them (PackQueriesInt)
  float* shaw;  // Shaw vector form: the sub-tile's skewed table
  const HeadBias* bias;
};

// s[j][lane] = float(s_int[j][lane]) * q_mul[lane] * k_scale[j]: the same
// operations ScaleInt8Scores applies to the same integers held in f32.
HWY_INLINE void ScaleInt32Scores(const float* HWY_RESTRICT q_mul, const float* HWY_RESTRICT k_scale,
                                 int64_t n_keys, float* HWY_RESTRICT s) {
  const DF df;
  const hn::RebindToSigned<DF> di;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const auto m0 = hn::Load(df, q_mul), m1 = hn::Load(df, q_mul + n);
  const int32_t* s_int = reinterpret_cast<const int32_t*>(s);
  for (int64_t j = 0; j < n_keys; ++j) {
    const auto ks = hn::Set(df, k_scale[j]);
    const auto x0 = hn::ConvertTo(df, hn::Load(di, s_int + j * 2 * n));
    const auto x1 = hn::ConvertTo(df, hn::Load(di, s_int + j * 2 * n + n));
    hn::Store(hn::Mul(x0, hn::Mul(m0, ks)), df, s + j * 2 * n);
    hn::Store(hn::Mul(x1, hn::Mul(m1, ks)), df, s + j * 2 * n + n);
  }
}

// Int8 keys: s[j][lane] *= q_mul[lane] * k_scale[j], turning the integer
// products (exact in f32) into scaled scores in log2 units.
HWY_INLINE void ScaleInt8Scores(const float* HWY_RESTRICT q_mul, const float* HWY_RESTRICT k_scale,
                                int64_t n_keys, float* HWY_RESTRICT s) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const auto m0 = hn::Load(df, q_mul), m1 = hn::Load(df, q_mul + n);
  for (int64_t j = 0; j < n_keys; ++j) {
    const auto ks = hn::Set(df, k_scale[j]);
    float* row = s + j * 2 * n;
    hn::Store(hn::Mul(hn::Load(df, row), hn::Mul(m0, ks)), df, row);
    hn::Store(hn::Mul(hn::Load(df, row + n), hn::Mul(m1, ks)), df, row + n);
  }
}

// Scores, bias, mask, softmax and P.V of one sub-tile against one key block.
// bad_keys: bit j set where key j0 + j has a non-finite K or V row (those
// rows are zero in k, v).
// Int8 keys as the integer kernel reads them (IntDotPrefill only, PackKeysInt).
struct KeysInt {
  const IntDotKernels* kernels;  // IntDotPrefill
  const void* rows;              // [n_keys][d4] as kernels->encoding says
  const int32_t* sums;
};

// k_scale: int8 keys' row scales (else unused); k_int: with IntDotPrefill.
HWY_INLINE void AttendKeyBlock(const Plan& plan, const SubTile& tile, int64_t j0, int64_t n_keys,
                               TileVisibility visibility, RowsF32 k, const float* k_scale,
                               KeysInt k_int, RowsF32 v, uint64_t bad_keys, float* HWY_RESTRICT s) {
  const int64_t w = 2 * static_cast<int64_t>(hn::Lanes(DF()));
  if (k_int.rows) {
    k_int.kernels->scores_qlanes(tile.q_int, plan.d4, k_int.rows, k_int.sums, n_keys,
                                 reinterpret_cast<int32_t*>(s));
    ScaleInt32Scores(tile.q_mul, k_scale, n_keys, s);
  } else {
    SubTileScores(tile.q_t, plan.d, k, n_keys, s);
    if (plan.k.dtype == RELATTN_I8) ScaleInt8Scores(tile.q_mul, k_scale, n_keys, s);
  }
  if (plan.shaw_vector) AddShawVector(plan, tile.queries, tile.shaw, j0, n_keys, s);
  const bool partial = visibility == TileVisibility::kPartial;
  if (tile.bias->kind != BiasKind::kNone || partial) {
    for (int64_t j = 0; j < n_keys; ++j) {
      BiasMaskRow(plan, *tile.bias, tile.queries, plan.k_pos.At(j0 + j), partial, s + j * w);
    }
  }
  SoftmaxUpdate(s, n_keys, bad_keys, tile.max, tile.sum, tile.poison, tile.o_t, plan.dv);
  AccumulatePV(s, n_keys, v, plan.dv, tile.o_t);
}

// Keys [j0, j0 + n_keys) rotated by RoPE into scratch ([n_keys][d], copied
// there first unless they already live in it).
HWY_INLINE RowsF32 RotatedRows(const Plan& plan, Worker& worker, RowsF32 k, int64_t j0,
                               int64_t n_keys, float* HWY_RESTRICT scratch) {
  for (int64_t j = 0; j < n_keys; ++j) {
    float* row = scratch + j * plan.d;
    if (k.rows != scratch) std::copy(k.rows + j * k.stride, k.rows + j * k.stride + plan.d, row);
    RopeRotate(plan, worker, plan.k_pos.At(j0 + j), row);
  }
  return {scratch, plan.d};
}

// The query heads and queries of one work item.
struct WorkItem {
  int32_t kv_head, head0, n_heads;
  int64_t i0, rows, n_sub, w;  // queries [i0, i0 + rows) in n_sub sub-tiles of w lanes
};

HWY_INLINE WorkItem WorkItemOf(const Plan& plan, int64_t item) {
  WorkItem it;
  const int64_t per_chunk = int64_t{plan.n_kv_heads} * plan.head_batches;
  // Latest query chunks first: under a causal mask they see the most keys.
  it.i0 = (plan.n_chunks - 1 - item / per_chunk) * plan.chunk;
  it.kv_head = static_cast<int32_t>(item % per_chunk / plan.head_batches);
  const int32_t batch = static_cast<int32_t>(item % per_chunk % plan.head_batches);
  it.head0 = it.kv_head * plan.group + batch * plan.heads_per_item;
  it.n_heads = std::min(plan.heads_per_item, (it.kv_head + 1) * plan.group - it.head0);
  it.rows = std::min(plan.chunk, plan.n_q - it.i0);
  it.w = 2 * static_cast<int64_t>(hn::Lanes(DF()));
  it.n_sub = (it.rows + it.w - 1) / it.w;
  return it;
}

// Sub-tile `sub` of head slot g: its queries and its slices of the workspace.
HWY_INLINE SubTile SubTileOf(const Plan& plan, const WorkItem& it, const HeadBias* biases,
                             int32_t g, int64_t sub, float* ws) {
  const WorkspaceLayout& l = plan.ws;
  const int64_t first = it.i0 + sub * it.w, rows = std::min(it.w, plan.n_q - first);
  const int64_t at = g * plan.chunk_capacity + sub * it.w;
  const PositionSpan span = SpanOf(plan.q_pos, first, rows);
  const bool vector_alibi = VectorAlibi(plan, span);
  const SubTileQueries queries{first,
                               rows,
                               span,
                               vector_alibi,
                               biases[g].kind == BiasKind::kAlibi && vector_alibi
                                   ? AlibiRowAnchor(plan, biases[g].alibi_causal, span.first)
                                   : 0,
                               reinterpret_cast<const int64_t*>(ws + l.row_anchor) + at};
  return {it.head0 + g,
          queries,
          ws + l.q_t + at * plan.d,
          ws + l.q_mul + at,
          ws + l.o_t + at * plan.dv,
          ws + l.row_max + at,
          ws + l.row_sum + at,
          ws + l.row_poison + at,
          reinterpret_cast<uint8_t*>(ws + l.q_int) + at * 2 * plan.d4,
          ws + plan.shaw_skewed + at * (2 * int64_t{plan.shaw_vector_k} + kMaxSubTile),
          &biases[g]};
}

HWY_INLINE void AttendWorkItem(const Plan& plan, int64_t item, Worker& worker) {
  const WorkspaceLayout& l = plan.ws;
  float* ws = worker.ws;
  const WorkItem it = WorkItemOf(plan, item);
  const IntDotKernels* int_dot = IntDotPrefill(plan);
  HeadBias biases[kMaxHeadsPerItem];
  for (int32_t g = 0; g < it.n_heads; ++g) {
    biases[g] = BiasOfHead(plan, it.head0 + g, g, worker);
    for (int64_t sub = 0; sub < it.n_sub; ++sub) {
      const SubTile t = SubTileOf(plan, it, biases, g, sub, ws);
      PackQueriesTransposed(plan, t.head, t.queries.i0, t.queries.rows, it.w, ws + l.row, t.q_t,
                            t.q_mul, t.poison, [&](int64_t i, float* row) {
                              if (plan.rope.on) RopeRotate(plan, worker, plan.q_pos.At(i), row);
                            });
      if (int_dot) PackQueriesInt(plan, t.q_t, it.w, t.q_int);
      if (plan.shaw_vector) {
        FillShawSkewed(plan, t.head, t.q_t, t.q_mul, it.w, ws + plan.shaw_products, t.shaw);
      }
      std::memset(t.o_t, 0, sizeof(float) * plan.dv * it.w);
      std::fill(t.max, t.max + it.w, -HUGE_VALF);
      std::fill(t.sum, t.sum + it.w, 0.0f);
      if (biases[g].kind == BiasKind::kAlibi && !t.queries.vector_alibi) {
        int64_t* anchors = const_cast<int64_t*>(t.queries.lane_anchors);
        for (int64_t i = 0; i < t.queries.rows; ++i) {
          anchors[i] =
              AlibiRowAnchor(plan, biases[g].alibi_causal, plan.q_pos.At(t.queries.i0 + i));
        }
      }
    }
  }

  const PositionSpan chunk_span = SpanOf(plan.q_pos, it.i0, it.rows);
  float* k_scale = ws + l.k_scale;
  for (int64_t j0 = 0; j0 < plan.n_valid_kv; j0 += kBlockKeys) {
    const int64_t n_keys = std::min(kBlockKeys, plan.n_valid_kv - j0);
    const PositionSpan k_span = SpanOf(plan.k_pos, j0, n_keys);
    if (ClassifyTile(plan, chunk_span.min, chunk_span.max, k_span.min, k_span.max) ==
        TileVisibility::kHidden) {
      // Keys at start + j only move away once they pass the last query.
      if (!plan.k_pos.positions && plan.causal && k_span.min > chunk_span.max) break;
      continue;
    }
    RowsF32 k{ws + l.k_block, plan.d};  // f32 keys (the int8 dot path reads int8 ones)
    if (!int_dot) {
      k = plan.cache.on ? CacheKeyRows(plan, it.kv_head, j0, n_keys, ws + l.k_block)
                        : RowsAsF32(plan.k, it.kv_head, j0, n_keys, plan.d, ws + l.k_block);
    }
    if (plan.rope.on && !plan.cache.on) {  // a KV cache rotated its keys at append
      k = RotatedRows(plan, worker, k, j0, n_keys, ws + l.k_block);
    }
    RowsF32 v = RowsAsF32(plan.v, it.kv_head, j0, n_keys, plan.dv, ws + l.v_block);
    // Non-finite K or V rows poison the queries that see them, and are zeroed
    // so that they cannot reach the queries that do not (a KV cache stored
    // them as zeros and flagged them).
    uint64_t bad_keys =
        (int_dot ? 0 : NonFiniteRows(k, n_keys, plan.d)) | NonFiniteRows(v, n_keys, plan.dv);
    if (plan.cache.on) bad_keys |= CacheBadKeys(plan, it.kv_head, j0, n_keys);
    if (plan.k.dtype == RELATTN_I8) bad_keys |= KeyScales(plan, it.kv_head, j0, n_keys, k_scale);
    KeysInt k_int{nullptr, nullptr, nullptr};
    if (int_dot) {
      int32_t* sums = reinterpret_cast<int32_t*>(ws + l.k_sum);
      PackKeysInt(plan, it.kv_head, j0, n_keys, bad_keys, ws + l.k_int, sums);
      k_int = {int_dot, ws + l.k_int, sums};
    }
    if (bad_keys) {
      k = ZeroBadRows(k, n_keys, plan.d, bad_keys, ws + l.k_block);
      v = ZeroBadRows(v, n_keys, plan.dv, bad_keys, ws + l.v_block);
    }
    // The next block's K and V arrive while this one is computed.
    const int64_t next = std::min(kBlockKeys, plan.n_valid_kv - j0 - n_keys);
    if (next > 0 && !plan.cache.on) {
      PrefetchRows(plan.k, it.kv_head, j0 + n_keys, next, plan.d);
      PrefetchRows(plan.v, it.kv_head, j0 + n_keys, next, plan.dv);
    }
    for (int32_t g = 0; g < it.n_heads; ++g) {
      for (int64_t sub = 0; sub < it.n_sub; ++sub) {
        const SubTile t = SubTileOf(plan, it, biases, g, sub, ws);
        const TileVisibility visibility =
            ClassifyTile(plan, t.queries.span.min, t.queries.span.max, k_span.min, k_span.max);
        if (visibility == TileVisibility::kHidden) continue;
        AttendKeyBlock(plan, t, j0, n_keys, visibility, k, k_scale, k_int, v, bad_keys,
                       ws + l.s_tile);
      }
    }
  }

  for (int32_t g = 0; g < it.n_heads; ++g) {
    for (int64_t sub = 0; sub < it.n_sub; ++sub) {
      const SubTile t = SubTileOf(plan, it, biases, g, sub, ws);
      StoreOutputTransposed(plan, t.head, t.queries.i0, t.queries.rows, it.w, t.o_t, t.sum,
                            t.poison, ws + l.row);
    }
  }
}

HWY_INLINE void AttendWorkItemsImpl(const Plan& plan, float* shared_ws, float* worker_ws,
                                    std::atomic<int64_t>* next_item) {
  Worker worker{worker_ws, shared_ws, {}};
  std::fill(worker.table_head, worker.table_head + kMaxHeadsPerItem, -1);
  for (;;) {
    const int64_t item = next_item->fetch_add(1, std::memory_order_relaxed);
    if (item >= plan.n_work_items) return;
    if (plan.decode) {
      DecodeWorkItem(plan, item, worker);
    } else {
      AttendWorkItem(plan, item, worker);
    }
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_ATTENTION_INL_H_
