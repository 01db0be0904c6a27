// The fused pipeline for a few queries (decode), per target: keys stream one
// row at a time and each query row takes a dot product with it, so a vector
// lane is never idle for lack of queries. Work item = one KV head with up to
// kMaxHeadsPerItem of its query heads (over [tokens][kv_heads][d] tensors:
// kv_per_item KV heads and all their query heads, each key block read for
// every head in turn), all n_q <= kDecodeMaxQueries queries and one split of
// the keys; K and V are read once per work item. Stages:
// prepare query rows -> for each visible key block {load key block ->
// scores -> bias, mask, softmax -> P.V} -> store partial state or output.
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
#include "lib/common/quantize_row.h"
#include "lib/driver/alibi_anchor.h"
#include "lib/driver/lse.h"
#include "lib/driver/plan.h"
#include "lib/driver/sinks.h"
#include "lib/driver/visibility.h"
#include "lib/kernels/bias_row-inl.h"
#include "lib/kernels/int_dot-inl.h"
#include "lib/kernels/key_block-inl.h"
#include "lib/kernels/pack-inl.h"
#include "lib/kernels/pv_rows-inl.h"
#include "lib/kernels/q4_rows-inl.h"
#include "lib/kernels/rope-inl.h"
#include "lib/kernels/scores_klanes-inl.h"
#include "lib/kernels/scores_rows-inl.h"
#include "lib/kernels/shaw_vector-inl.h"
#include "lib/kernels/softcap-inl.h"
#include "lib/kernels/softmax_rows-inl.h"
#include "lib/kernels/worker-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Query rows of a decode work item: row r = slot * n_q + query, where slot g
// is query head batch.head0 + g; their state in the workspace (DecodeLayout)
// and their bias.
struct DecodeRows {
  HeadBatch batch;
  int64_t n_rows;
  float *q, *o, *max, *sum, *s;    // q [rows][d_pad], o [rows][dv_pad], s [rows][kBlockKeys]
  float* poison;                   // [rows]: 1 where the query saw a non-finite value
  float* q_mul;                    // int8 keys: [rows] what a row's scores are multiplied by
  void* q_int;                     // int8 cache keys: the rows as IntDotDecode reads them
  HeadBias bias[kMaxDecodeRows];   // each row's (the Shaw vector form: its own table)
  int64_t anchor[kMaxDecodeRows];  // ALiBi row anchors
  int32_t Head(int64_t r) const { return batch.head0 + static_cast<int32_t>(r / n_q); }
  int64_t n_q;
};

HWY_INLINE void DecodeRowsOf(const Plan& plan, const HeadBatch& batch, float* ws,
                             DecodeRows* rows) {
  const DecodeLayout& l = plan.decode_ws;
  rows->batch = batch;
  rows->n_q = plan.n_q;
  rows->n_rows = batch.n_heads * plan.n_q;
  rows->q = ws + l.q_rows;
  rows->o = ws + l.o_rows;
  rows->max = ws + l.row_max;
  rows->sum = ws + l.row_sum;
  rows->s = ws + l.s_rows;
  rows->poison = ws + l.row_poison;
  rows->q_mul = ws + l.q_mul;
  rows->q_int = ws + l.q_int;
}

// Query row r in log2 units (or as integers, see below), rotated by RoPE,
// its poison flag and an empty softmax state. With int8 keys, q_mul[r] is
// what the row's scores are multiplied by: int8 queries (without RoPE) stay
// integers and carry their scale there; rows against int8 cache keys stay
// unscaled (QuantizeDecodeRows quantises them as relattn_quantize_i8 would
// the query); other rows are in log2 units.
HWY_INLINE void PrepareQueryRow(const Plan& plan, Worker& worker, DecodeRows& rows, int64_t r) {
  const bool int8_cache = plan.cache.on && plan.k.dtype == RELATTN_I8;
  const bool int_queries = plan.q.dtype == RELATTN_I8 && !plan.rope.on;
  const int64_t t = r % plan.n_q;
  const int32_t head = rows.Head(r);
  const float q_scale = plan.q.dtype == RELATTN_I8 ? plan.q.RowScale(t, head) : 1.0f;
  float mul = q_scale * plan.scale_log2, row_mul = 1.0f;
  if (int_queries) {
    mul = 1.0f;
    row_mul = q_scale * plan.scale_log2;
  } else if (int8_cache) {
    mul = q_scale;
    row_mul = plan.scale_log2;
  }
  if (plan.k.dtype == RELATTN_I8) rows.q_mul[r] = row_mul;
  float* q = rows.q + r * plan.d_pad;
  const int64_t offset = t * plan.q.token_stride + head * plan.q.head_stride;
  ConvertRow(plan.q.data, plan.q.dtype, offset, plan.d, mul, q);
  if (plan.rope.on) RopeRotate(plan, worker, plan.q_pos.At(t), q);
  rows.poison[r] = std::isfinite(q_scale) && RowFinite(q, plan.d) ? 0.0f : 1.0f;
  rows.max[r] = -HUGE_VALF;
  rows.sum[r] = 0.0f;
}

// Each row's bias (its head's; the Shaw vector form: the row's own table of
// q . a[r]) and ALiBi anchor.
HWY_INLINE void PrepareRowBiases(const Plan& plan, Worker& worker, DecodeRows& rows) {
  HeadBias heads[kMaxDecodeRows];  // n_heads <= rows
  for (int32_t g = 0; g < rows.batch.n_heads; ++g) {
    heads[g] = BiasOfHead(plan, rows.batch.head0 + g, g, worker);
  }
  const int64_t shaw_len = 2 * int64_t{plan.bias.shaw_vector_k} + 1 + 2 * kTablePad;
  for (int64_t r = 0; r < rows.n_rows; ++r) {
    const HeadBias& head_bias = heads[r / plan.n_q];
    rows.bias[r] = head_bias;
    if (plan.bias.shaw_vector) {
      const float mul = plan.k.dtype == RELATTN_I8 ? rows.q_mul[r] : 1.0f;
      rows.bias[r] = ShawVectorRowBias(plan, rows.Head(r), rows.q + r * plan.d_pad, mul,
                                       worker.ws + plan.shaw_products,
                                       worker.ws + plan.shaw_row_tables + r * shaw_len);
    }
    rows.anchor[r] = plan.bias.kind == BiasKind::kAlibi
                         ? AlibiRowAnchor(plan, head_bias.alibi_causal, r % plan.n_q,
                                          plan.q_pos.At(r % plan.n_q))
                         : 0;
  }
}

// Int8 cache keys: the query rows (finite or poisoned) become integers in
// rows.q (as f32) and in q_int (as the target's IntEncoding says, rows
// rounded up to 4, padding encoded zeros): int8 queries already are
// (integers: true), other rows (unscaled) are quantised per row as
// relattn_quantize_i8 does, their scale joining q_mul[r]. Every target then
// sums the same integer products.
HWY_INLINE void QuantizeDecodeRows(const Plan& plan, DecodeRows& rows, bool integers) {
  const int64_t d4 = RoundUp(plan.d, 4);
  FillQueryRowsInt(RoundUp(rows.n_rows, 4), d4, rows.q_int);
  int8_t q[RELATTN_MAX_HEAD_DIM];
  for (int64_t r = 0; r < rows.n_rows; ++r) {
    float* row = rows.q + r * plan.d_pad;
    if (rows.poison[r] != 0.0f) std::fill(row, row + plan.d, 0.0f);
    if (integers) {
      for (int64_t e = 0; e < plan.d; ++e) q[e] = static_cast<int8_t>(row[e]);
    } else {
      rows.q_mul[r] *= QuantizeRowI8(row, plan.d, q);
    }
    for (int64_t e = 0; e < plan.d; ++e) row[e] = static_cast<float>(q[e]);
    PackQueryRowInt(q, r, plan.d, d4, rows.q_int);
  }
}

// The first stage: every query row, its bias, and (int8 cache keys) its
// integers; the workspace's key and value blocks zero beyond d / dv.
HWY_INLINE void PrepareDecodeRows(const Plan& plan, Worker& worker, DecodeRows& rows) {
  const DecodeLayout& l = plan.decode_ws;
  std::memset(rows.q, 0, sizeof(float) * rows.n_rows * plan.d_pad);
  std::memset(rows.o, 0, sizeof(float) * rows.n_rows * plan.dv_pad);
  for (int64_t r = 0; r < rows.n_rows; ++r) PrepareQueryRow(plan, worker, rows, r);
  // Int8 cache keys: the quantised row is the query of every product, the
  // Shaw vector form's q . a included.
  if (plan.cache.on && plan.k.dtype == RELATTN_I8) {
    QuantizeDecodeRows(plan, rows, plan.q.dtype == RELATTN_I8 && !plan.rope.on);
  }
  PrepareRowBiases(plan, worker, rows);
  float* ws = worker.ws;
  if (plan.d_pad > plan.d) std::memset(ws + l.k_block, 0, sizeof(float) * kBlockKeys * plan.d_pad);
  if (plan.dv_pad > plan.dv) {
    std::memset(ws + l.v_block, 0, sizeof(float) * kBlockKeys * plan.dv_pad);
  }
}

HWY_INLINE KeyBlockScratch DecodeScratch(const Plan& plan, float* ws) {
  const DecodeLayout& l = plan.decode_ws;
  KeyBlockScratch b{};
  b.k = ws + l.k_block;
  b.v = ws + l.v_block;
  b.k_scale = ws + l.k_scale;
  b.k_stride = plan.d_pad;
  b.v_stride = plan.dv_pad;
  return b;
}

// The rows [r0, r0 + n) of a work item that one of its KV heads serves.
struct RowRange {
  int64_t r0, n;
};

// Rows of KV head batch.kv_head + kv of the item: its query heads' rows, an
// equal share of the item's (all of them with one KV head).
HWY_INLINE RowRange RowsOfKvHead(const DecodeRows& rows, int32_t kv) {
  const int64_t n = rows.n_rows / rows.batch.n_kv;
  return {kv * n, n};
}

// s[r][j] = scores of the rows against the block's keys, in log2 units.
HWY_INLINE void DecodeScores(const Plan& plan, const DecodeRows& rows, RowRange rr, int32_t kv_head,
                             const KeyBlock& b) {
  const float* q = rows.q + rr.r0 * plan.d_pad;
  float* s = rows.s + rr.r0 * kBlockKeys;
  if (b.k.rows) {  // converted: a tensor's, a KV cache's with Q4 K or V
    ScoresRowsF32(q, rr.n, plan.d_pad, b.k.rows, b.n_keys, s);
  } else if (!plan.cache.on) {
    ScoresRowsTensor(plan, q, rr.n, kv_head, b.j0, b.n_keys, s);
  } else if (plan.k.dtype == RELATTN_Q4) {
    const uint8_t* k = static_cast<const uint8_t*>(plan.k.data) + kv_head * plan.k.head_stride +
                       b.j0 * plan.k.token_stride;
    ScoresRowsQ4(q, rr.n, plan.d_pad, k, plan.k.token_stride, b.n_keys, plan.d, s);
  } else if (plan.k.dtype == RELATTN_I8) {  // one KV head per item: rr is every row
    ScoresKLanesI8(plan, rows.q, rows.n_rows, rows.q_int, kv_head, b.j0, b.n_keys, rows.s);
  } else {
    ScoresKLanesCache(plan, q, rr.n, kv_head, b.j0, b.n_keys, s);
  }
  if (plan.k.dtype == RELATTN_I8) ScaleRowsI8(rr.n, rows.q_mul + rr.r0, b.k_scale, b.n_keys, s);
}

// Bias, masks, poison and the online softmax of every row over the block;
// s becomes probabilities (0 for a row that has still seen no key).
HWY_INLINE void DecodeSoftmax(const Plan& plan, DecodeRows& rows, RowRange rr, const KeyBlock& b,
                              TileVisibility visibility) {
  const bool partial = visibility == TileVisibility::kPartial;
  const bool cap = plan.softcap_log2 != 0.0f;
  const HeadBias none{};  // kind kNone
  for (int64_t r = rr.r0; r < rr.r0 + rr.n; ++r) {
    float* s = rows.s + r * kBlockKeys;
    const int64_t p_q = plan.q_pos.At(r % plan.n_q);
    // Soft-capping: content first (the Shaw vector form's q . a, the row's
    // table: its scalar bias is none), the cap, then the masks alone.
    if (cap && plan.bias.shaw_vector) {
      BiasMaskRow(plan, rows.bias[r], p_q, rows.anchor[r], b.j0, b.n_keys, b.span, false, s);
    }
    if (cap) SoftcapScores(plan.softcap_log2, plan.softcap_inv_log2, s, kBlockKeys);
    const HeadBias& bias = cap && plan.bias.shaw_vector ? none : rows.bias[r];
    BiasMaskRow(plan, bias, p_q, rows.anchor[r], b.j0, b.n_keys, b.span, partial, s);
    HideKeysBeforeFirst(plan, b.j0, b.n_keys, 1, s);
    if (plan.index_mask.on()) HideByIndexMaskRow(plan.index_mask, r % plan.n_q, b.j0, b.n_keys, s);
    PoisonRow(s, b.n_keys, b.bad, &rows.poison[r]);
    if (!SoftmaxRow(s, &rows.max[r], &rows.sum[r], rows.o + r * plan.dv_pad, plan.dv_pad)) {
      std::fill(s, s + kBlockKeys, 0.0f);
    }
  }
}

// P.V of the rows over the block; scratch: the value block's (Q4 values read
// in place use it for PVRowsQ4).
HWY_INLINE void DecodePV(const Plan& plan, const DecodeRows& rows, RowRange rr, int32_t kv_head,
                         const KeyBlock& b, float* HWY_RESTRICT scratch) {
  float* p = rows.s + rr.r0 * kBlockKeys;
  float* o = rows.o + rr.r0 * plan.dv_pad;
  if (b.v_scale) ScaleProbabilities(b.v_scale, b.n_keys, rr.n, p);
  if (!b.v.rows && plan.v.dtype == RELATTN_Q4) {
    const uint8_t* v = static_cast<const uint8_t*>(plan.v.data) + kv_head * plan.v.head_stride +
                       b.j0 * plan.v.token_stride;
    PVRowsQ4(p, rr.n, v, plan.v.token_stride, b.n_keys, plan.dv, plan.dv_pad, o, scratch);
  } else if (!b.v.rows) {
    PVRowsInPlaceV(plan, p, rr.n, kv_head, b.j0, b.n_keys, o);
  } else {
    PVRowsF32(p, b.v.rows, b.n_keys, rr.n, plan.dv_pad, o);
  }
}

// The last stage: with several splits, the rows' partial state for
// MergeSplits (unnormalised o, max, sum, poison per row); else the output.
HWY_INLINE void StoreDecodeRows(const Plan& plan, int64_t item, const DecodeRows& rows,
                                float* shared_ws) {
  if (plan.work.n_splits > 1) {
    float* partial = shared_ws + item * plan.work.partial_floats_per_item;
    const int64_t o_floats = rows.n_rows * plan.dv_pad;
    std::memcpy(partial, rows.o, sizeof(float) * o_floats);
    std::memcpy(partial + o_floats, rows.max, sizeof(float) * rows.n_rows);
    std::memcpy(partial + o_floats + rows.n_rows, rows.sum, sizeof(float) * rows.n_rows);
    std::memcpy(partial + o_floats + 2 * rows.n_rows, rows.poison, sizeof(float) * rows.n_rows);
    return;
  }
  for (int64_t r = 0; r < rows.n_rows; ++r) {
    float* o = rows.o + r * plan.dv_pad;
    const int64_t offset = (r % plan.n_q) * plan.o_token_stride + rows.Head(r) * plan.o_head_stride;
    const float sink = RowSinkLog2(plan, rows.Head(r), plan.q_pos.At(r % plan.n_q), rows.anchor[r]);
    StoreFinalRow(plan, o, FinalScale(rows.sum[r], rows.max[r], sink), rows.poison[r] != 0.0f,
                  offset);
    StoreRowLse(plan, r % plan.n_q, rows.Head(r), rows.anchor[r], rows.max[r], rows.sum[r],
                rows.poison[r] != 0.0f);
  }
}

HWY_INLINE void DecodeWorkItem(const Plan& plan, int64_t item, Worker& worker) {
  const int64_t split = item % plan.work.n_splits;
  const HeadBatch batch = HeadBatchOf(plan, item / plan.work.n_splits);
  DecodeRows rows;
  DecodeRowsOf(plan, batch, worker.ws, &rows);
  PrepareDecodeRows(plan, worker, rows);
  const KeyBlockScratch scratch = DecodeScratch(plan, worker.ws);
  const PositionSpan q_span = SpanOf(plan.q_pos, 0, plan.n_q);
  const int64_t first = FirstKeyBlock(plan);  // blocks [first, n_valid_kv) split n_splits ways
  const int64_t n_blocks = (plan.n_valid_kv - first + kBlockKeys - 1) / kBlockKeys;
  const int64_t end =
      std::min(first + (split + 1) * n_blocks / plan.work.n_splits * kBlockKeys, plan.n_valid_kv);
  const int64_t begin = first + split * n_blocks / plan.work.n_splits * kBlockKeys;
  ForEachVisibleKeyBlock(
      plan, q_span, QuerySegments(plan.index_mask, 0, plan.n_q), begin, end,
      [&](int64_t j0, int64_t n_keys, TileVisibility visibility) {
        for (int32_t kv = 0; kv < batch.n_kv; ++kv) {  // the item's KV heads, block by block
          const int32_t kv_head = batch.kv_head + kv;
          const RowRange rr = RowsOfKvHead(rows, kv);
          const KeyBlock block = LoadKeyBlock<true>(plan, worker, kv_head, j0, n_keys, scratch);
          PrefetchKeyBlock(plan, kv_head, j0 + n_keys, std::min(kBlockKeys, end - j0 - n_keys));
          DecodeScores(plan, rows, rr, kv_head, block);
          DecodeSoftmax(plan, rows, rr, block, visibility);
          DecodePV(plan, rows, rr, kv_head, block, scratch.v);
        }
      });
  StoreDecodeRows(plan, item, rows, worker.shared_ws);
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_DECODE_INL_H_
