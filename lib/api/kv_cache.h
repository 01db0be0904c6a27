// The KV cache's layout in caller memory (relattn_kv_cache is opaque in the
// public header).
#ifndef RELATTN_LIB_API_KV_CACHE_H_
#define RELATTN_LIB_API_KV_CACHE_H_

#include <cstdint>

#include "lib/driver/plan.h"
#include "relattn/relattn.h"

struct relattn_kv_cache {
  uint64_t magic;              // kKvCacheMagic once initialised
  relattn_kv_cache_desc desc;  // v_head_dim resolved (never 0)
  int64_t length;              // tokens held, <= capacity
  int64_t next_slot;           // slot the next token goes to
  int64_t next_position;       // position of the next token appended without positions
  int64_t* positions;          // [capacity]: position of the token in each slot
  void* k;          // [n_kv_heads][groups][head_dim][kKeyGroup] of desc.k_dtype, groups =
                    // ceil(capacity / kKeyGroup): slot s of head h, channel c at
                    // ((h * groups + s / 16) * head_dim + c) * 16 + s % 16
  void* v;          // [n_kv_heads][capacity][v_head_dim] of desc.v_dtype
  float* k_scales;  // I8 K: [n_kv_heads][capacity] row scales (else unused)
  uint8_t* bad;     // [n_kv_heads][capacity]: 1 where the appended K or V row held a NaN or
                    // infinity (the row is stored as zeros; queries that see it give NaN)
};

namespace relattn {

inline constexpr uint64_t kKvCacheMagic = 0x72656c6174746e4bull;  // "relattnK"

// Checks that cache was initialised by relattn_kv_cache_init; names `what`.
relattn_status CheckKvCache(const relattn_kv_cache* cache, const char* what);

// Copies desc to *resolved; if desc->kv_cache is set, fills the key-side
// fields (n_kv, n_kv_heads, head dims, k, v, k_pos) from the cache after
// checking that the caller left them empty or equal, and clears kv_cache.
relattn_status ResolveKvCache(const relattn_attention_desc* desc, relattn_attention_desc* resolved);

// Bytes of caller memory an initialised cache spans (header, positions,
// flags, scales, K, V).
uint64_t KvCacheBytes(const relattn_kv_cache* cache);

// Points plan->cache at desc->kv_cache's key groups and flags (off without a
// cache). Call after BuildPlan on the resolved desc.
void AttachKvCache(const relattn_attention_desc* desc, Plan* plan);

}  // namespace relattn

#endif  // RELATTN_LIB_API_KV_CACHE_H_
