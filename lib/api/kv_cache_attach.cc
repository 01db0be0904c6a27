// relattn_kv_cache_attach: takes bytes that should hold a cache (a saved
// file, a copy) and checks everything a later call relies on, header first
// (never reading past cache_bytes), then every held token's stored values
// against the maxima the header records. Reads only: writes and allocates
// nothing; every failure is a status naming the field. And
// relattn_kv_cache_get_desc, which reads an attached cache's desc back.
#include <cinttypes>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "lib/api/kv_cache.h"
#include "lib/common/dtype.h"
#include "lib/common/error.h"
#include "lib/common/f16.h"
#include "lib/common/float_element.h"

namespace relattn {
namespace {

// The last error (a desc check's), prefixed, as RELATTN_ERR_BAD_CACHE.
relattn_status BadCachePrefixed(const char* prefix) {
  char message[256];
  std::snprintf(message, sizeof(message), "%s", relattn_last_error());
  return Fail(RELATTN_ERR_BAD_CACHE, "%s%s", prefix, message);
}

// Magic and layout version.
relattn_status CheckLayout(const relattn_kv_cache& c) {
  if (c.magic != kKvCacheMagic) {
    return Fail(RELATTN_ERR_BAD_CACHE,
                "memory: magic 0x%016" PRIx64 ": not a relattn KV cache (0x%016" PRIx64 ")",
                c.magic, kKvCacheMagic);
  }
  if (c.version != kKvCacheLayoutVersion) {
    return Fail(RELATTN_ERR_BAD_CACHE, "memory: header version %u: this library reads version %u",
                c.version, kKvCacheLayoutVersion);
  }
  return RELATTN_OK;
}

// The resolved rope's flags hold 0 or 1 (read as bytes: any other value is
// not a bool), and it rotates as desc.rope does (or, for a scaling family
// whose tables init resolved, as one that could have: PlausibleRope).
relattn_status CheckStoredRope(const relattn_kv_cache& c) {
  const unsigned char* rope =
      reinterpret_cast<const unsigned char*>(&c) + offsetof(relattn_kv_cache, rope);
  const unsigned char on = rope[offsetof(RopeParams, on)];
  const unsigned char interleaved = rope[offsetof(RopeParams, interleaved)];
  if (on > 1 || interleaved > 1) {
    return Fail(RELATTN_ERR_BAD_CACHE, "memory: rope (resolved): flags %u, %u are not booleans", on,
                interleaved);
  }
  const relattn_rope_scaling& sc = c.desc.rope.scaling;
  if (sc.short_factor || sc.long_factor || sc.inv_freq) {
    return Fail(RELATTN_ERR_BAD_CACHE,
                "memory: desc.rope.scaling: its table pointers must be NULL in a cache (init "
                "resolves the tables and keeps none)");
  }
  RopeParams resolved;
  const relattn_status s = ResolveRope(c.desc.rope, c.desc.head_dim, "rope.", &resolved);
  if (s != RELATTN_OK && s != RELATTN_ERR_NULL_ARGUMENT) return BadCachePrefixed("memory: desc.");
  const bool same = s == RELATTN_OK ? SameRope(resolved, c.rope)
                                    : PlausibleRope(c.rope, c.desc.head_dim) && c.rope.on;
  if (!same || !PlausibleRope(c.rope, c.desc.head_dim)) {
    return Fail(RELATTN_ERR_BAD_CACHE, "memory: rope (resolved): does not match desc.rope");
  }
  return RELATTN_OK;
}

// The desc as init checks it (resolved: v_head_dim set, no table pointer).
relattn_status CheckStoredDesc(const relattn_kv_cache& c) {
  if (CheckDescAndSize(&c.desc, nullptr) != RELATTN_OK) return BadCachePrefixed("memory: desc.");
  if (c.desc.v_head_dim == 0) {
    return Fail(RELATTN_ERR_BAD_CACHE,
                "memory: desc.v_head_dim = 0: a cache holds it resolved (1..256)");
  }
  return CheckStoredRope(c);
}

// Length, slots, the append flag and the maxima.
relattn_status CheckState(const relattn_kv_cache& c) {
  const relattn_kv_cache_desc& d = c.desc;
  if (c.length < 0 || c.length > d.capacity) {
    return Fail(RELATTN_ERR_BAD_CACHE, "memory: length %" PRId64 ": must be in 0..%" PRId64,
                c.length, d.capacity);
  }
  const bool full = c.length == d.capacity;
  if (c.next_slot < 0 || c.next_slot >= d.capacity || (!full && c.next_slot != c.length) ||
      (full && c.next_slot < d.n_sink_tokens) || (full && !d.ring && c.next_slot != 0)) {
    return Fail(RELATTN_ERR_BAD_CACHE,
                "memory: next slot %" PRId64 ": inconsistent with length %" PRId64
                ", capacity %" PRId64 ", %" PRId64 " sink tokens",
                c.next_slot, c.length, d.capacity, d.n_sink_tokens);
  }
  if (__atomic_load_n(&c.appending, __ATOMIC_ACQUIRE) != 0) {
    return Fail(RELATTN_ERR_BUSY, "memory: an append is marked running (appending = %u)",
                c.appending);
  }
  if (!(c.k_max_abs >= 0.0f) || !std::isfinite(c.k_max_abs) || !(c.v_max_abs >= 0.0f) ||
      !std::isfinite(c.v_max_abs)) {
    return Fail(RELATTN_ERR_BAD_CACHE,
                "memory: recorded maxima |K| %g, |V| %g: must be finite and >= 0",
                double(c.k_max_abs), double(c.v_max_abs));
  }
  return RELATTN_OK;
}

// Slot of the token appended last (length > 0).
int64_t LastSlot(const relattn_kv_cache& c) {
  if (c.length < c.desc.capacity) return c.length - 1;
  return c.next_slot > c.desc.n_sink_tokens ? c.next_slot - 1 : c.desc.capacity - 1;
}

// Held positions within +-2^53 with RoPE; next_position follows the last
// token's (as append and truncate leave it; 0 when empty).
relattn_status CheckPositions(const relattn_kv_cache& c, const KvCacheView& view) {
  for (int64_t s = 0; c.rope.on && s < c.length; ++s) {
    const int64_t p = view.positions[s];
    if (p < -kRopeMaxPosition || p > kRopeMaxPosition) {
      return Fail(RELATTN_ERR_BAD_CACHE,
                  "memory: slot %" PRId64 ": position %" PRId64 " with rope: beyond +-2^53", s, p);
    }
  }
  int64_t expected = 0;
  if (c.length > 0) {
    const int64_t last = view.positions[LastSlot(c)];
    expected = last == INT64_MAX ? last : last + 1;
  }
  if (c.next_position != expected) {
    return Fail(RELATTN_ERR_BAD_CACHE,
                "memory: next_position %" PRId64 ": must be %" PRId64
                " (the last token's position + 1, 0 when empty)",
                c.next_position, expected);
  }
  return RELATTN_OK;
}

// |x| finite and within max, else a message for slot s of head h.
relattn_status CheckValue(const char* what, float x, float max, int64_t s, int32_t h) {
  if (!std::isfinite(x)) {
    return Fail(RELATTN_ERR_BAD_CACHE,
                "memory: slot %" PRId64 " of KV head %d: %s %g is not finite", s, h, what,
                double(x));
  }
  if (std::fabs(x) > max) {
    return Fail(RELATTN_ERR_BAD_CACHE,
                "memory: slot %" PRId64 " of KV head %d: %s %g exceeds the recorded maximum %g", s,
                h, what, double(x), double(max));
  }
  return RELATTN_OK;
}

// Element i of an F32, F16 or BF16 region as f32.
float FloatAt(const void* region, relattn_dtype dtype, int64_t i) {
  return FloatElement(region, dtype, i);
}

// An I8 row of `n` values `step` apart (K or V, `what`) of head h in slot s:
// -127..127 with a row scale finite, >= 0 and <= max_abs / 127 (in f32, as
// QuantizeRowI8 divides: a row quantised from values <= max_abs passes).
relattn_status CheckRowI8(float scale, const int8_t* q, int64_t step, int32_t n, float max_abs,
                          const char* what, int64_t s, int32_t h) {
  if (!(scale >= 0.0f) || !std::isfinite(scale) || scale > max_abs / 127) {
    return Fail(RELATTN_ERR_BAD_CACHE,
                "memory: slot %" PRId64
                " of KV head %d: %s row scale %g: must be finite, >= 0 and at most the recorded "
                "maximum %g / 127",
                s, h, what, double(scale), double(max_abs));
  }
  for (int32_t e = 0; e < n; ++e) {
    if (q[e * step] == -128) {
      return Fail(RELATTN_ERR_BAD_CACHE,
                  "memory: slot %" PRId64 " of KV head %d: %s value -128: must be in -127..127", s,
                  h, what);
    }
  }
  return RELATTN_OK;
}

// A Q4 row of `dim` values (K or V, `what`) of head h in slot s: each
// block's scale finite with 8 |d| <= max_abs (every nibble is a value).
relattn_status CheckRowQ4(const uint8_t* row, int32_t dim, float max_abs, const char* what,
                          int64_t s, int32_t h) {
  for (int64_t b = 0; b < dim / kQ4BlockValues; ++b) {
    const float d = Q4BlockScale(row + b * kQ4BlockBytes);
    if (!std::isfinite(d) || 8.0f * std::fabs(d) > max_abs) {
      return Fail(RELATTN_ERR_BAD_CACHE,
                  "memory: slot %" PRId64 " of KV head %d: %s block %" PRId64
                  " scale %g: must be finite, 8 |scale| at most the recorded maximum %g",
                  s, h, what, b, double(d), double(max_abs));
    }
  }
  return RELATTN_OK;
}

// Head h's K in slot s: F32 / F16 values within k_max_abs; I8 as CheckRowI8,
// Q4 as CheckRowQ4.
relattn_status CheckKeyRow(const relattn_kv_cache& c, const KvCacheView& view, int32_t h,
                           int64_t s) {
  const relattn_kv_cache_desc& d = c.desc;
  if (d.k_dtype == RELATTN_Q4) {
    const int64_t row = (h * d.capacity + s) * Q4RowBytes(d.head_dim);
    return CheckRowQ4(static_cast<const uint8_t*>(view.k) + row, d.head_dim, c.k_max_abs, "K", s,
                      h);
  }
  const int64_t at =
      KeyGroupOffset(KeyGroupHeadStride(d.capacity, d.head_dim), h, s, d.head_dim) + s % kKeyGroup;
  if (d.k_dtype != RELATTN_I8) {
    for (int32_t e = 0; e < d.head_dim; ++e) {
      const float x = FloatAt(view.k, d.k_dtype, at + e * kKeyGroup);
      if (const relattn_status st = CheckValue("K value", x, c.k_max_abs, s, h)) return st;
    }
    return RELATTN_OK;
  }
  return CheckRowI8(view.k_scales[h * d.capacity + s], static_cast<const int8_t*>(view.k) + at,
                    kKeyGroup, d.head_dim, c.k_max_abs, "K", s, h);
}

// Head h's bad flag (0 or 1) and V row (within v_max_abs; I8 as CheckRowI8,
// Q4 as CheckRowQ4) in slot s.
relattn_status CheckValueRow(const relattn_kv_cache& c, const KvCacheView& view, int32_t h,
                             int64_t s) {
  const relattn_kv_cache_desc& d = c.desc;
  const uint8_t bad = view.bad[h * d.capacity + s];
  if (bad > 1) {
    return Fail(RELATTN_ERR_BAD_CACHE,
                "memory: slot %" PRId64 " of KV head %d: bad flag %u: must be 0 or 1", s, h, bad);
  }
  if (d.v_dtype == RELATTN_Q4) {
    const int64_t row = (h * d.capacity + s) * Q4RowBytes(d.v_head_dim);
    return CheckRowQ4(static_cast<const uint8_t*>(view.v) + row, d.v_head_dim, c.v_max_abs, "V", s,
                      h);
  }
  const int64_t row = (h * d.capacity + s) * d.v_head_dim;
  if (d.v_dtype == RELATTN_I8) {
    return CheckRowI8(view.v_scales[h * d.capacity + s], static_cast<const int8_t*>(view.v) + row,
                      1, d.v_head_dim, c.v_max_abs, "V", s, h);
  }
  for (int32_t e = 0; e < d.v_head_dim; ++e) {
    const float x = FloatAt(view.v, d.v_dtype, row + e);
    if (const relattn_status st = CheckValue("V value", x, c.v_max_abs, s, h)) return st;
  }
  return RELATTN_OK;
}

// Sink slot s's unrotated K of head h (CACHE positions with RoPE): finite
// unless the token was flagged (append keeps its K as given).
relattn_status CheckSinkKeyRow(const relattn_kv_cache& c, const KvCacheView& view, int32_t h,
                               int64_t s) {
  const relattn_kv_cache_desc& d = c.desc;
  if (view.bad[h * d.capacity + s]) return RELATTN_OK;
  const float* row = view.sink_k + (s * d.n_kv_heads + h) * int64_t{d.head_dim};
  for (int32_t e = 0; e < d.head_dim; ++e) {
    if (!std::isfinite(row[e])) {
      return Fail(RELATTN_ERR_BAD_CACHE,
                  "memory: sink slot %" PRId64 " of KV head %d: unrotated K value %g is not finite",
                  s, h, double(row[e]));
    }
  }
  return RELATTN_OK;
}

// Every held slot's values; K of the slots after the last in its key group
// too (decode reads whole groups and hides those scores: append opens a
// group with zeros, a truncate leaves tokens within the maxima).
relattn_status CheckStoredValues(const relattn_kv_cache& c, const KvCacheView& view) {
  const relattn_kv_cache_desc& d = c.desc;
  const bool sink_keys = SinkKeyFloats(d) != 0;
  int64_t group_end = (c.length + kKeyGroup - 1) / kKeyGroup * kKeyGroup;
  if (group_end > d.capacity || d.k_dtype == RELATTN_I8 || d.k_dtype == RELATTN_Q4) {
    group_end = c.length;
  }
  for (int32_t h = 0; h < d.n_kv_heads; ++h) {
    for (int64_t s = 0; s < group_end; ++s) {
      relattn_status st = CheckKeyRow(c, view, h, s);
      if (st == RELATTN_OK && s < c.length) st = CheckValueRow(c, view, h, s);
      if (st == RELATTN_OK && sink_keys && s < d.n_sink_tokens && s < c.length) {
        st = CheckSinkKeyRow(c, view, h, s);
      }
      if (st != RELATTN_OK) return st;
    }
  }
  return RELATTN_OK;
}

}  // namespace
}  // namespace relattn

using relattn::Fail;

extern "C" relattn_status relattn_kv_cache_attach(void* memory, size_t cache_bytes,
                                                  relattn_kv_cache** cache) {
  if (!memory) return Fail(RELATTN_ERR_NULL_ARGUMENT, "memory is NULL");
  if (!cache) return Fail(RELATTN_ERR_NULL_ARGUMENT, "cache is NULL");
  if (reinterpret_cast<uintptr_t>(memory) % RELATTN_KV_CACHE_ALIGNMENT != 0) {
    return Fail(RELATTN_ERR_BAD_ALIGNMENT, "memory = %p: must be aligned to %d bytes", memory,
                RELATTN_KV_CACHE_ALIGNMENT);
  }
  if (cache_bytes < sizeof(relattn_kv_cache)) {
    return Fail(RELATTN_ERR_WORKSPACE_TOO_SMALL,
                "cache_bytes = %zu: less than a cache's header (%zu bytes)", cache_bytes,
                sizeof(relattn_kv_cache));
  }
  const relattn_kv_cache* c = static_cast<const relattn_kv_cache*>(memory);
  relattn_status s;
  if ((s = relattn::CheckLayout(*c)) || (s = relattn::CheckStoredDesc(*c))) return s;
  const uint64_t total = relattn::KvCacheBytes(c);
  if (cache_bytes < total) {
    return Fail(RELATTN_ERR_WORKSPACE_TOO_SMALL,
                "cache_bytes = %zu: the cache's desc needs %zu (relattn_kv_cache_size)",
                cache_bytes, static_cast<size_t>(total));
  }
  if ((s = relattn::CheckState(*c)) || (s = relattn::CheckKvCacheHeader(c, "memory"))) return s;
  const relattn::KvCacheView view = relattn::ViewOf(c);
  if ((s = relattn::CheckPositions(*c, view)) || (s = relattn::CheckStoredValues(*c, view))) {
    return s;
  }
  *cache = static_cast<relattn_kv_cache*>(memory);
  return relattn::Succeed();
}

extern "C" relattn_status relattn_kv_cache_get_desc(const relattn_kv_cache* cache,
                                                    relattn_kv_cache_desc* desc) {
  relattn_status s;
  if (desc == nullptr) return Fail(RELATTN_ERR_NULL_ARGUMENT, "desc: must not be NULL");
  if ((s = relattn::CheckKvCacheMemory(cache, "cache"))) return s;
  if ((s = relattn::CheckKvCacheHeader(cache, "cache"))) return s;
  *desc = cache->desc;
  return relattn::Succeed();
}
