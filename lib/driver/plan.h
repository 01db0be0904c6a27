// The validated, resolved form of one relattn_attention_desc: what the kernel
// reads. Built by BuildPlan() (lib/api/validate.cc: validation, then
// ResolvePlan below, lib/driver/plan.cc); immutable during a call.
#ifndef RELATTN_LIB_DRIVER_PLAN_H_
#define RELATTN_LIB_DRIVER_PLAN_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "lib/rope/rope.h"
#include "relattn/relattn.h"

namespace relattn {

// Tile shape. Prefill work is split into work items of one KV head, up to
// kMaxHeadsPerItem of its query heads, and a chunk of consecutive queries.
// Inside, queries lie in vector lanes: a sub-tile is 2 vectors of queries
// (2 * lanes, at most kMaxSubTile: the kernels cap vectors at kMaxLanes
// floats); keys stream through in blocks of kBlockKeys, converted to f32 once
// per block for all sub-tiles of the item.
inline constexpr int64_t kMaxLanes = 16;
inline constexpr int64_t kMaxSubTile = 2 * kMaxLanes;
inline constexpr int64_t kBlockKeys = 64;
inline constexpr int32_t kMaxHeadsPerItem = 8;
// Queries per work item (Plan::chunk_capacity): as many as keep the item's query
// state (head slots x chunk x (d + dv) floats of q_t and o_t) within
// kItemStateBytes, rounded down to a multiple of kMinQueryChunk (a multiple
// of every sub-tile), between kMinQueryChunk and kMaxQueryChunk; never
// dependent on n_q (nor is the workspace). Every sub-tile of an item shares
// each converted key block, so a larger item converts (and waits on L2 for)
// K and V less often; 256 KB of state stays within a 512 KB - 1 MB L2.
inline constexpr int64_t kItemStateBytes = 256 * 1024;
inline constexpr int64_t kMinQueryChunk = 64;
inline constexpr int64_t kMaxQueryChunk = 256;
inline constexpr int64_t kSubTileInfoFloats = 12;  // >= sizeof(SubTileInfo) / 4
// A call on several workers splits its chunks until each worker has this many
// work items (FitWorkItemsToThreads).
inline constexpr int64_t kWorkItemsPerThread = 16;
// Up to this many queries take the decode pipeline: keys stream one row at a
// time against every query row (dot products along the head dim), since
// queries in lanes would leave most lanes idle.
inline constexpr int64_t kDecodeMaxQueries = 7;
// Decode splits the keys of a long cache among up to kMaxSplits work items
// (about kSplitKeys keys each) whose partial softmax states are merged after:
// threads get work even with one KV head. The split depends only on n_kv, so
// the output does not depend on the thread count.
inline constexpr int64_t kSplitKeys = 2048;
inline constexpr int32_t kMaxSplits = 8;
// Query rows (heads x queries) one decode work item holds at most.
inline constexpr int32_t kMaxDecodeRows = kMaxHeadsPerItem * int32_t{kDecodeMaxQueries};
// Decode over [tokens][kv_heads][d] tensors groups KV heads into work items
// (WorkSplit::kv_per_item) while at least this many items remain for threads.
inline constexpr int64_t kMinDecodeItems = 8;
// A KV cache stores K in key groups of kKeyGroup tokens, transposed so that
// one channel of the group's keys is contiguous ([group][d][kKeyGroup]):
// decode loads the scores of a group's keys straight into vector lanes.
inline constexpr int64_t kKeyGroup = 16;
// Edge copies on each side of a padded bias table: a window of up to
// kTablePad consecutive offsets reads inside the table wherever it starts.
inline constexpr int64_t kTablePad = kBlockKeys > kMaxSubTile ? kBlockKeys : kMaxSubTile;
// Largest clipping distance of the Shaw vector form: its per-query tables
// take chunk_capacity x (2k + kMaxSubTile) floats of workspace per head slot.
inline constexpr int32_t kShawVectorMaxK = 64;

inline constexpr int64_t RoundUp(int64_t x, int64_t multiple) {
  return (x + multiple - 1) / multiple * multiple;
}

// A strided input tensor resolved to element offsets (elements, not bytes).
struct TensorRef {
  const void* data;
  relattn_dtype dtype;
  int64_t token_stride;
  int64_t head_stride;
  const float* row_scales;  // I8: scale of row (t, h) at t * scale_token_stride + h * ...
  int64_t scale_token_stride, scale_head_stride;
  float RowScale(int64_t t, int32_t h) const {
    return row_scales[t * scale_token_stride + h * scale_head_stride];
  }
};

// The key-group layout of a KV cache's K (kv_cache.h), shared by the cache
// that writes it and the kernels that read it: per KV head
// ceil(capacity / kKeyGroup) groups of [d][kKeyGroup] elements.
inline int64_t KeyGroupHeadStride(int64_t capacity, int32_t d) {
  return (capacity + kKeyGroup - 1) / kKeyGroup * kKeyGroup * d;
}
// Element of the first key of the group holding `slot`, channel 0, of head h
// (slot s, channel c: + s % kKeyGroup + c * kKeyGroup).
inline int64_t KeyGroupOffset(int64_t head_stride, int32_t h, int64_t slot, int32_t d) {
  return h * head_stride + slot / kKeyGroup * d * kKeyGroup;
}

// K and V of a KV cache (kv_cache.h): K in key groups, V rows [slot][dv] per
// head, and the tokens whose K or V row held a non-finite value (stored as
// zeros, flagged here).
struct CacheRef {
  bool on;
  int64_t k_head_stride;  // elements of K per KV head: KeyGroupHeadStride
  const uint8_t* bad;     // [n_kv_heads][capacity]: 1 = non-finite K or V row
  const float* k_scales;  // I8 storage: [n_kv_heads][capacity] row scales
  int64_t capacity;
  // The first key of group g (slot 16 g), channel 0, of head h.
  int64_t KeyGroupOffset(int32_t h, int64_t slot, int32_t d) const {
    return relattn::KeyGroupOffset(k_head_stride, h, slot, d);
  }
};

struct PositionsRef {
  const int64_t* positions;  // NULL: token t is at start + t
  int64_t start;
  int64_t At(int64_t t) const { return positions ? positions[t] : start + t; }
};

enum class BiasKind { kNone, kAlibi, kTable };

// Per-worker scratch, in floats, each region 64-byte aligned. Sizes depend on
// head dims, the GQA group and the bias table only, never on n_q or n_kv.
// Sub-tile s (queries [s * W, s * W + W) of the chunk, W lanes) of head slot g
// owns the W-column slices starting at (g * chunk_capacity + s * W) of q_t, o_t,
// row_max, row_sum and row_poison.
struct WorkspaceLayout {
  size_t q_t;    // heads_per_item x chunk_capacity x d: queries transposed, [d][W] per sub-tile,
                 // pre-scaled to log2 units (int8 queries: their integers)
  size_t q_mul;  // heads_per_item x chunk_capacity: what a query's scores are multiplied by
                 // when K is int8 (its row scale * scale_log2; 1 for float queries)
  size_t o_t;    // heads_per_item x chunk_capacity x dv: unnormalised output, [dv][W] per sub-tile
  size_t row_max;     // heads_per_item x chunk_capacity: running max (log2 units)
  size_t row_sum;     // heads_per_item x chunk_capacity: running sum of probabilities
  size_t row_poison;  // heads_per_item x chunk_capacity: 1 where the query saw a non-finite value
  size_t row_anchor;  // heads_per_item x chunk_capacity int64 (2 floats each): ALiBi lane anchors
  // heads_per_item x chunk_capacity: the lane anchors as floats for the vector
  // form (LaneAnchorsF, bias_qlanes-inl.h); NaN in a sub-tile's lane 0: none
  size_t row_anchor_f;
  // kMaxQueryChunk / 2 (the most sub-tiles of a chunk, 2 lanes each) entries
  // of kSubTileInfoFloats: what each sub-tile's queries are (prefill-inl.h's
  // SubTileInfo), computed once per work item
  size_t sub_info;
  size_t s_tile;   // kBlockKeys x kMaxSubTile: scores, then probabilities, [key][lane]
  size_t k_block;  // kBlockKeys x d: f16 keys converted to f32
  size_t k_scale;  // kBlockKeys: int8 keys' row scales (0 for a non-finite row)
  size_t v_block;  // kBlockKeys x dv: f16 values converted to f32
  size_t row;      // max(d, dv): one query or output row in transit
  // int8_dot only (else empty): the queries packed for the integer kernel
  // (PackQueriesInt: 2 x d4 bytes per query, heads_per_item x chunk_capacity
  // queries; bf16_dot: PackQueriesBf16's pairs, 2 x d bytes), the int8 keys
  // ([kBlockKeys][d4] int8 or int16), their sums (int32).
  size_t q_int, k_int, k_sum;
  size_t floats_per_worker;
};

// The decode pipeline's view of the worker scratch (floats, 64-byte aligned).
// rows = heads_per_item x n_q query rows.
struct DecodeLayout {
  size_t q_rows;      // rows x d_pad: queries pre-scaled to log2 units, zero-padded
  size_t o_rows;      // rows x dv_pad: unnormalised output
  size_t row_max;     // rows
  size_t row_sum;     // rows
  size_t row_poison;  // rows: 1 where the query saw a non-finite value
  size_t s_rows;      // rows x kBlockKeys: scores, then probabilities
  size_t k_block;     // kBlockKeys x d_pad: converted keys, zero-padded
  size_t k_scale;     // kBlockKeys: int8 keys' row scales (0 for a non-finite row)
  // Int8 KV-cache keys: the rows quantised (QuantizeDecodeRows: [rows4][d4]
  // int16 or bytes, rows4 = rows rounded up to 4) and their scales *
  // scale_log2 ([rows]).
  size_t q_int, q_mul;
  size_t v_block;  // kBlockKeys x dv_pad: converted values, zero-padded
  size_t floats_per_worker;
};

// Masks as the header defines them (the key count n_valid_kv is Plan's).
struct MaskRef {
  bool causal;
  int64_t window;  // 0: none
};

// The masks by token index (lib/driver/index_mask.h), pointers into caller
// memory; on() false: none.
struct IndexMaskRef {
  const int32_t* q_segments;  // [n_q] and k_segments [n_kv], or both NULL
  const int32_t* k_segments;
  const uint64_t* allowed;  // [n_q][allowed_row_words] bits for keys >= allowed_key_offset
  int64_t allowed_row_words, allowed_key_offset;
  bool k_sorted;            // k_segments never decrease along the keys (each id one run)
  bool k_runs_consecutive;  // within a run of one id, key positions rise by one
  bool on() const { return q_segments || allowed; }
};

// The position bias, resolved; its values in log2 units (times log2(e)).
struct BiasRef {
  BiasKind kind;
  // The caller's parameters (per-head slopes and tables: pointers into
  // caller memory that the call reads, never a pointer to the descriptor).
  relattn_bias params;
  // Table schemes: bias(r) for r = key - query is constant for r <=
  // -table_radius and for r >= table_radius. The padded table of a head
  // stores, at index x, bias(clamp(table_radius + kTablePad - x,
  // -table_radius, table_radius)): r decreasing along x, so that a row of
  // queries (r falling by one per lane) reads consecutive entries; kTablePad
  // edge copies on each side.
  int64_t table_radius;
  int64_t table_len;  // 2 * table_radius + 1 + 2 * kTablePad, or 0
  // Shaw vector form (kind kNone for the scalar part): a[h][2k+1][d] or
  // a[2k+1][d]; NULL when off.
  const float* shaw_vector;
  int32_t shaw_vector_k;
  bool shaw_vector_per_head;
};

// How the work is cut into work items.
struct WorkSplit {
  // Decode over [tokens][kv_heads][d] f16 / f32 tensors read in place (a KV
  // head's rows a whole token apart): the KV heads per work item, whose rows
  // of a token lie side by side and are read block by block together; as many
  // as keep kMinDecodeItems items (depends on n_kv), up to kv_capacity; else 1.
  int32_t kv_per_item;
  // The most KV heads an item may hold for this layout and shape, whatever n_kv
  // (min(n_kv_heads, kMaxDecodeRows / (group * n_q)) there, else 1): the
  // workspace is sized for it.
  int32_t kv_capacity;
  // Query heads an item's workspace holds: kv_capacity * group if kv_capacity
  // > 1, else min(group, kMaxHeadsPerItem).
  int32_t heads_per_item;
  int32_t head_batches;    // ceil(group / heads_per_item)
  int64_t chunk_capacity;  // queries per head slot of the workspace (kItemStateBytes)
  int64_t chunk;           // queries per prefill work item: chunk_capacity, or less to
                           // give more workers items (FitWorkItemsToThreads)
  int64_t n_chunks;        // ceil(n_q / chunk)
  bool decode;             // n_q <= kDecodeMaxQueries: the decode pipeline
  int32_t n_splits;        // decode: key splits per (KV head, head batch); 1: no merge
  int64_t n_work_items;    // prefill: n_kv_heads * head_batches * n_chunks;
                           // decode: n_kv_heads * head_batches * n_splits
  // Decode with n_splits > 1: partial states, shared by all workers, before
  // the per-worker scratch. Work item i owns [rows][dv_pad] of o, then [rows]
  // max, [rows] sum, [rows] poison, at i * partial_floats_per_item; rows = the
  // item's query heads * n_q (<= heads_per_item * n_q).
  size_t partial_floats_per_item;
};

struct Plan {
  int64_t n_q, n_kv;
  int64_t n_valid_kv;                  // keys j >= n_valid_kv are hidden; 1..n_kv
  int64_t first_valid_kv;              // keys j < first_valid_kv are hidden; 0..n_valid_kv
  int32_t n_heads, n_kv_heads, group;  // group = n_heads / n_kv_heads
  int32_t d, dv;
  int64_t d_pad, dv_pad;  // d, dv rounded up to kMaxLanes (decode rows)
  // Q and K both int8 without RoPE: prefill may take the integer dot-product
  // path (lib/kernels/int_dot-inl.h) on rows of d4 = d rounded up to 4 channels.
  bool int8_dot;
  int64_t d4;
  // Q and K both bf16, or both f16 with precision FAST, without RoPE, d even:
  // prefill may take the bf16 dot-product path (Bf16DotPrefill) on pairs of
  // channels; f16 queries, key blocks and values are rounded to bf16 (nearest
  // even) as they are packed.
  bool bf16_dot;
  // bf16_dot with bf16 or f16 V and precision FAST: P.V may round the
  // probabilities (and f16 values) to bf16 (Bf16DotPrefill's pv_qlanes).
  bool bf16_pv;
  TensorRef q, k, v;
  CacheRef cache;  // on: k and v are a KV cache's (k.token_stride, head_stride unused)
  void* o;
  relattn_dtype o_dtype;
  int64_t o_token_stride, o_head_stride;
  PositionsRef q_pos, k_pos;
  int64_t k_min, k_max;  // range of the positions of the valid keys (first..n_valid_kv - 1)
  float scale_log2;      // scale * log2(e): scores live in the log2 domain
  // Logit soft-capping in log2 units: content scores x become
  // softcap_log2 * tanh(x * softcap_inv_log2) (softcap * log2(e) and its
  // inverse); 0: off.
  float softcap_log2, softcap_inv_log2;
  const float* sinks;  // [n_heads] sink logits (natural units), or NULL (lib/driver/sinks.h)
  float* lse;          // [n_q][n_heads] output, or NULL (lib/driver/lse.h)

  // Rotary embedding of Q (on load) and K (on conversion, unless it comes
  // from a KV cache, which rotated it at append); rope.on false: none.
  RopeParams rope;
  MaskRef mask;
  IndexMaskRef index_mask;
  BiasRef bias;
  WorkSplit work;

  // The workspace: shared_floats floats all workers write disjoint parts of,
  // then floats_per_worker floats per worker (offsets in floats).
  size_t rope_tables;  // shared: RopeTableFloats(rope.pairs) (lib/rope/rope.h), after the partials
  size_t shared_floats;
  WorkspaceLayout ws;      // prefill regions
  DecodeLayout decode_ws;  // decode regions
  size_t bias_tables;      // heads_per_item x table_len: padded reversed bias tables
  // RoPE, per worker: cos, sin of a * 4096 * theta (double, 2 x pairs), of
  // (a * 4096 + b * 64) * theta (f32, 2 x pairs), of the row's position (f32,
  // 2 x pairs); see rope-inl.h.
  size_t rope_top, rope_mid, rope_row;
  // Shaw vector form, per worker: prefill's skewed per-sub-tile tables
  // (shaw-vector-inl.h), the products q . a[r] of one sub-tile or row in
  // transit ((2k + 1) x kMaxSubTile), decode's padded per-row tables.
  size_t shaw_skewed, shaw_products, shaw_row_tables;
  size_t floats_per_worker;
};

// Resolves a validated desc (lib/api/validate.cc) into *plan: tensors,
// positions (consecutive position arrays become start + t), bias, work
// split and workspace layout. k_min, k_max: the range of the valid keys'
// positions; rope: the resolved RoPE parameters.
void ResolvePlan(const relattn_attention_desc& desc, const RopeParams& rope, int64_t k_min,
                 int64_t k_max, Plan* plan);

// For a call on n_threads workers: halves the prefill chunk (not below
// kMinQueryChunk, always a multiple of kMaxSubTile: sub-tiles do not depend
// on the thread count) until there are kWorkItemsPerThread work items per worker,
// so that dynamic scheduling balances items of unequal cost (causal). The
// workspace layout (chunk_capacity) stays as it is.
void FitWorkItemsToThreads(int32_t n_threads, Plan* plan);

// The query heads of one KV head that a work item takes together: heads
// [head0, head0 + n_heads) of KV head kv_head.
struct HeadBatch {
  int32_t kv_head, head0, n_heads;
  int32_t n_kv = 1;  // KV heads kv_head .. kv_head + n_kv - 1 (WorkSplit::kv_per_item)
};

// Head batches of a call: ceil(n_kv_heads / kv_per_item) * head_batches.
inline int64_t NumHeadBatches(const Plan& plan) {
  const int64_t kv_groups = (plan.n_kv_heads + plan.work.kv_per_item - 1) / plan.work.kv_per_item;
  return kv_groups * plan.work.head_batches;
}

// Batch `index` (0 .. NumHeadBatches - 1): KV head index / head_batches, its
// (index % head_batches)-th group of heads_per_item heads; with kv_per_item > 1,
// KV heads index * kv_per_item .. and all their query heads.
inline HeadBatch HeadBatchOf(const Plan& plan, int64_t index) {
  if (plan.work.kv_per_item > 1) {
    const int32_t kv0 = static_cast<int32_t>(index) * plan.work.kv_per_item;
    const int32_t n_kv = std::min(plan.work.kv_per_item, plan.n_kv_heads - kv0);
    return {kv0, kv0 * plan.group, n_kv * plan.group, n_kv};
  }
  const int32_t kv_head = static_cast<int32_t>(index / plan.work.head_batches);
  const int32_t head0 =
      kv_head * plan.group +
      static_cast<int32_t>(index % plan.work.head_batches) * plan.work.heads_per_item;
  const int32_t n_heads = std::min(plan.work.heads_per_item, (kv_head + 1) * plan.group - head0);
  return {kv_head, head0, n_heads};
}

// Fills out the per-head ALiBi slope in log2 units (multiplied by log2(e)).
float AlibiSlopeLog2(const Plan& plan, int32_t head);

// Fills table[0, table_len) for head with log2(e) * bias, laid out as the Plan
// comment on table_radius says.
void FillBiasTable(const Plan& plan, int32_t head, float* table);

}  // namespace relattn

#endif  // RELATTN_LIB_DRIVER_PLAN_H_
