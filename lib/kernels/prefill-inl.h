// The fused attention pipeline for prefill work items (one KV head, up to
// kMaxHeadsPerItem of its query heads, plan.work.chunk queries), per target:
// pack Q^T -> for each visible key block: K, V as f32 -> for each sub-tile:
// scores -> + bias -> mask -> online softmax -> P.V -> finalize. Few queries
// take the decode pipeline (decode-inl.h) instead.
#if defined(RELATTN_LIB_KERNELS_PREFILL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_PREFILL_INL_H_
#undef RELATTN_LIB_KERNELS_PREFILL_INL_H_
#else
#define RELATTN_LIB_KERNELS_PREFILL_INL_H_
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "hwy/highway.h"
#include "lib/driver/lse.h"
#include "lib/driver/plan.h"
#include "lib/driver/sinks.h"
#include "lib/driver/visibility.h"
#include "lib/kernels/bias_qlanes-inl.h"
#include "lib/kernels/int_dot-inl.h"
#include "lib/kernels/key_block-inl.h"
#include "lib/kernels/pack-inl.h"
#include "lib/kernels/pv_qlanes-inl.h"
#include "lib/kernels/rope-inl.h"
#include "lib/kernels/scores_qlanes-inl.h"
#include "lib/kernels/shaw_vector-inl.h"
#include "lib/kernels/softcap-inl.h"
#include "lib/kernels/softmax_qlanes-inl.h"
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

// Scores, bias, mask, softmax and P.V of one sub-tile against one key block.
// visibility: by the position masks; index_partial: some pair needs the
// index masks' test.
HWY_INLINE void AttendKeyBlock(const Plan& plan, const SubTile& tile, const KeyBlock& b,
                               TileVisibility visibility, bool index_partial,
                               float* HWY_RESTRICT s) {
  const int64_t w = 2 * static_cast<int64_t>(hn::Lanes(DF()));
  const int64_t j0 = b.j0, n_keys = b.n_keys;
  if (b.k_int.rows) {
    b.k_int.kernels->scores_qlanes(tile.q_int, plan.d4, b.k_int.rows, b.k_int.sums, n_keys,
                                   reinterpret_cast<int32_t*>(s));
    ScaleQLanesI32(tile.q_mul, b.k_scale, n_keys, s);
  } else if (b.k_bf16.rows) {  // the bf16 products' sums, times the scale
    b.k_bf16.kernels->scores_qlanes(static_cast<const uint32_t*>(tile.q_int), plan.d / 2,
                                    b.k_bf16.rows, b.k_bf16.stride, n_keys, plan.scale_log2, s);
  } else {
    ScoresQLanesF32(tile.q_t, plan.d, b.k, n_keys, s);
    if (plan.k.dtype == RELATTN_I8) ScaleQLanesI8(tile.q_mul, b.k_scale, n_keys, s);
  }
  if (plan.bias.shaw_vector) AddShawVector(plan, tile.queries, tile.shaw, j0, n_keys, s);
  if (plan.softcap_log2 != 0.0f) {
    SoftcapScores(plan.softcap_log2, plan.softcap_inv_log2, s, n_keys * w);
  }
  const bool partial = visibility == TileVisibility::kPartial;
  if (tile.bias->kind != BiasKind::kNone || partial) {
    for (int64_t j = 0; j < n_keys; ++j) {
      BiasMaskQLanes(plan, *tile.bias, tile.queries, plan.k_pos.At(j0 + j), partial, s + j * w);
    }
  }
  HideKeysBeforeFirst(plan, j0, n_keys, w, s);
  if (index_partial) {
    HideByIndexMaskQLanes(plan.index_mask, tile.queries.i0, tile.queries.rows, j0, n_keys, w, s);
  }
  SoftmaxQLanes(s, n_keys, b.bad, tile.max, tile.sum, tile.poison, tile.o_t, plan.dv);
  if (b.v_pairs) {
    b.k_bf16.kernels->pv_qlanes(s, n_keys, b.v_pairs, plan.dv, tile.o_t);
  } else {
    PVQLanesF32(s, n_keys, b.v, plan.dv, tile.o_t);
  }
}

// The query heads and queries of one work item.
struct WorkItem {
  HeadBatch batch;
  int64_t i0, rows, n_sub, w;  // queries [i0, i0 + rows) in n_sub sub-tiles of w lanes
};

HWY_INLINE WorkItem WorkItemOf(const Plan& plan, int64_t item) {
  WorkItem it;
  const int64_t per_chunk = int64_t{plan.n_kv_heads} * plan.work.head_batches;
  // Latest query chunks first: under a causal mask they see the most keys.
  it.i0 = (plan.work.n_chunks - 1 - item / per_chunk) * plan.work.chunk;
  it.batch = HeadBatchOf(plan, item % per_chunk);
  it.rows = std::min(plan.work.chunk, plan.n_q - it.i0);
  it.w = 2 * static_cast<int64_t>(hn::Lanes(DF()));
  it.n_sub = (it.rows + it.w - 1) / it.w;
  return it;
}

// What sub-tile `sub`'s queries are, the same for every head slot: their
// positions, whether they take vector_alibi and then the first query's
// anchor (ALiBi). Stored by PrepareSubTiles at ws + sub_info.
struct SubTileInfo {
  PositionSpan span;
  int64_t alibi_anchor;
  bool vector_alibi;
};
static_assert(sizeof(SubTileInfo) <= kSubTileInfoFloats * sizeof(float), "sub_info entries");

HWY_INLINE SubTileInfo* SubTileInfoOf(const Plan& plan, int64_t sub, float* ws) {
  return reinterpret_cast<SubTileInfo*>(ws + plan.ws.sub_info + sub * kSubTileInfoFloats);
}

HWY_INLINE SubTileInfo ComputeSubTileInfo(const Plan& plan, const WorkItem& it, int64_t sub) {
  const int64_t first = it.i0 + sub * it.w, rows = std::min(it.w, plan.n_q - first);
  SubTileInfo info;
  info.span = SpanOf(plan.q_pos, first, rows);
  info.vector_alibi = VectorAlibi(plan, info.span, first, rows);
  info.alibi_anchor =
      plan.bias.kind == BiasKind::kAlibi && info.vector_alibi
          ? AlibiRowAnchor(plan, plan.bias.params.alibi.causal != 0, first, info.span.first)
          : 0;
  return info;
}

// Sub-tile `sub` of head slot g: its queries and its slices of the workspace.
HWY_INLINE SubTile SubTileOf(const Plan& plan, const WorkItem& it, const HeadBias* biases,
                             int32_t g, int64_t sub, float* ws) {
  const WorkspaceLayout& l = plan.ws;
  const int64_t first = it.i0 + sub * it.w, rows = std::min(it.w, plan.n_q - first);
  const int64_t at = g * plan.work.chunk_capacity + sub * it.w;
  const SubTileInfo& info = *SubTileInfoOf(plan, sub, ws);
  const SubTileQueries queries{first,
                               rows,
                               info.span,
                               info.vector_alibi,
                               biases[g].kind == BiasKind::kAlibi ? info.alibi_anchor : 0,
                               reinterpret_cast<const int64_t*>(ws + l.row_anchor) + at,
                               ws + l.row_anchor_f + at};
  return {it.batch.head0 + g,
          queries,
          ws + l.q_t + at * plan.d,
          ws + l.q_mul + at,
          ws + l.o_t + at * plan.dv,
          ws + l.row_max + at,
          ws + l.row_sum + at,
          ws + l.row_poison + at,
          reinterpret_cast<uint8_t*>(ws + l.q_int) + at * 2 * plan.d4,
          ws + plan.shaw_skewed + at * (2 * int64_t{plan.bias.shaw_vector_k} + kMaxSubTile),
          &biases[g]};
}

// The first stage: every sub-tile's queries transposed into q_t (in log2
// units, rotated by RoPE; integers for the int8 kernel), its Shaw vector
// table, ALiBi anchors and an empty softmax state.
HWY_INLINE void PrepareSubTiles(const Plan& plan, const WorkItem& it, HeadBias* biases,
                                const IntDotKernels* int_dot, const Bf16DotKernels* bf16_dot,
                                Worker& worker) {
  float* ws = worker.ws;
  for (int64_t sub = 0; sub < it.n_sub; ++sub) {
    *SubTileInfoOf(plan, sub, ws) = ComputeSubTileInfo(plan, it, sub);
  }
  for (int32_t g = 0; g < it.batch.n_heads; ++g) {
    biases[g] = BiasOfHead(plan, it.batch.head0 + g, g, worker);
    for (int64_t sub = 0; sub < it.n_sub; ++sub) {
      const SubTile t = SubTileOf(plan, it, biases, g, sub, ws);
      PackQueriesTransposed(plan, t.head, t.queries.i0, t.queries.rows, it.w, ws + plan.ws.row,
                            t.q_t, t.q_mul, t.poison, [&](int64_t i, float* row) {
                              if (plan.rope.on) RopeRotate(plan, worker, plan.q_pos.At(i), row);
                            });
      if (int_dot) PackQueriesInt(plan, t.q_t, it.w, t.q_int);
      if (bf16_dot) {
        PackQueriesBf16(plan, *bf16_dot, t.head, t.queries.i0, t.queries.rows, it.w,
                        reinterpret_cast<uint16_t*>(ws + plan.ws.row),
                        static_cast<uint32_t*>(t.q_int));
      }
      if (plan.bias.shaw_vector) {
        FillShawSkewed(plan, t.head, t.q_t, t.q_mul, it.w, ws + plan.shaw_products, t.shaw);
      }
      std::memset(t.o_t, 0, sizeof(float) * plan.dv * it.w);
      std::fill(t.max, t.max + it.w, -HUGE_VALF);
      std::fill(t.sum, t.sum + it.w, 0.0f);
      if (biases[g].kind == BiasKind::kAlibi && !t.queries.vector_alibi) {
        int64_t* anchors = const_cast<int64_t*>(t.queries.lane_anchors);
        for (int64_t i = 0; i < t.queries.rows; ++i) {
          anchors[i] = AlibiRowAnchor(plan, biases[g].alibi_causal, t.queries.i0 + i,
                                      plan.q_pos.At(t.queries.i0 + i));
        }
        float* anchors_f = const_cast<float*>(t.queries.lane_anchors_f);
        anchors_f[0] = NAN;
        if (t.queries.span.contiguous) {
          LaneAnchorsF(biases[g].alibi_causal, anchors, t.queries.rows, it.w, t.queries.span.first,
                       anchors_f);
        }
      }
    }
  }
}

HWY_INLINE KeyBlockScratch PrefillScratch(const Plan& plan, const IntDotKernels* int_dot,
                                          const Bf16DotKernels* bf16_dot, float* ws) {
  const WorkspaceLayout& l = plan.ws;
  KeyBlockScratch b{};
  b.k = ws + l.k_block;
  b.v = ws + l.v_block;
  b.k_scale = ws + l.k_scale;
  b.k_int = ws + l.k_int;
  b.k_sum = reinterpret_cast<int32_t*>(ws + l.k_sum);
  b.k_stride = plan.d;
  b.v_stride = plan.dv;
  b.int_dot = int_dot;
  b.bf16_dot = bf16_dot;
  return b;
}

// Every sub-tile of the item that sees some key of the block takes it.
// by_index: the index masks' verdict on the whole item and block (kPartial:
// each sub-tile is classified).
HWY_INLINE void AttendSubTiles(const Plan& plan, const WorkItem& it, const HeadBias* biases,
                               const KeyBlock& block, TileVisibility item_by_index, float* ws) {
  if (item_by_index == TileVisibility::kHidden) return;
  for (int32_t g = 0; g < it.batch.n_heads; ++g) {
    for (int64_t sub = 0; sub < it.n_sub; ++sub) {
      const SubTile t = SubTileOf(plan, it, biases, g, sub, ws);
      const TileVisibility visibility = ClassifyTile(
          plan.mask, t.queries.span.min, t.queries.span.max, block.span.min, block.span.max);
      if (visibility == TileVisibility::kHidden) continue;
      TileVisibility by_index = item_by_index;
      if (by_index == TileVisibility::kPartial) {
        by_index = ClassifyIndexTile(plan.index_mask, t.queries.i0, t.queries.rows, block.j0,
                                     block.n_keys);
        if (by_index == TileVisibility::kHidden) continue;
      }
      AttendKeyBlock(plan, t, block, visibility, by_index == TileVisibility::kPartial,
                     ws + plan.ws.s_tile);
    }
  }
}

// The ALiBi anchor lane i's scores used (0 for other schemes).
HWY_INLINE int64_t LaneAnchor(const SubTile& t, int64_t i) {
  if (t.bias->kind != BiasKind::kAlibi) return 0;
  return t.queries.vector_alibi ? t.queries.alibi_anchor : t.queries.lane_anchors[i];
}

// Sink logits of a sub-tile's lanes (RowSinkLog2), each in the frame of the
// ALiBi anchor its lane's scores used.
HWY_INLINE void SubTileSinks(const Plan& plan, const SubTile& t, float* HWY_RESTRICT sink) {
  const SubTileQueries& q = t.queries;
  for (int64_t i = 0; i < q.rows; ++i) {
    sink[i] = RowSinkLog2(plan, t.head, plan.q_pos.At(q.i0 + i), LaneAnchor(t, i));
  }
}

// The last stage: every sub-tile's rows finalized into the output (and lse).
HWY_INLINE void StoreSubTiles(const Plan& plan, const WorkItem& it, const HeadBias* biases,
                              float* ws) {
  float sink[kMaxSubTile];
  for (int32_t g = 0; g < it.batch.n_heads; ++g) {
    for (int64_t sub = 0; sub < it.n_sub; ++sub) {
      const SubTile t = SubTileOf(plan, it, biases, g, sub, ws);
      if (plan.sinks) SubTileSinks(plan, t, sink);
      StoreOutputTransposed(plan, t.head, t.queries.i0, t.queries.rows, it.w, t.o_t, t.max, t.sum,
                            t.poison, plan.sinks ? sink : nullptr, ws + plan.ws.row);
      if (!plan.lse) continue;
      for (int64_t i = 0; i < t.queries.rows; ++i) {
        StoreRowLse(plan, t.queries.i0 + i, t.head, LaneAnchor(t, i), t.max[i], t.sum[i],
                    t.poison[i] != 0.0f);
      }
    }
  }
}

// Prefill work item: prepare sub-tiles -> for each visible key block {load
// key block, prefetch the next -> each sub-tile: scores -> + bias -> mask ->
// online softmax -> P.V} -> store.
HWY_INLINE void AttendWorkItem(const Plan& plan, int64_t item, Worker& worker) {
  const WorkItem it = WorkItemOf(plan, item);
  const IntDotKernels* int_dot = IntDotPrefill(plan);
  // A sub-tile as wide as the kernel's (2 vectors of DF: true where it exists).
  const Bf16DotKernels* bf16_dot = it.w == kBf16Dot.lanes ? Bf16DotPrefill(plan) : nullptr;
  HeadBias biases[kMaxHeadsPerItem];
  PrepareSubTiles(plan, it, biases, int_dot, bf16_dot, worker);
  const KeyBlockScratch scratch = PrefillScratch(plan, int_dot, bf16_dot, worker.ws);
  const PositionSpan chunk_span = SpanOf(plan.q_pos, it.i0, it.rows);
  const SegmentRange chunk_segments = QuerySegments(plan.index_mask, it.i0, it.rows);
  ForEachVisibleKeyBlock(
      plan, chunk_span, chunk_segments, FirstKeyBlock(plan), plan.n_valid_kv,
      [&](int64_t j0, int64_t n_keys, TileVisibility) RELATTN_INLINE_LAMBDA {
        const KeyBlock block =
            LoadKeyBlock<false>(plan, worker, it.batch.kv_head, j0, n_keys, scratch);
        const int64_t next = NextBlockSeen(plan, chunk_segments, j0 + n_keys)
                                 ? std::min(kBlockKeys, plan.n_valid_kv - j0 - n_keys)
                                 : 0;
        PrefetchKeyBlock(plan, it.batch.kv_head, j0 + n_keys, next);
        const TileVisibility by_index =
            plan.index_mask.on() ? ClassifyIndexTile(plan.index_mask, it.i0, it.rows, j0, n_keys)
                                 : TileVisibility::kVisible;
        AttendSubTiles(plan, it, biases, block, by_index, worker.ws);
      });
  StoreSubTiles(plan, it, biases, worker.ws);
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_PREFILL_INL_H_
