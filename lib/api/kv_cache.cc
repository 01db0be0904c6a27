// The KV cache's C API: sizing, layout in caller memory, checks, append
// (whose per-token conversion is kv_cache_store.cc), and attention's view.
#include "lib/api/kv_cache.h"

#include <cinttypes>

#include "lib/api/validate_memory.h"
#include "lib/api/validate_tensor.h"
#include "lib/common/dtype.h"
#include "lib/common/error.h"

namespace relattn {
namespace {

uint64_t Align64(uint64_t bytes) { return (bytes + 63) / 64 * 64; }

relattn_status CheckStorageDtype(const char* name, relattn_dtype dtype, const char* dim_name,
                                 int32_t dim) {
  if (dtype == RELATTN_Q4 && dim % kQ4BlockValues != 0) {
    return Fail(RELATTN_ERR_BAD_DIMENSION,
                "%s = RELATTN_Q4 with %s = %d: Q4 rows hold blocks of 32 values, the dim must be "
                "a multiple of 32",
                name, dim_name, dim);
  }
  if (dtype == RELATTN_F32 || dtype == RELATTN_F16 || dtype == RELATTN_BF16 ||
      dtype == RELATTN_I8 || dtype == RELATTN_Q4) {
    return RELATTN_OK;
  }
  return Fail(RELATTN_ERR_BAD_DTYPE,
              "%s = %d: must be RELATTN_F32, RELATTN_F16, RELATTN_BF16, RELATTN_I8 or RELATTN_Q4",
              name, (int)dtype);
}

// Checks d; with rope, resolves d->rope into *rope (else leaves it).
relattn_status CheckDesc(const relattn_kv_cache_desc* d, RopeParams* rope) {
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
  if (d->capacity < 1 || d->capacity > RELATTN_MAX_TOKENS) {
    return Fail(RELATTN_ERR_BAD_DIMENSION, "capacity = %" PRId64 ": must be in 1..2^40",
                d->capacity);
  }
  const int32_t dv = d->v_head_dim ? d->v_head_dim : d->head_dim;
  relattn_status s = CheckStorageDtype("k_dtype", d->k_dtype, "head_dim", d->head_dim);
  if (s == RELATTN_OK) s = CheckStorageDtype("v_dtype", d->v_dtype, "v_head_dim", dv);
  if (s == RELATTN_OK) s = CheckSinkTokens(*d);
  if (s == RELATTN_OK && rope) s = ResolveRope(d->rope, d->head_dim, "rope.", rope);
  return s;
}

// Byte offsets of the regions after the header.
struct Regions {
  uint64_t positions, bad, k_scales, v_scales, k, v, sink_k, total;
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
  const uint64_t scale_bytes = sizeof(float) * heads * capacity;  // per I8 K or V
  r.v_scales = r.k_scales + (d.k_dtype == RELATTN_I8 ? Align64(scale_bytes) : 0);
  r.k = r.v_scales + (d.v_dtype == RELATTN_I8 ? Align64(scale_bytes) : 0);
  r.v = r.k + Align64(DtypeBytes(d.k_dtype) * heads * uint64_t(KeyHeadElements(d)));
  r.sink_k = r.v + Align64(DtypeBytes(d.v_dtype) * heads * capacity *
                           uint64_t(RowElements(d.v_dtype, int64_t(dv))));
  r.total = r.sink_k + Align64(SinkKeyFloats(d) * sizeof(float));
  return r;
}

// k or v as append takes it: a [n_tokens][n_kv_heads][dim] F32, F16 or BF16
// tensor sharing no byte with the cache.
relattn_status CheckAppendInput(const relattn_kv_cache& c, const char* name,
                                const relattn_tensor* t, int64_t n_tokens, int64_t dim) {
  if (!t) return Fail(RELATTN_ERR_NULL_ARGUMENT, "%s is NULL", name);
  const int32_t heads = c.desc.n_kv_heads;
  relattn_status s = CheckTensor(name, *t, n_tokens, heads, dim,
                                 "append takes F32, F16 or BF16 (the cache quantises itself)");
  if (s == RELATTN_OK) {
    s = CheckTensorApart(name, *t, n_tokens, heads, dim, "the KV cache's memory", &c,
                         static_cast<size_t>(RegionsOf(c.desc).total));
  }
  return s;
}

// n_tokens, k, v and the positions of an append (the positions array aligned
// and apart from the cache; with RoPE, each within +-2^53).
relattn_status CheckAppend(const relattn_kv_cache& c, int64_t n_tokens, const relattn_tensor* k,
                           const relattn_tensor* v, const relattn_positions* positions,
                           const RopeParams& rope) {
  if (n_tokens < 1 || n_tokens > RELATTN_MAX_TOKENS) {
    return Fail(RELATTN_ERR_BAD_DIMENSION, "n_tokens = %" PRId64 ": must be in 1..2^40", n_tokens);
  }
  relattn_status s = CheckAppendInput(c, "k", k, n_tokens, c.desc.head_dim);
  if (s == RELATTN_OK) s = CheckAppendInput(c, "v", v, n_tokens, c.desc.v_head_dim);
  if (s != RELATTN_OK) return s;
  if (!c.desc.ring && n_tokens > c.desc.capacity - c.length) {
    return Fail(RELATTN_ERR_CACHE_FULL,
                "n_tokens = %" PRId64 ": the cache holds %" PRId64 " of %" PRId64
                " tokens and is not a ring",
                n_tokens, c.length, c.desc.capacity);
  }
  if (positions && c.desc.sink_positions == RELATTN_SINK_POSITIONS_CACHE) {
    return Fail(RELATTN_ERR_BAD_SINK_TOKENS,
                "positions: must be NULL with sink_positions = CACHE (the cache numbers its "
                "tokens: the next is at %" PRId64 ")",
                c.next_position);
  }
  if (!positions || !positions->positions) {
    const int64_t start = positions ? positions->start : c.next_position;
    if (start > INT64_MAX - (n_tokens - 1)) {
      return Fail(RELATTN_ERR_POSITION_OVERFLOW,
                  "positions: start %" PRId64 " + n_tokens - 1 overflows int64", start);
    }
    if (rope.on && (start < -kRopeMaxPosition || start + (n_tokens - 1) > kRopeMaxPosition)) {
      return Fail(RELATTN_ERR_POSITION_OVERFLOW,
                  "positions: %" PRId64 "..%" PRId64
                  " with the cache's rope: must be within +-2^53",
                  start, start + (n_tokens - 1));
    }
    return RELATTN_OK;
  }
  const int64_t* p = positions->positions;
  if ((s = CheckAligned("positions->positions", p, sizeof(int64_t))) ||
      (s = CheckBytesApart("positions->positions", p, sizeof(int64_t) * size_t(n_tokens),
                           "the KV cache's memory", &c,
                           static_cast<size_t>(RegionsOf(c.desc).total)))) {
    return s;
  }
  for (int64_t t = 0; rope.on && t < n_tokens; ++t) {
    if (p[t] < -kRopeMaxPosition || p[t] > kRopeMaxPosition) {
      return Fail(RELATTN_ERR_POSITION_OVERFLOW,
                  "positions->positions[%" PRId64 "] = %" PRId64
                  " with the cache's rope: must be within +-2^53",
                  t, p[t]);
    }
  }
  return RELATTN_OK;
}

}  // namespace

// CheckDesc, and the cache's bytes fit in size_t (32-bit targets).
relattn_status CheckDescAndSize(const relattn_kv_cache_desc* d, RopeParams* rope) {
  if (const relattn_status s = CheckDesc(d, rope)) return s;
  const uint64_t total = RegionsOf(*d).total;
  if (total > SIZE_MAX) {
    return Fail(RELATTN_ERR_BAD_DIMENSION,
                "capacity = %" PRId64 ": the cache would take %" PRIu64
                " bytes, more than this target's address space",
                d->capacity, total);
  }
  return RELATTN_OK;
}

// Claims the cache for one append or truncate (RELATTN_ERR_BUSY if another holds it).
relattn_status BeginAppend(relattn_kv_cache* c) {
  if (__atomic_exchange_n(&c->appending, 1u, __ATOMIC_ACQUIRE) == 0) return RELATTN_OK;
  return Fail(RELATTN_ERR_BUSY,
              "cache: another relattn_kv_cache_append (or _truncate) to it has not returned "
              "(changes to one cache must not overlap)");
}

relattn_status EndAppend(relattn_kv_cache* c, relattn_status status) {
  __atomic_store_n(&c->appending, 0u, __ATOMIC_RELEASE);
  return status;
}

// cache not NULL, laid out by relattn_kv_cache_init (this layout), and aligned.
relattn_status CheckKvCacheMemory(const relattn_kv_cache* cache, const char* what) {
  if (!cache) return Fail(RELATTN_ERR_NULL_ARGUMENT, "%s is NULL", what);
  if (cache->magic != kKvCacheMagic) {
    return Fail(RELATTN_ERR_BAD_CACHE, "%s: not a cache laid out by relattn_kv_cache_init", what);
  }
  if (cache->version != kKvCacheLayoutVersion) {
    return Fail(RELATTN_ERR_BAD_CACHE, "%s: header version %u: this library reads version %u", what,
                cache->version, kKvCacheLayoutVersion);
  }
  if (reinterpret_cast<uintptr_t>(cache) % RELATTN_KV_CACHE_ALIGNMENT != 0) {
    return Fail(RELATTN_ERR_BAD_ALIGNMENT,
                "%s = %p: a cache (or its copy) must be aligned to %d bytes", what,
                static_cast<const void*>(cache), RELATTN_KV_CACHE_ALIGNMENT);
  }
  return RELATTN_OK;
}

// The header's desc valid, its length and slots within capacity (read while
// no append runs: an append changes them).
relattn_status CheckKvCacheHeader(const relattn_kv_cache* cache, const char* what) {
  const relattn_kv_cache_desc& d = cache->desc;
  if (CheckDescAndSize(&d, nullptr) != RELATTN_OK || d.v_head_dim == 0 ||
      !PlausibleRope(cache->rope, d.head_dim) ||
      cache->rope.on != (d.rope.pairing != RELATTN_ROPE_NONE) || cache->length < 0 ||
      cache->length > d.capacity || cache->next_slot < 0 || cache->next_slot >= d.capacity ||
      (cache->length < d.capacity && cache->next_slot != cache->length) ||
      (cache->length == d.capacity && cache->next_slot < d.n_sink_tokens)) {
    return Fail(RELATTN_ERR_BAD_CACHE,
                "%s: its header is inconsistent (desc, length %" PRId64 ", next slot %" PRId64
                "): overwritten, or not a cache",
                what, cache->length, cache->next_slot);
  }
  return RELATTN_OK;
}

relattn_status CheckKvCache(const relattn_kv_cache* cache, const char* what) {
  if (const relattn_status s = CheckKvCacheMemory(cache, what)) return s;
  if (__atomic_load_n(&cache->appending, __ATOMIC_ACQUIRE)) {
    return Fail(RELATTN_ERR_BUSY, "%s: an append to it is running", what);
  }
  return CheckKvCacheHeader(cache, what);
}

KvCacheView ViewOf(relattn_kv_cache* cache) {
  const Regions r = RegionsOf(cache->desc);
  char* base = reinterpret_cast<char*>(cache);
  return KvCacheView{reinterpret_cast<int64_t*>(base + r.positions),
                     reinterpret_cast<uint8_t*>(base + r.bad),
                     reinterpret_cast<float*>(base + r.k_scales),
                     reinterpret_cast<float*>(base + r.v_scales),
                     base + r.k,
                     base + r.v,
                     reinterpret_cast<float*>(base + r.sink_k)};
}

uint64_t KvCacheBytes(const relattn_kv_cache* cache) { return RegionsOf(cache->desc).total; }

}  // namespace relattn

using relattn::Fail;

extern "C" {

relattn_status relattn_kv_cache_size(const relattn_kv_cache_desc* desc, size_t* cache_bytes) {
  if (!cache_bytes) return Fail(RELATTN_ERR_NULL_ARGUMENT, "cache_bytes is NULL");
  relattn::RopeParams rope;
  if (const relattn_status s = relattn::CheckDescAndSize(desc, &rope)) return s;
  *cache_bytes = static_cast<size_t>(relattn::RegionsOf(*desc).total);
  return relattn::Succeed();
}

relattn_status relattn_kv_cache_init(const relattn_kv_cache_desc* desc, void* memory,
                                     size_t cache_bytes, relattn_kv_cache** cache) {
  relattn::RopeParams rope{};  // all of it stored: a saved cache holds no stray bytes
  if (const relattn_status s = relattn::CheckDescAndSize(desc, &rope)) return s;
  if (!memory) return Fail(RELATTN_ERR_NULL_ARGUMENT, "memory is NULL");
  if (!cache) return Fail(RELATTN_ERR_NULL_ARGUMENT, "cache is NULL");
  if (reinterpret_cast<uintptr_t>(memory) % RELATTN_KV_CACHE_ALIGNMENT != 0) {
    return Fail(RELATTN_ERR_BAD_ALIGNMENT, "memory = %p: must be aligned to %d bytes", memory,
                RELATTN_KV_CACHE_ALIGNMENT);
  }
  const uint64_t total = relattn::RegionsOf(*desc).total;
  if (cache_bytes < total) {
    return Fail(RELATTN_ERR_WORKSPACE_TOO_SMALL, "cache_bytes = %zu: must be >= %zu", cache_bytes,
                static_cast<size_t>(total));
  }
  relattn_kv_cache* c = static_cast<relattn_kv_cache*>(memory);
  *c = relattn_kv_cache{};
  c->desc = *desc;
  if (!c->desc.v_head_dim) c->desc.v_head_dim = desc->head_dim;
  c->rope = rope;  // the tables behind desc.rope's pointers, resolved: none is kept
  c->desc.rope.scaling.short_factor = nullptr;
  c->desc.rope.scaling.long_factor = nullptr;
  c->desc.rope.scaling.inv_freq = nullptr;
  c->magic = relattn::kKvCacheMagic;
  c->version = relattn::kKvCacheLayoutVersion;
  *cache = c;
  return relattn::Succeed();
}

relattn_status relattn_kv_cache_append(relattn_kv_cache* cache, int64_t n_tokens,
                                       const relattn_tensor* k, const relattn_tensor* v,
                                       const relattn_positions* positions) {
  relattn_status s;
  if ((s = relattn::CheckKvCacheMemory(cache, "cache")) || (s = relattn::BeginAppend(cache))) {
    return s;
  }
  if ((s = relattn::CheckKvCacheHeader(cache, "cache"))) return relattn::EndAppend(cache, s);
  const relattn_kv_cache_desc& d = cache->desc;
  const relattn::RopeParams& rope = cache->rope;
  if ((s = relattn::CheckAppend(*cache, n_tokens, k, v, positions, rope))) {
    return relattn::EndAppend(cache, s);
  }
  const bool given = positions && positions->positions;
  const int64_t start = positions && !given ? positions->start : cache->next_position;
  const relattn::KvCacheView view = relattn::ViewOf(cache);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t slot = cache->next_slot;
    const int64_t p = given ? positions->positions[t] : start + t;
    relattn::StoreToken(cache, view, rope, *k, *v, t, p, slot);
    if (slot < d.n_sink_tokens) relattn::KeepSinkKey(cache, view, *k, t, slot);
    cache->next_position = p == INT64_MAX ? p : p + 1;
    cache->next_slot = slot + 1 == d.capacity ? d.n_sink_tokens : slot + 1;
    if (cache->length < d.capacity) ++cache->length;
  }
  relattn::MoveSinkTokens(cache, view);
  return relattn::EndAppend(cache, relattn::Succeed());
}

int64_t relattn_kv_cache_length(const relattn_kv_cache* cache) {
  return relattn::IsKvCache(cache) ? cache->length : 0;
}

int64_t relattn_kv_cache_next_position(const relattn_kv_cache* cache) {
  return relattn::IsKvCache(cache) ? cache->next_position : 0;
}

void relattn_kv_cache_clear(relattn_kv_cache* cache) {
  if (!relattn::IsKvCache(cache)) return;
  cache->length = 0;
  cache->next_slot = 0;
  cache->next_position = 0;
  cache->k_max_abs = 0.0f;
  cache->v_max_abs = 0.0f;
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
  RopeParams rope;
  if (const relattn_status s = ResolveRope(desc->rope, c.head_dim, "rope.", &rope)) return s;
  if (!SameRope(rope, cache->rope)) {
    return Fail(RELATTN_ERR_BAD_ROPE,
                "rope: must equal the kv_cache's rope (the same pairs, thetas and "
                "attention factor once resolved: its keys were rotated when appended)");
  }
  if (desc->k.data || desc->v.data || desc->k_pos.positions || desc->k_pos.start) {
    return Fail(RELATTN_ERR_BAD_DIMENSION,
                "k, v and k_pos must be left empty when kv_cache is given");
  }
  resolved->n_kv = cache->length;
  resolved->n_kv_heads = c.n_kv_heads;
  resolved->head_dim = c.head_dim;
  resolved->v_head_dim = c.v_head_dim;
  // K's strides in key groups only size the region for the overlap check;
  // the kernel reads the groups (AttachKvCache). Q4 K and V are rows.
  const int64_t k_row = RowElements(c.k_dtype, c.head_dim);
  const int64_t v_row = RowElements(c.v_dtype, c.v_head_dim);
  const KvCacheView view = ViewOf(cache);
  resolved->k =
      relattn_tensor{view.k, c.k_dtype, k_row, KeyHeadElements(c), view.k_scales, 1, c.capacity};
  resolved->v =
      relattn_tensor{view.v, c.v_dtype, v_row, c.capacity * v_row, view.v_scales, 1, c.capacity};
  resolved->k_pos = relattn_positions{view.positions, 0};
  resolved->kv_cache = nullptr;
  return RELATTN_OK;
}

void AttachKvCache(const relattn_attention_desc* desc, Plan* plan) {
  plan->cache = CacheRef{};
  const relattn_kv_cache* c = desc->kv_cache;
  if (!c) return;
  plan->cache.on = true;
  plan->cache.k_head_stride = KeyHeadElements(c->desc);
  const KvCacheView view = ViewOf(c);
  plan->cache.bad = view.bad;
  plan->cache.k_scales = view.k_scales;
  plan->cache.capacity = c->desc.capacity;
}

}  // namespace relattn
