// The KV cache's layout in caller memory (relattn_kv_cache is opaque in the
// public header).
#ifndef RELATTN_LIB_API_KV_CACHE_H_
#define RELATTN_LIB_API_KV_CACHE_H_

#include <cstdint>

#include "relattn/relattn.h"

struct relattn_kv_cache {
  uint64_t magic;              // kKvCacheMagic once initialised
  relattn_kv_cache_desc desc;  // v_head_dim resolved (never 0)
  int64_t length;              // tokens held, <= capacity
  int64_t next_slot;           // slot the next token goes to
  int64_t next_position;       // position of the next token appended without positions
  int64_t* positions;          // [capacity]: position of the token in each slot
  void* k;                     // [n_kv_heads][capacity][head_dim] of desc.k_dtype
  void* v;                     // [n_kv_heads][capacity][v_head_dim] of desc.v_dtype
};

namespace relattn {

inline constexpr uint64_t kKvCacheMagic = 0x72656c6174746e4bull;  // "relattnK"

// Checks that cache was initialised by relattn_kv_cache_init; names `what`.
relattn_status CheckKvCache(const relattn_kv_cache* cache, const char* what);

// Copies desc to *resolved; if desc->kv_cache is set, fills the key-side
// fields (n_kv, n_kv_heads, head dims, k, v, k_pos) from the cache after
// checking that the caller left them empty or equal, and clears kv_cache.
relattn_status ResolveKvCache(const relattn_attention_desc* desc, relattn_attention_desc* resolved);

}  // namespace relattn

#endif  // RELATTN_LIB_API_KV_CACHE_H_
