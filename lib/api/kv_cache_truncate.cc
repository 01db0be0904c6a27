// relattn_kv_cache_truncate: rollback to the oldest n tokens in append order.
// A cache that never wrapped holds them in slots 0..n-1 already (O(1)); a
// wrapped ring first rotates its window slots so that the oldest window
// token is in slot n_sink_tokens, which makes slot order append order.
#include <algorithm>
#include <cinttypes>
#include <cstring>

#include "lib/api/kv_cache.h"
#include "lib/common/dtype.h"
#include "lib/common/error.h"

namespace relattn {
namespace {

// Swaps `bytes` bytes at a and b (not overlapping).
void SwapBytes(void* a, void* b, size_t bytes) {
  char* x = static_cast<char*>(a);
  char* y = static_cast<char*>(b);
  for (size_t i = 0; i < bytes; ++i) std::swap(x[i], y[i]);
}

// Swaps the tokens of slots a and b: position, and per KV head the bad flag,
// the I8 row scale, K's channels in the key-group layout (Q4: its row) and
// the V row.
// (sink_k is per sink slot: a truncate rotates window slots only.)
void SwapSlots(relattn_kv_cache* c, const KvCacheView& view, int64_t a, int64_t b) {
  const relattn_kv_cache_desc& d = c->desc;
  std::swap(view.positions[a], view.positions[b]);
  const size_t k_bytes = DtypeBytes(d.k_dtype), v_bytes = DtypeBytes(d.v_dtype);
  const size_t v_row = v_bytes * size_t(RowElements(d.v_dtype, d.v_head_dim));
  const size_t q4_k_row = size_t(Q4RowBytes(d.head_dim));  // Q4 K: rows
  const int64_t head_stride = KeyGroupHeadStride(d.capacity, d.head_dim);
  char* k = static_cast<char*>(view.k);
  char* v = static_cast<char*>(view.v);
  for (int32_t h = 0; h < d.n_kv_heads; ++h) {
    std::swap(view.bad[h * d.capacity + a], view.bad[h * d.capacity + b]);
    if (d.k_dtype == RELATTN_I8) {
      std::swap(view.k_scales[h * d.capacity + a], view.k_scales[h * d.capacity + b]);
    }
    if (d.v_dtype == RELATTN_I8) {
      std::swap(view.v_scales[h * d.capacity + a], view.v_scales[h * d.capacity + b]);
    }
    if (d.k_dtype == RELATTN_Q4) {
      SwapBytes(k + (h * d.capacity + a) * q4_k_row, k + (h * d.capacity + b) * q4_k_row, q4_k_row);
    } else {
      const int64_t ka = KeyGroupOffset(head_stride, h, a, d.head_dim) + a % kKeyGroup;
      const int64_t kb = KeyGroupOffset(head_stride, h, b, d.head_dim) + b % kKeyGroup;
      for (int32_t e = 0; e < d.head_dim; ++e) {
        SwapBytes(k + (ka + e * kKeyGroup) * k_bytes, k + (kb + e * kKeyGroup) * k_bytes, k_bytes);
      }
    }
    SwapBytes(v + (h * d.capacity + a) * v_row, v + (h * d.capacity + b) * v_row, v_row);
  }
}

// Reverses the order of the tokens in slots [first, last).
void ReverseSlots(relattn_kv_cache* c, const KvCacheView& view, int64_t first, int64_t last) {
  for (int64_t i = first, j = last - 1; i < j; ++i, --j) SwapSlots(c, view, i, j);
}

// A wrapped ring: rotates the window slots [S, capacity) so that the oldest
// window token (in next_slot) lands in slot S, keeping their order.
void RotateWindowToSlotOrder(relattn_kv_cache* c, const KvCacheView& view) {
  const int64_t sinks = c->desc.n_sink_tokens, mid = c->next_slot, end = c->desc.capacity;
  if (mid == sinks) return;  // already in slot order
  ReverseSlots(c, view, sinks, mid);
  ReverseSlots(c, view, mid, end);
  ReverseSlots(c, view, sinks, end);
  c->next_slot = sinks;
}

// Keeps slots [0, n) (append order), 0 < n < length; the header consistent after.
void KeepOldest(relattn_kv_cache* c, int64_t n) {
  const relattn_kv_cache_desc& d = c->desc;
  const KvCacheView view = ViewOf(c);
  if (c->length == d.capacity && n > d.n_sink_tokens) RotateWindowToSlotOrder(c, view);
  c->length = n;
  c->next_slot = n;
  if (d.sink_positions == RELATTN_SINK_POSITIONS_CACHE && n <= d.n_sink_tokens) {
    // Sinks alone: back at 0..n-1, as if the window had never moved them.
    if (view.positions[0] != 0) MoveSinksTo(c, view, 0, n);
    c->next_position = n;
    return;
  }
  const int64_t last = view.positions[n - 1];
  c->next_position = last == INT64_MAX ? last : last + 1;  // as append saturates
}

}  // namespace
}  // namespace relattn

using relattn::Fail;

extern "C" relattn_status relattn_kv_cache_truncate(relattn_kv_cache* cache, int64_t n_tokens) {
  relattn_status s;
  if ((s = relattn::CheckKvCacheMemory(cache, "cache")) || (s = relattn::BeginAppend(cache))) {
    return s;
  }
  if ((s = relattn::CheckKvCacheHeader(cache, "cache"))) return relattn::EndAppend(cache, s);
  if (n_tokens < 0 || n_tokens > cache->length) {
    return relattn::EndAppend(cache, Fail(RELATTN_ERR_BAD_DIMENSION,
                                          "n_tokens = %" PRId64 ": must be in 0..%" PRId64
                                          " (the tokens the cache holds)",
                                          n_tokens, cache->length));
  }
  if (n_tokens == 0) {
    relattn_kv_cache_clear(cache);
  } else if (n_tokens < cache->length) {
    relattn::KeepOldest(cache, n_tokens);
  }
  return relattn::EndAppend(cache, relattn::Succeed());
}
