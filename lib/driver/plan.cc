// Planning: a validated relattn_attention_desc resolved into a Plan (tensors
// and positions, bias, work split, workspace layout).
#include "lib/driver/plan.h"

#include <algorithm>
#include <cmath>

#include "lib/bias/t5.h"

namespace relattn {
namespace {

// positions[t] = positions[0] + t for t < n (differences compared unsigned:
// they may not fit in int64).
bool Consecutive(const int64_t* positions, int64_t n) {
  for (int64_t t = 1; t < n; ++t) {
    if (positions[t] <= positions[0] ||
        static_cast<uint64_t>(positions[t]) - static_cast<uint64_t>(positions[0]) !=
            static_cast<uint64_t>(t)) {
      return false;
    }
  }
  return true;
}

// Hands out consecutive regions of floats, each rounded to 16 floats (64 bytes).
class RegionAllocator {
 public:
  size_t Take(int64_t floats) {
    const size_t start = at_;
    at_ += static_cast<size_t>(RoundUp(floats, 16));
    return start;
  }
  size_t total() const { return at_; }

 private:
  size_t at_ = 0;
};

void LayOutDecode(const Plan& p, RegionAllocator& a, DecodeLayout& l) {
  const int64_t rows = int64_t{p.work.heads_per_item} * p.n_q;
  l.q_rows = a.Take(rows * p.d_pad);
  l.o_rows = a.Take(rows * p.dv_pad);
  l.row_max = a.Take(rows);
  l.row_sum = a.Take(rows);
  l.row_poison = a.Take(rows);
  l.s_rows = a.Take(rows * kBlockKeys);
  l.k_block = a.Take(kBlockKeys * p.d_pad);
  l.k_scale = a.Take(kBlockKeys);
  const bool int8_keys = p.k.dtype == RELATTN_I8;
  l.q_int = a.Take(int8_keys ? RoundUp(rows, 4) * RoundUp(p.d, 4) * 2 / 4 : 0);
  l.q_mul = a.Take(int8_keys ? rows : 0);
  l.v_block = a.Take(kBlockKeys * p.dv_pad);
}

void LayOutPrefill(const Plan& p, RegionAllocator& a, WorkspaceLayout& l) {
  const int64_t chunk_rows = int64_t{p.work.heads_per_item} * p.work.chunk_capacity;
  l.q_t = a.Take(chunk_rows * p.d);
  l.q_mul = a.Take(chunk_rows);
  l.o_t = a.Take(chunk_rows * p.dv);
  l.row_max = a.Take(chunk_rows);
  l.row_sum = a.Take(chunk_rows);
  l.row_poison = a.Take(chunk_rows);
  l.row_anchor = a.Take(2 * chunk_rows);
  l.row_anchor_f = a.Take(chunk_rows);
  l.sub_info = a.Take(kMaxQueryChunk / 2 * kSubTileInfoFloats);
  l.s_tile = a.Take(kBlockKeys * kMaxSubTile);
  l.k_block = a.Take(kBlockKeys * p.d);
  l.k_scale = a.Take(kBlockKeys);
  l.v_block = a.Take(kBlockKeys * p.dv);
  l.row = a.Take(p.d > p.dv ? p.d : p.dv);
  const int64_t bytes = p.int8_dot ? 2 * p.d4 : 0;                     // int16 or int8 channels
  l.q_int = a.Take(chunk_rows * (p.bf16_dot ? 2 * p.d4 : bytes) / 4);  // bf16: 2 x d bytes
  l.k_int = a.Take(kBlockKeys * bytes / 4);
  l.k_sum = a.Take(p.int8_dot ? kBlockKeys : 0);
}

// Lays out the worker scratch of the pipeline plan uses, then the bias tables.
void LayOut(Plan* p) {
  RegionAllocator a;
  const WorkSplit& w = p->work;
  if (w.decode) {
    LayOutDecode(*p, a, p->decode_ws);
  } else {
    LayOutPrefill(*p, a, p->ws);
  }
  p->bias_tables = a.Take(int64_t{w.heads_per_item} * p->bias.table_len);
  // Shaw vector: per head slot, each sub-tile's skewed table (chunk x
  // (2k + W) floats in all), the products q . a[r] in transit, and in decode
  // one padded table per query row.
  const bool shaw = p->bias.shaw_vector != nullptr;
  const int64_t shaw_k = shaw ? p->bias.shaw_vector_k : -1;
  p->shaw_skewed = a.Take(shaw && !w.decode ? int64_t{w.heads_per_item} * w.chunk_capacity *
                                                  (2 * shaw_k + kMaxSubTile)
                                            : 0);
  p->shaw_products = a.Take(shaw ? (2 * shaw_k + 1) * kMaxSubTile : 0);
  p->shaw_row_tables = a.Take(
      shaw && w.decode ? int64_t{w.heads_per_item} * p->n_q * (2 * shaw_k + 1 + 2 * kTablePad) : 0);
  const int64_t pairs = p->rope.on ? p->rope.pairs : 0;
  p->rope_top = a.Take(4 * pairs);
  p->rope_mid = a.Take(2 * pairs);
  p->rope_row = a.Take(2 * pairs);
  p->floats_per_worker = a.total();
}

TensorRef TensorOf(const relattn_tensor& t) {
  return {t.data,
          t.dtype,
          t.token_stride,
          t.head_stride,
          t.row_scales,
          t.scale_token_stride,
          t.scale_head_stride};
}

void ResolveTensors(const relattn_attention_desc& d, Plan* p) {
  p->q = TensorOf(d.q);
  p->k = TensorOf(d.k);
  p->v = TensorOf(d.v);
  p->o = d.o.data;
  p->o_dtype = d.o.dtype;
  p->o_token_stride = d.o.token_stride;
  p->o_head_stride = d.o.head_stride;
  p->q_pos = {d.q_pos.positions, d.q_pos.start};
  p->k_pos = {d.k_pos.positions, d.k_pos.start};
  // Consecutive position arrays (a KV cache before its ring wraps, say) take
  // the start + t paths of the kernels.
  for (PositionsRef* pos : {&p->q_pos, &p->k_pos}) {
    const int64_t n = pos == &p->q_pos ? d.n_q : d.n_kv;
    if (pos->positions && Consecutive(pos->positions, n)) *pos = {nullptr, pos->positions[0]};
  }
}

BiasRef ResolveBias(const relattn_bias& b) {
  BiasRef r{};
  r.params = b;
  switch (b.kind) {
    case RELATTN_BIAS_ALIBI: r.kind = BiasKind::kAlibi; break;
    case RELATTN_BIAS_T5:
      r.kind = BiasKind::kTable;
      r.table_radius =
          T5SaturationDistance(b.t5.num_buckets, b.t5.max_distance, b.t5.bidirectional != 0);
      break;
    case RELATTN_BIAS_SHAW:
      r.kind = BiasKind::kTable;
      r.table_radius = b.shaw.k;
      break;
    default: r.kind = BiasKind::kNone;
  }
  if (b.kind == RELATTN_BIAS_SHAW_VECTOR) {
    r.shaw_vector_k = b.shaw_vector.k;
    r.shaw_vector_per_head = b.shaw_vector.per_head != 0;
    r.shaw_vector = b.shaw_vector.table;
  }
  r.table_len = r.kind == BiasKind::kTable ? 2 * r.table_radius + 1 + 2 * kTablePad : 0;
  return r;
}

// Whether decode reads K and V where they lie, as [tokens][kv_heads][d]
// f16 / bf16 / f32 tensors (each KV head's rows a token apart, the heads of a token
// side by side): then work items take several KV heads (kv_per_item).
bool ReadsTokenMajorTensors(const Plan& p) {
  const auto token_major = [&](const TensorRef& t) {
    return (t.dtype == RELATTN_F16 || t.dtype == RELATTN_BF16 || t.dtype == RELATTN_F32) &&
           t.head_stride > 0 && t.head_stride < t.token_stride;
  };
  return p.n_q <= kDecodeMaxQueries && !p.rope.on && p.n_kv_heads > 1 &&
         int64_t{p.group} * p.n_q * 2 <= kMaxDecodeRows && token_major(p.k) && token_major(p.v);
}

// Work items and the shared part of the workspace (decode partial states,
// RoPE tables); see WorkSplit.
void SplitWork(Plan* p) {
  WorkSplit& w = p->work;
  const int64_t rows_per_kv_head = int64_t{p->group} * p->n_q;
  w.kv_capacity = ReadsTokenMajorTensors(*p)  // then kMaxDecodeRows / rows_per_kv_head >= 2
                      ? static_cast<int32_t>(
                            std::min<int64_t>(p->n_kv_heads, kMaxDecodeRows / rows_per_kv_head))
                      : 1;
  w.heads_per_item = w.kv_capacity > 1             ? w.kv_capacity * p->group
                     : p->group < kMaxHeadsPerItem ? p->group
                                                   : kMaxHeadsPerItem;
  w.head_batches = (p->group + w.heads_per_item - 1) / w.heads_per_item;
  const int64_t state_per_query = int64_t{w.heads_per_item} * (p->d + p->dv) * 4;
  const int64_t chunk = kItemStateBytes / state_per_query / kMinQueryChunk * kMinQueryChunk;
  w.chunk_capacity = std::min(std::max(chunk, kMinQueryChunk), kMaxQueryChunk);
  w.chunk = w.chunk_capacity;
  w.n_chunks = (p->n_q + w.chunk - 1) / w.chunk;
  w.decode = p->n_q <= kDecodeMaxQueries;
  const int64_t split_by_keys = (p->n_valid_kv - p->first_valid_kv + kSplitKeys - 1) / kSplitKeys;
  w.n_splits =
      w.decode ? static_cast<int32_t>(std::clamp<int64_t>(split_by_keys, 1, kMaxSplits)) : 1;
  w.kv_per_item = static_cast<int32_t>(
      std::clamp<int64_t>(int64_t{p->n_kv_heads} * w.n_splits / kMinDecodeItems, 1, w.kv_capacity));
  w.n_work_items = NumHeadBatches(*p) * (w.decode ? w.n_splits : w.n_chunks);
  // Sized for kMaxSplits whatever n_kv is, so the workspace does not depend on n_kv.
  // An item's partial state: its rows' o, max, sum, poison (grouped KV heads:
  // the rows of kv_per_item of them, which depends on n_kv; the region holds
  // the most any kv_per_item <= kv_capacity needs, so it does not).
  const int64_t row_floats = p->n_q * (p->dv_pad + 3);
  const int64_t kv_rows = RoundUp(int64_t{p->group} * row_floats, 16);
  w.partial_floats_per_item = !w.decode ? 0
                              : w.kv_capacity > 1
                                  ? static_cast<size_t>(w.kv_per_item * kv_rows)
                                  : static_cast<size_t>(RoundUp(w.heads_per_item * row_floats, 16));
  const int64_t batch_slots = w.kv_capacity > 1
                                  ? (p->n_kv_heads + w.kv_capacity - 1) * kv_rows
                                  : int64_t{p->n_kv_heads} * w.head_batches *
                                        static_cast<int64_t>(w.partial_floats_per_item);
  p->rope_tables = w.decode ? static_cast<size_t>(batch_slots) * kMaxSplits : 0;
  p->shared_floats =
      p->rope_tables +
      static_cast<size_t>(p->rope.on ? RoundUp(RopeTableFloats(p->rope.pairs), 16) : 0);
}

}  // namespace

void ResolvePlan(const relattn_attention_desc& d, const RopeParams& rope, int64_t k_min,
                 int64_t k_max, Plan* p) {
  *p = Plan{};
  p->rope = rope;
  p->n_q = d.n_q;
  p->n_kv = d.n_kv;
  p->n_valid_kv = d.mask.n_valid_kv <= 0 ? d.n_kv : d.mask.n_valid_kv;
  p->first_valid_kv = std::min(d.mask.first_valid_kv, p->n_valid_kv);
  p->n_heads = d.n_heads;
  p->n_kv_heads = d.n_kv_heads;
  p->group = d.n_heads / d.n_kv_heads;
  p->d = d.head_dim;
  p->dv = d.v_head_dim ? d.v_head_dim : d.head_dim;
  p->d_pad = RoundUp(p->d, kMaxLanes);
  p->dv_pad = RoundUp(p->dv, kMaxLanes);
  p->int8_dot = d.q.dtype == RELATTN_I8 && d.k.dtype == RELATTN_I8 && !rope.on;
  p->d4 = RoundUp(p->d, 4);
  const bool fast = d.precision == RELATTN_PRECISION_FAST;
  const bool qk_bf16 = d.q.dtype == RELATTN_BF16 && d.k.dtype == RELATTN_BF16;
  const bool qk_f16 = d.q.dtype == RELATTN_F16 && d.k.dtype == RELATTN_F16;
  p->bf16_dot = (qk_bf16 || (fast && qk_f16)) && !rope.on && p->d % 2 == 0;
  p->bf16_pv = p->bf16_dot && fast && (d.v.dtype == RELATTN_BF16 || d.v.dtype == RELATTN_F16);
  ResolveTensors(d, p);
  p->k_min = k_min;
  p->k_max = k_max;
  const double scale = d.scale != 0.0f ? d.scale : 1.0 / std::sqrt(double(d.head_dim));
  p->scale_log2 = static_cast<float>(scale * M_LOG2E);
  if (d.softcap != 0.0f) {
    p->softcap_log2 = static_cast<float>(d.softcap * M_LOG2E);
    p->softcap_inv_log2 = static_cast<float>(1.0 / (d.softcap * M_LOG2E));
  }
  p->sinks = d.sinks;
  p->lse = d.lse;
  p->mask = {d.mask.causal != 0, d.mask.window};
  p->index_mask = {d.mask.q_segments,
                   d.mask.k_segments,
                   d.mask.allowed,
                   d.mask.allowed_row_words,
                   d.mask.allowed_key_offset,
                   true,
                   true};
  for (int64_t j = 1; d.mask.k_segments && j < d.n_kv; ++j) {
    const int32_t id = d.mask.k_segments[j], before = d.mask.k_segments[j - 1];
    if (id < before) p->index_mask.k_sorted = false;
    // Unsigned: INT64_MAX after INT64_MAX - 1 is consecutive, nothing overflows.
    if (id == before && uint64_t(p->k_pos.At(j)) - uint64_t(p->k_pos.At(j - 1)) != 1) {
      p->index_mask.k_runs_consecutive = false;
    }
  }
  p->bias = ResolveBias(d.bias);
  SplitWork(p);
  LayOut(p);
}

void FitWorkItemsToThreads(int32_t n_threads, Plan* plan) {
  WorkSplit& w = plan->work;
  if (w.decode || n_threads <= 1) return;
  const int64_t per_chunk = int64_t{plan->n_kv_heads} * w.head_batches;
  // A chunk stays a multiple of every target's sub-tile (kMaxSubTile): the
  // sub-tiles, and so the output bits, are those of a serial call.
  while (w.chunk / 2 >= kMinQueryChunk && w.chunk / 2 % kMaxSubTile == 0 &&
         w.n_work_items < kWorkItemsPerThread * int64_t{n_threads}) {
    w.chunk /= 2;
    w.n_chunks = (plan->n_q + w.chunk - 1) / w.chunk;
    w.n_work_items = per_chunk * w.n_chunks;
  }
}

}  // namespace relattn
