// The KV cache's sink tokens (StreamingLLM, relattn_kv_cache_desc
// n_sink_tokens / sink_positions): their desc check, and under the CACHE rule
// the unrotated copy of their K and their move as the window slides (or back
// to 0.. when a truncate drops the window).
#include <algorithm>
#include <cinttypes>

#include "lib/api/kv_cache.h"
#include "lib/common/error.h"

namespace relattn {

relattn_status CheckSinkTokens(const relattn_kv_cache_desc& d) {
  if (d.n_sink_tokens < 0 || d.n_sink_tokens >= d.capacity) {
    return Fail(RELATTN_ERR_BAD_SINK_TOKENS,
                "n_sink_tokens = %" PRId64 ": must be in 0..capacity - 1 = %" PRId64,
                d.n_sink_tokens, d.capacity - 1);
  }
  if (d.sink_positions != RELATTN_SINK_POSITIONS_TEXT &&
      d.sink_positions != RELATTN_SINK_POSITIONS_CACHE) {
    return Fail(RELATTN_ERR_BAD_SINK_TOKENS,
                "sink_positions = %d: must be RELATTN_SINK_POSITIONS_TEXT (0) or _CACHE (1)",
                (int)d.sink_positions);
  }
  if (!d.ring && (d.n_sink_tokens != 0 || d.sink_positions != RELATTN_SINK_POSITIONS_TEXT)) {
    return Fail(RELATTN_ERR_BAD_SINK_TOKENS,
                "n_sink_tokens = %" PRId64
                ", sink_positions = %d: need ring = 1 (a cache that "
                "never overwrites keeps every token)",
                d.n_sink_tokens, (int)d.sink_positions);
  }
  return RELATTN_OK;
}

void KeepSinkKey(relattn_kv_cache* c, const KvCacheView& view, const relattn_tensor& k, int64_t t,
                 int64_t slot) {
  const relattn_kv_cache_desc& d = c->desc;
  if (SinkKeyFloats(d) == 0) return;
  const RopeAngles none{};
  for (int32_t h = 0; h < d.n_kv_heads; ++h) {
    float* row = view.sink_k + (slot * d.n_kv_heads + h) * int64_t{d.head_dim};
    LoadTokenRow(k, t, h, d.head_dim, RELATTN_F32, nullptr, none, row);  // as given
  }
}

void MoveSinksTo(relattn_kv_cache* c, const KvCacheView& view, int64_t first, int64_t count) {
  const relattn_kv_cache_desc& d = c->desc;
  const relattn_tensor sink_k{
      view.sink_k, RELATTN_F32, int64_t{d.n_kv_heads} * d.head_dim, d.head_dim, nullptr, 0, 0};
  float row[RELATTN_MAX_HEAD_DIM];
  for (int64_t s = 0; s < count; ++s) {
    view.positions[s] = first + s;
    if (!c->rope.on) continue;
    RopeAngles angles;
    RopeAnglesAt(c->rope, first + s, &angles);
    for (int32_t h = 0; h < d.n_kv_heads; ++h) {
      uint8_t& bad = view.bad[h * d.capacity + s];
      if (bad) continue;  // stored as zeros
      if (!LoadTokenRow(sink_k, s, h, d.head_dim, d.k_dtype, &c->rope, angles, row)) {
        std::fill(row, row + d.head_dim, 0.0f);  // rotated beyond the storage's range:
        bad = 1;                                 // flagged, as append flags such a row
      }
      StoreKeyRow(c, view, h, s, row);
    }
  }
}

void MoveSinkTokens(relattn_kv_cache* c, const KvCacheView& view) {
  const relattn_kv_cache_desc& d = c->desc;
  const int64_t n_sinks = d.n_sink_tokens;
  if (d.sink_positions != RELATTN_SINK_POSITIONS_CACHE || n_sinks == 0 || c->length < d.capacity) {
    return;
  }
  const int64_t first = view.positions[c->next_slot] - n_sinks;  // sink 0's position
  if (view.positions[0] == first) return;                        // the window has not moved
  MoveSinksTo(c, view, first, n_sinks);
}

}  // namespace relattn
