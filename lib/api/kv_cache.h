// The KV cache's layout in caller memory (relattn_kv_cache is opaque in the
// public header). The header holds no pointer: every region is found from
// the cache's own address and its desc, so a byte copy of a cache (memcpy to
// other memory of the same size and alignment) is a cache of its own.
#ifndef RELATTN_LIB_API_KV_CACHE_H_
#define RELATTN_LIB_API_KV_CACHE_H_

#include <cstdint>

#include "lib/common/q4.h"
#include "lib/driver/plan.h"
#include "lib/rope/rope.h"
#include "relattn/relattn.h"

struct relattn_kv_cache {
  uint64_t magic;              // kKvCacheMagic once initialised
  relattn_kv_cache_desc desc;  // v_head_dim resolved (never 0), rope's pointers NULL
  int64_t length;              // tokens held, <= capacity
  int64_t next_slot;           // slot the next token goes to, < capacity
  int64_t next_position;       // position of the next token appended without positions
  uint32_t appending;          // 1 while an append or truncate runs (atomic): another fails
  uint32_t version;            // kKvCacheLayoutVersion: the layout below and of the regions
  float k_max_abs;             // largest |x| stored in K (after RoPE; I8: 127 x row scale)
  float v_max_abs;             // ... in V (I8 too), both since the last clear (validate_range.h)
  relattn::RopeParams rope;    // desc.rope resolved: what K was rotated with
};

namespace relattn {

inline constexpr uint64_t kKvCacheMagic = 0x72656c6174746e4bull;  // "relattnK"
// The header's and the regions' layout: a cache saved by a library of
// another version is refused (relattn_kv_cache_attach), not misread.
inline constexpr uint32_t kKvCacheLayoutVersion = 3;

// True if cache's header starts with the magic and this layout version.
inline bool IsKvCache(const relattn_kv_cache* cache) {
  return cache && cache->magic == kKvCacheMagic && cache->version == kKvCacheLayoutVersion;
}

// The regions of an initialised cache, after its header (64-byte aligned):
//   positions  [capacity] int64: position of the token in each slot
//   bad        [n_kv_heads][capacity] uint8: 1 where the appended K or V row
//              held a NaN or infinity (stored as zeros; queries seeing it give NaN)
//   k_scales   I8 K: [n_kv_heads][capacity] f32 row scales (else empty)
//   v_scales   I8 V: [n_kv_heads][capacity] f32 row scales (else empty)
//   k          [n_kv_heads][groups][head_dim][kKeyGroup] of desc.k_dtype, groups =
//              ceil(capacity / kKeyGroup): slot s of head h, channel c at
//              ((h * groups + s / 16) * head_dim + c) * 16 + s % 16; Q4:
//              [n_kv_heads][capacity] rows of head_dim / 32 q4_0 blocks
//   v          [n_kv_heads][capacity][v_head_dim] of desc.v_dtype (Q4: rows of
//              v_head_dim / 32 q4_0 blocks)
//   sink_k     sink_positions CACHE with RoPE: [n_sink_tokens][n_kv_heads][head_dim]
//              f32, the sink tokens' K as appended, unrotated (else empty)
struct KvCacheView {
  int64_t* positions;
  uint8_t* bad;
  float* k_scales;
  float* v_scales;
  void* k;
  void* v;
  float* sink_k;
};

// Elements of one KV head's K region: key groups, or (Q4) capacity rows.
inline int64_t KeyHeadElements(const relattn_kv_cache_desc& d) {
  return d.k_dtype == RELATTN_Q4 ? d.capacity * Q4RowBytes(d.head_dim)
                                 : KeyGroupHeadStride(d.capacity, d.head_dim);
}

// Floats of the sink_k region desc needs (0 unless CACHE positions with RoPE).
inline uint64_t SinkKeyFloats(const relattn_kv_cache_desc& d) {
  if (d.sink_positions != RELATTN_SINK_POSITIONS_CACHE || d.rope.pairing == RELATTN_ROPE_NONE) {
    return 0;
  }
  return uint64_t(d.n_sink_tokens) * uint64_t(d.n_kv_heads) * uint64_t(d.head_dim);
}
KvCacheView ViewOf(relattn_kv_cache* cache);
inline KvCacheView ViewOf(const relattn_kv_cache* cache) {
  return ViewOf(const_cast<relattn_kv_cache*>(cache));
}

// Checks that cache holds a cache relattn_kv_cache_init laid out, aligned,
// that no append to it runs (RELATTN_ERR_BUSY), and that its header is
// consistent (desc valid, length and slots within capacity), so that a
// copied or stored cache is checked when used; names `what`.
relattn_status CheckKvCache(const relattn_kv_cache* cache, const char* what);

// cache not NULL, with the magic and layout version, and aligned (names `what`).
relattn_status CheckKvCacheMemory(const relattn_kv_cache* cache, const char* what);

// The header's desc valid, its length and slots within capacity (read while
// no append runs: an append changes them): RELATTN_ERR_BAD_CACHE.
relattn_status CheckKvCacheHeader(const relattn_kv_cache* cache, const char* what);

// The desc checks of relattn_kv_cache_size (rope resolved into *rope unless
// rope is NULL), and the cache's bytes fit in size_t.
relattn_status CheckDescAndSize(const relattn_kv_cache_desc* d, RopeParams* rope);

// Claims the cache for one append or truncate (RELATTN_ERR_BUSY if another
// holds it); EndAppend releases it and returns status.
relattn_status BeginAppend(relattn_kv_cache* c);
relattn_status EndAppend(relattn_kv_cache* c, relattn_status status);

// Copies desc to *resolved; if desc->kv_cache is set, fills the key-side
// fields (n_kv, n_kv_heads, head dims, k, v, k_pos) from the cache after
// checking that the caller left them empty or equal, and clears kv_cache.
relattn_status ResolveKvCache(const relattn_attention_desc* desc, relattn_attention_desc* resolved);

// Bytes of caller memory an initialised cache spans (header and regions).
uint64_t KvCacheBytes(const relattn_kv_cache* cache);

// Points plan->cache at desc->kv_cache's key groups and flags (off without a
// cache). Call after BuildPlan on the resolved desc.
void AttachKvCache(const relattn_attention_desc* desc, Plan* plan);

// Converts token t (at position p) of k and v (all heads, validated) into
// cache slot `slot`: K rotated by rope into its key group, V as a row. A head
// whose K or V row is not finite stores zeros and is flagged.
void StoreToken(relattn_kv_cache* cache, const KvCacheView& view, const RopeParams& rope,
                const relattn_tensor& k, const relattn_tensor& v, int64_t t, int64_t p,
                int64_t slot);

// Row (t, h) of src as f32 into row[0, dim), rotated by rope with the
// token's angles (if rope is non-null and on), then rounded as `storage`
// holds it (F16: to f16; F32, I8: as is); false if it holds a NaN or inf.
bool LoadTokenRow(const relattn_tensor& src, int64_t t, int32_t h, int64_t dim,
                  relattn_dtype storage, const RopeParams* rope, const RopeAngles& angles,
                  float* row);

// Stores k_row (head_dim floats, finite, rotated) as head h's K in `slot`
// (its key group, in the storage dtype; I8 with its row scale) and raises
// k_max_abs.
void StoreKeyRow(relattn_kv_cache* c, const KvCacheView& view, int32_t h, int64_t slot,
                 const float* k_row);

// n_sink_tokens in 0..capacity - 1 and sink_positions TEXT or CACHE, both
// beyond their defaults in ring mode only (RELATTN_ERR_BAD_SINK_TOKENS).
relattn_status CheckSinkTokens(const relattn_kv_cache_desc& d);

// CACHE sink positions with RoPE: keeps token t of k, appended into sink
// slot `slot`, unrotated in the sink_k region (else does nothing).
void KeepSinkKey(relattn_kv_cache* cache, const KvCacheView& view, const relattn_tensor& k,
                 int64_t t, int64_t slot);

// CACHE sink positions, once the window is full: moves sink s to position
// oldest - n_sink_tokens + s (oldest: the position of the window's oldest
// token, in slot next_slot), re-rotating its K from sink_k with RoPE (a row
// flagged non-finite keeps its zeros, one that the rotation takes beyond the
// storage's range becomes zeros and flagged; V is not touched).
void MoveSinkTokens(relattn_kv_cache* cache, const KvCacheView& view);

// Moves sinks 0..count - 1 (count <= n_sink_tokens, held) to positions
// first + s, re-rotating their K from sink_k as MoveSinkTokens does.
void MoveSinksTo(relattn_kv_cache* cache, const KvCacheView& view, int64_t first, int64_t count);

}  // namespace relattn

#endif  // RELATTN_LIB_API_KV_CACHE_H_
