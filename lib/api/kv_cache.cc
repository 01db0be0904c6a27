// The KV cache: sizing, layout in caller memory, append (convert + store).
#include "lib/api/kv_cache.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstring>

#include "lib/common/dtype.h"
#include "lib/common/error.h"
#include "lib/common/f16.h"
#include "lib/common/quantize_row.h"
#include "lib/rope/rope.h"

namespace relattn {
namespace {

constexpr int64_t kMaxCapacity = int64_t{1} << 40;

uint64_t Align64(uint64_t bytes) { return (bytes + 63) / 64 * 64; }

relattn_status CheckStorageDtype(const char* name, relattn_dtype dtype, bool allow_i8) {
  if (dtype == RELATTN_F32 || dtype == RELATTN_F16 || (allow_i8 && dtype == RELATTN_I8)) {
    return RELATTN_OK;
  }
  if (dtype == RELATTN_I8) {
    return Fail(RELATTN_ERR_UNSUPPORTED, "%s = I8: only K may be stored in int8", name);
  }
  return Fail(RELATTN_ERR_BAD_DTYPE, "%s = %d: must be RELATTN_F32 or RELATTN_F16%s", name,
              (int)dtype, allow_i8 ? " or RELATTN_I8" : "");
}

relattn_status CheckDesc(const relattn_kv_cache_desc* d) {
  if (!d) return Fail(RELATTN_ERR_NULL_ARGUMENT, "desc is NULL");
  if (d->n_kv_heads < 1 || d->n_kv_heads > RELATTN_MAX_HEADS) {
    return Fail(RELATTN_ERR_BAD_DIMENSION, "n_kv_heads = %d: must be in 1..%d", d->n_kv_heads,
                RELATTN_MAX_HEADS);
  }
  if (d->head_dim < 1 || d->head_dim > RELATTN_MAX_HEAD_DIM) {
    return Fail(RELATTN_ERR_BAD_DIMENSION, "head_dim = %d: must be in 1..%d", d->head_dim,
                RELATTN_MAX_HEAD_DIM);
  }
  if (d->v_head_dim < 0 || d->v_head_dim > RELATTN_MAX_HEAD_DIM) {
    return Fail(RELATTN_ERR_BAD_DIMENSION, "v_head_dim = %d: must be in 0..%d", d->v_head_dim,
                RELATTN_MAX_HEAD_DIM);
  }
  if (d->capacity < 1 || d->capacity > kMaxCapacity) {
    return Fail(RELATTN_ERR_BAD_DIMENSION, "capacity = %" PRId64 ": must be in 1..%" PRId64,
                d->capacity, kMaxCapacity);
  }
  relattn_status s = CheckStorageDtype("k_dtype", d->k_dtype, true);
  if (s == RELATTN_OK) s = CheckStorageDtype("v_dtype", d->v_dtype, false);
  RopeParams rope;
  if (s == RELATTN_OK) s = ResolveRope(d->rope, d->head_dim, "rope.", &rope);
  return s;
}

// Byte offsets of the regions after the header.
struct Regions {
  uint64_t positions, bad, k_scales, k, v, total;
};

// In uint64 whatever size_t is: a valid desc needs at most about 2^62 bytes
// (capacity 2^40 x 4096 heads x 256 x 4), which a 32-bit target cannot hold
// (CheckDesc rejects a total above SIZE_MAX).
Regions RegionsOf(const relattn_kv_cache_desc& d) {
  const uint64_t dv = uint64_t(d.v_head_dim ? d.v_head_dim : d.head_dim);
  const uint64_t heads = uint64_t(d.n_kv_heads), capacity = uint64_t(d.capacity);
  Regions r;
  r.positions = Align64(sizeof(relattn_kv_cache));
  r.bad = r.positions + Align64(sizeof(int64_t) * capacity);
  r.k_scales = r.bad + Align64(heads * capacity);
  const uint64_t scale_bytes = d.k_dtype == RELATTN_I8 ? sizeof(float) * heads * capacity : 0;
  r.k = r.k_scales + Align64(scale_bytes);
  r.v = r.k + Align64(DtypeBytes(d.k_dtype) * heads *
                      uint64_t(KeyGroupHeadStride(d.capacity, d.head_dim)));
  r.total = r.v + Align64(DtypeBytes(d.v_dtype) * heads * capacity * dv);
  return r;
}

// Row (t, h) of src as f32 into row[0, dim), rotated by rope with the
// token's angles (if rope is on), then rounded as `storage` holds it; false
// if it holds a NaN or inf (f32 beyond f16's range included).
bool LoadRow(const relattn_tensor& src, int64_t t, int32_t h, int64_t dim, relattn_dtype storage,
             const RopeParams* rope, const RopeAngles& angles, float* row) {
  const int64_t from = t * src.token_stride + h * src.head_stride;
  for (int64_t e = 0; e < dim; ++e) {
    row[e] = src.dtype == RELATTN_F16 ? F16ToF32(static_cast<const uint16_t*>(src.data)[from + e])
                                      : static_cast<const float*>(src.data)[from + e];
  }
  if (rope && rope->on) RotateRowScalar(*rope, angles, row);
  bool finite = true;
  for (int64_t e = 0; e < dim; ++e) {
    if (storage == RELATTN_F16) row[e] = F16ToF32(F32ToF16(row[e]));  // I8: scaled at store
    finite = finite && std::isfinite(row[e]);
  }
  return finite;
}

// Stores row[0, dim) as dtype at dst + offset + e * step (elements).
void StoreRow(const float* row, int64_t dim, relattn_dtype dtype, void* dst, int64_t offset,
              int64_t step) {
  for (int64_t e = 0; e < dim; ++e) {
    if (dtype == RELATTN_F16) {
      static_cast<uint16_t*>(dst)[offset + e * step] = F32ToF16(row[e]);
    } else {
      static_cast<float*>(dst)[offset + e * step] = row[e];
    }
  }
}

// Converts token t (at position p) of k and v (all heads) into cache slot
// `slot`: K rotated by rope into its key group, V as a row. A head whose K or
// V row is not finite stores zeros and is flagged.
void StoreToken(relattn_kv_cache* c, const RopeParams& rope, const relattn_tensor& k,
                const relattn_tensor& v, int64_t t, int64_t p, int64_t slot) {
  const relattn_kv_cache_desc& d = c->desc;
  const int64_t head_stride = KeyGroupHeadStride(d.capacity, d.head_dim);
  float k_row[RELATTN_MAX_HEAD_DIM], v_row[RELATTN_MAX_HEAD_DIM];
  // The first token of a key group never written before: the group's other
  // slots are read (as whole vectors, their scores then hidden) before they
  // hold tokens, so they start as zeros rather than stale memory.
  const bool fresh_group = slot % kKeyGroup == 0 && slot >= c->length;
  const size_t group_bytes = DtypeBytes(d.k_dtype) * kKeyGroup * size_t(d.head_dim);
  for (int32_t h = 0; fresh_group && h < d.n_kv_heads; ++h) {
    const int64_t first = KeyGroupOffset(head_stride, h, slot, d.head_dim);
    std::memset(static_cast<char*>(c->k) + first * DtypeBytes(d.k_dtype), 0, group_bytes);
  }
  RopeAngles angles;
  if (rope.on) RopeAnglesAt(rope, p, &angles);
  for (int32_t h = 0; h < d.n_kv_heads; ++h) {
    const bool k_finite = LoadRow(k, t, h, d.head_dim, d.k_dtype, &rope, angles, k_row);
    const bool finite =
        LoadRow(v, t, h, d.v_head_dim, d.v_dtype, nullptr, angles, v_row) && k_finite;
    if (!finite) {
      std::fill(k_row, k_row + d.head_dim, 0.0f);
      std::fill(v_row, v_row + d.v_head_dim, 0.0f);
    }
    c->bad[h * d.capacity + slot] = finite ? 0 : 1;
    const int64_t k_offset = KeyGroupOffset(head_stride, h, slot, d.head_dim) + slot % kKeyGroup;
    if (d.k_dtype == RELATTN_I8) {
      int8_t q[RELATTN_MAX_HEAD_DIM];
      c->k_scales[h * d.capacity + slot] = QuantizeRowI8(k_row, d.head_dim, q);
      int8_t* k = static_cast<int8_t*>(c->k) + k_offset;
      for (int32_t e = 0; e < d.head_dim; ++e) k[e * kKeyGroup] = q[e];
    } else {
      StoreRow(k_row, d.head_dim, d.k_dtype, c->k, k_offset, kKeyGroup);
    }
    StoreRow(v_row, d.v_head_dim, d.v_dtype, c->v, (h * d.capacity + slot) * d.v_head_dim, 1);
  }
}

relattn_status CheckInput(const char* name, const relattn_tensor* t, int64_t n_tokens,
                          int32_t n_heads, int64_t dim) {
  if (!t || !t->data) return Fail(RELATTN_ERR_NULL_ARGUMENT, "%s is NULL", name);
  if (t->dtype != RELATTN_F32 && t->dtype != RELATTN_F16) {
    return Fail(RELATTN_ERR_BAD_DTYPE, "%s->dtype = %d: must be RELATTN_F32 or RELATTN_F16", name,
                (int)t->dtype);
  }
  if (t->token_stride < 0 || t->head_stride < 0) {
    return Fail(RELATTN_ERR_BAD_STRIDE, "%s strides: must be >= 0", name);
  }
  if (n_heads > 1 && t->head_stride < dim && t->token_stride < dim) {
    return Fail(RELATTN_ERR_BAD_STRIDE, "%s->head_stride = %" PRId64 ": rows overlap", name,
                t->head_stride);
  }
  (void)n_tokens;
  return RELATTN_OK;
}

}  // namespace

relattn_status CheckKvCache(const relattn_kv_cache* cache, const char* what) {
  if (!cache) return Fail(RELATTN_ERR_NULL_ARGUMENT, "%s is NULL", what);
  if (cache->magic != kKvCacheMagic) {
    return Fail(RELATTN_ERR_NULL_ARGUMENT, "%s: not initialised by relattn_kv_cache_init", what);
  }
  return RELATTN_OK;
}

// CheckDesc, and the cache's bytes fit in size_t (32-bit targets).
relattn_status CheckDescAndSize(const relattn_kv_cache_desc* d) {
  if (const relattn_status s = CheckDesc(d)) return s;
  const uint64_t total = RegionsOf(*d).total;
  if (total > SIZE_MAX) {
    return Fail(RELATTN_ERR_BAD_DIMENSION,
                "capacity = %" PRId64 ": the cache would take %" PRIu64
                " bytes, more than this target's address space",
                d->capacity, total);
  }
  return RELATTN_OK;
}

}  // namespace relattn

using relattn::Fail;

extern "C" {

relattn_status relattn_kv_cache_size(const relattn_kv_cache_desc* desc, size_t* cache_bytes) {
  if (!cache_bytes) return Fail(RELATTN_ERR_NULL_ARGUMENT, "cache_bytes is NULL");
  if (const relattn_status s = relattn::CheckDescAndSize(desc)) return s;
  *cache_bytes = static_cast<size_t>(relattn::RegionsOf(*desc).total);
  return relattn::Succeed();
}

relattn_status relattn_kv_cache_init(const relattn_kv_cache_desc* desc, void* memory,
                                     size_t cache_bytes, relattn_kv_cache** cache) {
  if (const relattn_status s = relattn::CheckDescAndSize(desc)) return s;
  if (!memory) return Fail(RELATTN_ERR_NULL_ARGUMENT, "memory is NULL");
  if (!cache) return Fail(RELATTN_ERR_NULL_ARGUMENT, "cache is NULL");
  if (reinterpret_cast<uintptr_t>(memory) % RELATTN_KV_CACHE_ALIGNMENT != 0) {
    return Fail(RELATTN_ERR_BAD_ALIGNMENT, "memory = %p: must be aligned to %d bytes", memory,
                RELATTN_KV_CACHE_ALIGNMENT);
  }
  const relattn::Regions r = relattn::RegionsOf(*desc);
  if (cache_bytes < r.total) {
    return Fail(RELATTN_ERR_WORKSPACE_TOO_SMALL, "cache_bytes = %zu: must be >= %zu", cache_bytes,
                static_cast<size_t>(r.total));
  }
  char* base = static_cast<char*>(memory);
  relattn_kv_cache* c = reinterpret_cast<relattn_kv_cache*>(base);
  *c = relattn_kv_cache{};
  c->desc = *desc;
  if (!c->desc.v_head_dim) c->desc.v_head_dim = desc->head_dim;
  c->positions = reinterpret_cast<int64_t*>(base + r.positions);
  c->bad = reinterpret_cast<uint8_t*>(base + r.bad);
  c->k_scales = reinterpret_cast<float*>(base + r.k_scales);
  c->k = base + r.k;
  c->v = base + r.v;
  c->magic = relattn::kKvCacheMagic;
  *cache = c;
  return relattn::Succeed();
}

relattn_status relattn_kv_cache_append(relattn_kv_cache* cache, int64_t n_tokens,
                                       const relattn_tensor* k, const relattn_tensor* v,
                                       const relattn_positions* positions) {
  if (const relattn_status s = relattn::CheckKvCache(cache, "cache")) return s;
  const relattn_kv_cache_desc& d = cache->desc;
  if (n_tokens < 1) {
    return Fail(RELATTN_ERR_BAD_DIMENSION, "n_tokens = %" PRId64 ": must be >= 1", n_tokens);
  }
  relattn_status s = relattn::CheckInput("k", k, n_tokens, d.n_kv_heads, d.head_dim);
  if (s == RELATTN_OK) s = relattn::CheckInput("v", v, n_tokens, d.n_kv_heads, d.v_head_dim);
  if (s != RELATTN_OK) return s;
  if (!d.ring && n_tokens > d.capacity - cache->length) {
    return Fail(RELATTN_ERR_CACHE_FULL,
                "n_tokens = %" PRId64 ": the cache holds %" PRId64 " of %" PRId64
                " tokens and is not a ring",
                n_tokens, cache->length, d.capacity);
  }
  const bool given = positions && positions->positions;
  const int64_t start = positions && !given ? positions->start : cache->next_position;
  if (!given && start > INT64_MAX - n_tokens) {
    return Fail(RELATTN_ERR_POSITION_OVERFLOW,
                "positions: start %" PRId64 " + n_tokens overflows int64", start);
  }
  relattn::RopeParams rope;
  relattn::ResolveRope(d.rope, d.head_dim, "rope.", &rope);  // cannot fail: checked at init
  for (int64_t t = 0; rope.on && t < n_tokens; ++t) {
    const int64_t p = given ? positions->positions[t] : start + t;
    if (p < -relattn::kRopeMaxPosition || p > relattn::kRopeMaxPosition) {
      return Fail(RELATTN_ERR_POSITION_OVERFLOW,
                  "positions: token %" PRId64 " at %" PRId64
                  " with the cache's rope: must be within +-2^53",
                  t, p);
    }
  }
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t slot = cache->next_slot;
    const int64_t p = given ? positions->positions[t] : start + t;
    relattn::StoreToken(cache, rope, *k, *v, t, p, slot);
    cache->positions[slot] = p;
    cache->next_position = p == INT64_MAX ? p : p + 1;
    cache->next_slot = slot + 1 == d.capacity ? 0 : slot + 1;
    if (cache->length < d.capacity) ++cache->length;
  }
  return relattn::Succeed();
}

int64_t relattn_kv_cache_length(const relattn_kv_cache* cache) {
  return cache && cache->magic == relattn::kKvCacheMagic ? cache->length : 0;
}

int64_t relattn_kv_cache_next_position(const relattn_kv_cache* cache) {
  return cache && cache->magic == relattn::kKvCacheMagic ? cache->next_position : 0;
}

void relattn_kv_cache_clear(relattn_kv_cache* cache) {
  if (!cache || cache->magic != relattn::kKvCacheMagic) return;
  cache->length = 0;
  cache->next_slot = 0;
  cache->next_position = 0;
}

}  // extern "C"

namespace relattn {

relattn_status ResolveKvCache(const relattn_attention_desc* desc,
                              relattn_attention_desc* resolved) {
  if (!desc) return Fail(RELATTN_ERR_NULL_ARGUMENT, "desc is NULL");
  *resolved = *desc;
  const relattn_kv_cache* cache = desc->kv_cache;
  if (!cache) return RELATTN_OK;
  if (const relattn_status s = CheckKvCache(cache, "kv_cache")) return s;
  const relattn_kv_cache_desc& c = cache->desc;
  if (cache->length == 0) return Fail(RELATTN_ERR_BAD_DIMENSION, "kv_cache holds no token");
  struct Field {
    const char* name;
    int64_t given, cache;
  } fields[] = {{"n_kv", desc->n_kv, cache->length},
                {"n_kv_heads", desc->n_kv_heads, c.n_kv_heads},
                {"head_dim", desc->head_dim, c.head_dim},
                {"v_head_dim", desc->v_head_dim, c.v_head_dim}};
  for (const Field& f : fields) {
    if (f.given != 0 && f.given != f.cache) {
      return Fail(RELATTN_ERR_BAD_DIMENSION,
                  "%s = %" PRId64 ": must be 0 or the kv_cache's %" PRId64, f.name, f.given,
                  f.cache);
    }
  }
  if (!SameRope(desc->rope, c.rope, c.head_dim)) {
    return Fail(RELATTN_ERR_BAD_BIAS_PARAMETER,
                "rope: must equal the kv_cache's rope (its keys were rotated when appended)");
  }
  if (desc->k.data || desc->v.data || desc->k_pos.positions || desc->k_pos.start) {
    return Fail(RELATTN_ERR_BAD_DIMENSION,
                "k, v and k_pos must be left empty when kv_cache is given");
  }
  resolved->n_kv = cache->length;
  resolved->n_kv_heads = c.n_kv_heads;
  resolved->head_dim = c.head_dim;
  resolved->v_head_dim = c.v_head_dim;
  // K's strides only size the region for the overlap check; the kernel reads
  // key groups (AttachKvCache).
  const int64_t k_head_elements = KeyGroupHeadStride(c.capacity, c.head_dim);
  resolved->k = relattn_tensor{cache->k,        c.k_dtype, c.head_dim, k_head_elements,
                               cache->k_scales, 1,         c.capacity};
  resolved->v =
      relattn_tensor{cache->v, c.v_dtype, c.v_head_dim, c.capacity * c.v_head_dim, nullptr, 0, 0};
  resolved->k_pos = relattn_positions{cache->positions, 0};
  resolved->kv_cache = nullptr;
  return RELATTN_OK;
}

}  // namespace relattn

namespace relattn {

uint64_t KvCacheBytes(const relattn_kv_cache* cache) { return RegionsOf(cache->desc).total; }

void AttachKvCache(const relattn_attention_desc* desc, Plan* plan) {
  plan->cache = CacheRef{};
  const relattn_kv_cache* c = desc->kv_cache;
  if (!c) return;
  plan->cache.on = true;
  plan->cache.k_head_stride = KeyGroupHeadStride(c->desc.capacity, c->desc.head_dim);
  plan->cache.bad = c->bad;
  plan->cache.k_scales = c->k_scales;
  plan->cache.capacity = c->desc.capacity;
}

}  // namespace relattn
