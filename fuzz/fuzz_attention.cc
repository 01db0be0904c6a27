// libFuzzer target: random bytes become an attention descriptor (dims,
// strides, dtypes, scheme, tables, masks, positions with extreme int64 values,
// workspace sizes including too small) with real buffers sized exactly from
// it (so that any overread meets ASan's redzone), sometimes with K and V
// appended to a KV cache (random capacity, storage dtypes, ring mode, append
// chunks, a clear and a second fill) that the call attends over, or with
// arbitrary bytes handed in as a cache. Each call runs on a SIMD target and
// with 1..5 threads the input picks. Every call must either fail with a
// status and a message, leaving the output untouched, or match the fp64
// reference within lib/reference/bounds.h, and give the same bits as one
// thread, and (int8 paths) as the portable kernel. Any crash, sanitizer
// report or mismatch aborts.
#include <pthreadpool.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "hwy/targets.h"
#include "lib/api/kv_cache.h"
#include "lib/common/bf16.h"
#include "lib/common/f16.h"
#include "lib/reference/bounds.h"
#include "lib/reference/reference.h"
#include "relattn/relattn.h"
#if defined(RELATTN_HAVE_X86_INT_DOT)
#include "ports/x86/madd_scores.h"
#include "ports/x86/vnni_scores.h"
#elif defined(RELATTN_HAVE_ARM_SDOT)
#include "ports/arm/sdot_scores.h"
#endif

namespace {

// Reads the fuzz input as a stream of choices; past its end every read is 0.
class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint32_t Next() { return at_ < size_ ? data_[at_++] : 0; }
  uint32_t Below(uint32_t n) {
    if (n == 0) return 0;
    const uint32_t low = Next();  // sequenced: the same decoding with any compiler
    const uint32_t high = Next();
    return (low | high << 8) % n;
  }
  bool Flag() { return Next() & 1; }
  float Unit() { return (float(Below(2001)) - 1000.0f) / 1000.0f; }  // [-1, 1]
  // Copies up to n of the bytes not read yet to dst (consuming them); returns how many.
  size_t Rest(uint8_t* dst, size_t n) {
    const size_t count = std::min(n, size_ - at_);
    if (count) std::memcpy(dst, data_ + at_, count);
    at_ += count;
    return count;
  }

 private:
  const uint8_t* data_;
  size_t size_, at_ = 0;
};

const int64_t kEdges[] = {0,
                          1,
                          -1,
                          1000,
                          -1000,
                          INT64_MAX,
                          INT64_MIN,
                          INT64_MAX - 100,
                          INT64_MIN + 100,
                          int64_t(1) << 40,
                          -(int64_t(1) << 40),
                          int64_t(1) << 31};

int64_t Position(Bytes& b) {
  return b.Flag() ? kEdges[b.Below(sizeof(kEdges) / sizeof(kEdges[0]))]
                  : int64_t(b.Below(3000)) - 1500;
}

size_t Bytes_(relattn_dtype dtype) { return dtype == RELATTN_F16 ? 2 : 4; }

// A tensor of tokens x heads x dim with strides that are valid unless the
// input asks otherwise; fills `storage` with finite values.
relattn_tensor Tensor(Bytes& b, int64_t tokens, int32_t heads, int32_t dim,
                      std::vector<uint8_t>& storage) {
  relattn_tensor t{};
  t.dtype = b.Flag() ? RELATTN_F16 : RELATTN_F32;
  const bool heads_major = b.Flag();
  t.token_stride = heads_major ? dim : int64_t(heads) * dim;
  t.head_stride = heads_major ? tokens * dim : dim;
  if (b.Below(16) == 0) t.token_stride = int64_t(b.Below(2 * dim + 1)) - 1;  // maybe overlapping
  // Room for every element the strides reach (the library cannot know the
  // buffer's size; invalid strides are rejected before any read).
  const int64_t reach = (tokens - 1) * std::max<int64_t>(t.token_stride, 0) +
                        (heads - 1) * std::max<int64_t>(t.head_stride, 0) + dim;
  const size_t elems = size_t(std::max<int64_t>(reach, 1));
  storage.assign(elems * Bytes_(t.dtype), 0);
  for (size_t i = 0; i < elems; ++i) {
    const float x = b.Unit();
    if (t.dtype == RELATTN_F16) {
      const uint16_t h = relattn::F32ToF16(x);
      std::memcpy(&storage[2 * i], &h, 2);
    } else {
      std::memcpy(&storage[4 * i], &x, 4);
    }
  }
  t.data = storage.data();
  return t;
}

void PrintDesc(const relattn_attention_desc& d) {
  std::fprintf(
      stderr,
      "n_q %lld n_kv %lld heads %d/%d d %d dv %d scale %g\n"
      "q dtype %d strides %lld %lld pos %s start %lld\n"
      "k dtype %d strides %lld %lld pos %s start %lld\n"
      "v dtype %d strides %lld %lld; o dtype %d\n"
      "bias %d alibi(slopes %s max_bias %g causal %d) t5(dt %d nb %d md %d bi %d) "
      "shaw k %d\nmask causal %d window %lld valid %lld\n",
      (long long)d.n_q, (long long)d.n_kv, d.n_heads, d.n_kv_heads, d.head_dim, d.v_head_dim,
      d.scale, d.q.dtype, (long long)d.q.token_stride, (long long)d.q.head_stride,
      d.q_pos.positions ? "array" : "start", (long long)d.q_pos.start, d.k.dtype,
      (long long)d.k.token_stride, (long long)d.k.head_stride,
      d.k_pos.positions ? "array" : "start", (long long)d.k_pos.start, d.v.dtype,
      (long long)d.v.token_stride, (long long)d.v.head_stride, d.o.dtype, d.bias.kind,
      d.bias.alibi.slopes ? "given" : "NULL", d.bias.alibi.max_bias, d.bias.alibi.causal,
      d.bias.t5.table_dtype, d.bias.t5.num_buckets, d.bias.t5.max_distance, d.bias.t5.bidirectional,
      d.bias.shaw.k, d.mask.causal, (long long)d.mask.window, (long long)d.mask.n_valid_kv);
  std::fprintf(stderr,
               "first_valid %lld segments %s allowed %s (words %lld offset %lld) lse %s softcap %g "
               "sinks %s\n",
               (long long)d.mask.first_valid_kv, d.mask.q_segments ? "given" : "NULL",
               d.mask.allowed ? "given" : "NULL", (long long)d.mask.allowed_row_words,
               (long long)d.mask.allowed_key_offset, d.lse ? "given" : "NULL", d.softcap,
               d.sinks ? "given" : "NULL");
  for (const auto* pos : {&d.q_pos, &d.k_pos}) {
    if (!pos->positions) continue;
    const int64_t n = pos == &d.q_pos ? d.n_q : d.n_kv;
    std::fprintf(stderr, "%s positions:", pos == &d.q_pos ? "q" : "k");
    for (int64_t t = 0; t < n; ++t) std::fprintf(stderr, " %lld", (long long)pos->positions[t]);
    std::fprintf(stderr, "\n");
  }
}

// Element (token, head, e) of an f32, f16 or bf16 tensor.
float ElementOf(const relattn_tensor& t, int64_t token, int32_t head, int32_t e) {
  const int64_t i = token * t.token_stride + head * t.head_stride + e;
  const uint16_t* bits = static_cast<const uint16_t*>(t.data);
  return t.dtype == RELATTN_F16    ? relattn::F16ToF32(bits[i])
         : t.dtype == RELATTN_BF16 ? relattn::BF16ToF32(bits[i])
                                   : static_cast<const float*>(t.data)[i];
}

// An f16 tensor's values rounded to bf16 in place (elements of 2 bytes
// both), so that *t and *ref_t read them as RELATTN_BF16.
void F16ToBF16InPlace(std::vector<uint8_t>& storage, relattn_tensor* t, relattn_tensor* ref_t) {
  for (size_t i = 0; i + 1 < storage.size(); i += 2) {
    uint16_t h;
    std::memcpy(&h, &storage[i], 2);
    const uint16_t bf = relattn::F32ToBF16(relattn::F16ToF32(h));
    std::memcpy(&storage[i], &bf, 2);
  }
  t->dtype = ref_t->dtype = RELATTN_BF16;
}

// precision: FAST a quarter of the time, sometimes a value outside the enum.
// The bound FAST adds (lib/reference/bounds.h): bf16 P.V, and for f16 Q and K
// their bf16 rounding, with |q|, |k|, |v| <= 1.
double FastBound(const relattn_attention_desc& d) {
  if (d.precision != RELATTN_PRECISION_FAST) return 0.0;
  const double scale = d.scale != 0.0f ? std::fabs(d.scale) : 1.0 / std::sqrt(d.head_dim);
  const bool f16_qk = d.q.dtype == RELATTN_F16 && d.k.dtype == RELATTN_F16;
  return f16_qk ? relattn::bounds::F16FastOutput(scale * d.head_dim, 1.0)
                : relattn::bounds::kBF16FastOutput;
}

// A failed call must leave a message.
void CheckFailed(relattn_status status) {
  if (status == RELATTN_OK || relattn_last_error()[0] == '\0') std::abort();
}

// The KV-cache mode's buffers: the cache, and the tokens it holds as it
// stores them (f16 storage rounds, int8 storage quantises each row as
// relattn_quantize_i8 does) for the reference.
// What a cache holds as relattn.h defines append and truncate: the token
// (of the descriptor's K and V) and the position in each slot.
struct CacheModel {
  int64_t capacity = 1, sinks = 0, length = 0, next_slot = 0, next_position = 0;
  std::vector<int64_t> token, position;
  void Reset(int64_t c, int64_t s) {
    capacity = c, sinks = s;
    token.assign(size_t(c), 0);
    position.assign(size_t(c), 0);
    Clear();
  }
  void Clear() { length = next_slot = next_position = 0; }
  void Append(int64_t t, int64_t p) {
    token[next_slot] = t;
    position[next_slot] = p;
    next_position = p == INT64_MAX ? p : p + 1;
    next_slot = next_slot + 1 == capacity ? sinks : next_slot + 1;
    length = std::min(length + 1, capacity);
  }
  // Keeps the oldest n (append order: sinks, then the window from next_slot on).
  void Truncate(int64_t n) {
    if (n == 0) return Clear();
    if (n == length) return;  // nothing dropped: nothing moves
    std::vector<int64_t> order;
    const bool full = length == capacity;
    for (int64_t s = 0; s < (full ? sinks : length); ++s) order.push_back(s);
    for (int64_t s = next_slot; full && s < capacity; ++s) order.push_back(s);
    for (int64_t s = sinks; full && s < next_slot; ++s) order.push_back(s);
    std::vector<int64_t> t(static_cast<size_t>(n)), p(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) t[i] = token[order[i]], p[i] = position[order[i]];
    std::copy(t.begin(), t.end(), token.begin());
    std::copy(p.begin(), p.end(), position.begin());
    length = next_slot = n;
    next_position = p[n - 1] == INT64_MAX ? p[n - 1] : p[n - 1] + 1;
  }
};

struct CacheCase {
  std::vector<uint8_t> memory;
  std::vector<float> k, v;
  std::vector<int8_t> k_i8, q_i8;
  std::vector<float> k_scales, q_scales;
  std::vector<int64_t> positions;
  std::vector<uint64_t> junk;  // ArbitraryCache's bytes
  relattn_kv_cache* cache = nullptr;
  relattn_kv_cache_desc cd{};
  relattn_attention_desc plain{};  // the descriptor's K and V before they went in
  int64_t start = 0;               // token t's position without a positions array: start + t
  CacheModel model;
  std::vector<uint64_t> copy;  // AttachArbitrary's memory
};

// The position of the descriptor's token t.
int64_t PositionOf(const CacheCase& cc, int64_t t) {
  return cc.plain.k_pos.positions ? cc.plain.k_pos.positions[t] : cc.start + t;
}

// Appends tokens [t0, t0 + n) of the descriptor (positions: NULL, continuing,
// or their own) and follows in the model on success; a failure must leave a
// message and change nothing.
relattn_status AppendTokens(CacheCase* cc, int64_t t0, int64_t n, bool continuing) {
  const relattn_attention_desc& plain = cc->plain;
  relattn_tensor k = plain.k, v = plain.v;
  k.data = static_cast<const char*>(k.data) + t0 * k.token_stride * Bytes_(k.dtype);
  v.data = static_cast<const char*>(v.data) + t0 * v.token_stride * Bytes_(v.dtype);
  relattn_positions pos{nullptr, cc->start + t0};
  if (plain.k_pos.positions) pos = {plain.k_pos.positions + t0, 0};
  const int64_t from = cc->model.next_position;
  const relattn_status status =
      relattn_kv_cache_append(cc->cache, n, &k, &v, continuing ? nullptr : &pos);
  if (status != RELATTN_OK) {
    CheckFailed(status);
    if (relattn_kv_cache_length(cc->cache) != cc->model.length ||
        relattn_kv_cache_next_position(cc->cache) != cc->model.next_position) {
      std::abort();  // a failed append changed the cache
    }
    return status;
  }
  for (int64_t t = 0; t < n; ++t) {
    cc->model.Append(t0 + t, continuing ? from + t : PositionOf(*cc, t0 + t));
  }
  return status;
}

// Decode (n_q <= 7) over int8 cache keys quantises each float query row as
// relattn_quantize_i8 does and uses it for every product (relattn.h): the
// reference gets the same int8 rows.
void QuantiseDecodeQueries(relattn_attention_desc* ref, CacheCase* cc) {
  if (ref->n_q > 7 || ref->q.dtype == RELATTN_I8) return;
  cc->q_i8.resize(size_t(ref->n_q) * ref->n_heads * ref->head_dim);
  cc->q_scales.resize(size_t(ref->n_q) * ref->n_heads);
  relattn_tensor quantized;
  if (relattn_quantize_i8(&ref->q, ref->n_q, ref->n_heads, ref->head_dim, cc->q_i8.data(),
                          cc->q_scales.data(), &quantized) == RELATTN_OK) {
    ref->q = quantized;  // else q is invalid: the attention call fails too
  }
}

// Turns d into an attention over cc's cache and *ref into the same attention
// over the tokens the model says the cache holds, as the cache stores them
// (f16 rounded; int8 quantised per row as relattn_quantize_i8 does). keep_n_kv:
// d->n_kv stays as given (an error unless it equals the cache's length).
void CacheReference(CacheCase* cc, relattn_attention_desc* d, relattn_attention_desc* ref,
                    bool keep_n_kv) {
  const relattn_attention_desc& plain = cc->plain;
  const relattn_kv_cache_desc& cd = cc->cd;
  const int64_t held = relattn_kv_cache_length(cc->cache);
  if (held != cc->model.length ||
      relattn_kv_cache_next_position(cc->cache) != cc->model.next_position) {
    std::abort();
  }
  const int32_t heads = plain.n_kv_heads, dim = plain.head_dim;
  const int32_t dv = plain.v_head_dim ? plain.v_head_dim : dim;
  cc->k.resize(size_t(held) * heads * dim);
  cc->v.resize(size_t(held) * heads * dv);
  cc->positions.resize(size_t(held));
  for (int64_t t = 0; t < held; ++t) {
    const int64_t token = cc->model.token[t];
    cc->positions[t] = cc->model.position[t];
    for (int32_t h = 0; h < heads; ++h) {
      for (int32_t e = 0; e < dim; ++e) {
        float x = ElementOf(plain.k, token, h, e);
        if (cd.k_dtype == RELATTN_F16) x = relattn::F16ToF32(relattn::F32ToF16(x));
        cc->k[(t * heads + h) * dim + e] = x;
      }
      for (int32_t e = 0; e < dv; ++e) {
        float x = ElementOf(plain.v, token, h, e);
        if (cd.v_dtype == RELATTN_F16) x = relattn::F16ToF32(relattn::F32ToF16(x));
        cc->v[(t * heads + h) * dv + e] = x;
      }
    }
  }
  const relattn_attention_desc given = *d;
  *ref = plain;
  ref->softcap = given.softcap;
  ref->sinks = given.sinks;
  ref->n_kv = held;
  ref->k = relattn_tensor{cc->k.data(), RELATTN_F32, int64_t(heads) * dim, dim, nullptr, 0, 0};
  ref->v = relattn_tensor{cc->v.data(), RELATTN_F32, int64_t(heads) * dv, dv, nullptr, 0, 0};
  if (cd.k_dtype == RELATTN_I8 && held > 0) {
    cc->k_i8.resize(cc->k.size());
    cc->k_scales.resize(size_t(held) * heads);
    relattn_tensor quantized;
    if (relattn_quantize_i8(&ref->k, held, heads, dim, cc->k_i8.data(), cc->k_scales.data(),
                            &quantized) != RELATTN_OK) {
      std::abort();  // finite rows of valid dims
    }
    ref->k = quantized;
    QuantiseDecodeQueries(ref, cc);
  }
  ref->k_pos = relattn_positions{cc->positions.data(), 0};
  ref->mask.n_valid_kv = -1;
  d->kv_cache = cc->cache;
  if (!keep_n_kv) d->n_kv = 0;
  d->n_kv_heads = d->head_dim = d->v_head_dim = 0;
  d->k = d->v = relattn_tensor{};
  d->k_pos = relattn_positions{};
  d->mask.n_valid_kv = -1;
}

// Appends d's K and V (in random chunks) to a new cache and turns d into an
// attention over it; *ref becomes the same attention over the tokens the
// cache holds. False (after checking the failure's message) when a cache
// call rejects its input.
bool UseKvCache(Bytes& b, relattn_attention_desc* d, relattn_attention_desc* ref, CacheCase* cc) {
  const relattn_attention_desc plain = *d;
  cc->plain = plain;
  const bool rope = plain.rope.pairing != RELATTN_ROPE_NONE;
  relattn_kv_cache_desc& cd = cc->cd;
  cd.n_kv_heads = plain.n_kv_heads;
  cd.head_dim = plain.head_dim;
  cd.v_head_dim = plain.v_head_dim;
  cd.capacity = 1 + b.Below(uint32_t(plain.n_kv) + 16);
  cd.ring = b.Flag();
  // Sink tokens (TEXT positions): the first ones stay, the ring wraps over the rest.
  cd.n_sink_tokens = cd.ring && b.Below(4) == 0 ? b.Below(uint32_t(cd.capacity)) : 0;
  // With RoPE the cache rounds K after rotating it: only f32 storage keeps
  // the reference (which rotates the unrounded K) within the bounds.
  cd.k_dtype = rope ? RELATTN_F32 : relattn_dtype(b.Below(3));
  cd.v_dtype = b.Flag() ? RELATTN_F16 : RELATTN_F32;
  cd.rope = plain.rope;
  size_t bytes = 0;
  relattn_status status = relattn_kv_cache_size(&cd, &bytes);
  if (status != RELATTN_OK) return CheckFailed(status), false;
  cc->memory.assign(bytes + 64, 0);
  void* aligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(cc->memory.data()) + 63) &
                                          ~uintptr_t{63});
  status = relattn_kv_cache_init(&cd, aligned, bytes, &cc->cache);
  if (status != RELATTN_OK) return CheckFailed(status), false;
  cc->model.Reset(cd.capacity, cd.n_sink_tokens);
  // Positions: the descriptor's array, or start + t (start kept where no
  // token's position can overflow the harness's own arithmetic).
  cc->start = plain.k_pos.start;
  if (cc->start > (int64_t(1) << 62) || cc->start < -(int64_t(1) << 62)) cc->start = 0;
  const bool chunks = plain.k.token_stride >= 0 && plain.v.token_stride >= 0;
  for (int64_t t0 = 0; t0 < plain.n_kv;) {
    const int64_t n =
        chunks ? std::min<int64_t>(plain.n_kv - t0, 1 + b.Below(uint32_t(plain.n_kv))) : plain.n_kv;
    // NULL continues from the last position + 1 (0 for the first token).
    const bool continuing = t0 > 0 && !plain.k_pos.positions && b.Below(8) == 0;
    if (AppendTokens(cc, t0, n, continuing) != RELATTN_OK) return false;
    t0 += n;
  }
  if (b.Below(8) == 0) {  // cleared, then filled again in one append
    relattn_kv_cache_clear(cc->cache);
    cc->model.Clear();
    if (relattn_kv_cache_length(cc->cache) != 0 || relattn_kv_cache_next_position(cc->cache) != 0) {
      std::abort();
    }
    if (AppendTokens(cc, 0, plain.n_kv, false) != RELATTN_OK) return false;
  }
  // The cache holds the last `held` tokens.
  if (cc->model.length != std::min<int64_t>(plain.n_kv, cd.capacity)) std::abort();
  CacheReference(cc, d, ref, b.Below(16) == 0);
  return true;
}

// Mode (a): truncates interleaved with appends. Each step truncates the cache
// to a random length (the model keeps the same oldest tokens) and appends a
// random range of the descriptor's tokens, continuing from the last kept
// position or at their own; then d and *ref are rebuilt from the model.
void TruncateAndAppend(Bytes& b, CacheCase* cc, relattn_attention_desc* d,
                       relattn_attention_desc* ref) {
  const relattn_attention_desc& plain = cc->plain;
  const bool chunks = plain.k.token_stride >= 0 && plain.v.token_stride >= 0;
  for (uint32_t step = 1 + b.Below(4); step > 0; --step) {
    const int64_t n = b.Below(uint32_t(cc->model.length + 1));
    if (relattn_kv_cache_truncate(cc->cache, n) != RELATTN_OK) std::abort();
    cc->model.Truncate(n);
    if (relattn_kv_cache_truncate(cc->cache, n + 1) != RELATTN_ERR_BAD_DIMENSION) std::abort();
    const int64_t t0 = chunks ? b.Below(uint32_t(plain.n_kv)) : 0;
    const int64_t count = chunks ? b.Below(uint32_t(plain.n_kv - t0 + 1)) : plain.n_kv;
    if (count > 0) AppendTokens(cc, t0, count, b.Flag());
  }
  CacheReference(cc, d, ref, b.Below(16) == 0);
}

// Attention over an attached cache with queries of its own dims: a status
// (output untouched), or outputs finite unless a token is flagged non-finite.
void AttendAttached(Bytes& b, const relattn_kv_cache* c) {
  const relattn_kv_cache_desc& cd = c->desc;
  const int32_t heads = cd.n_kv_heads, dim = cd.head_dim, dv = cd.v_head_dim;
  const int64_t n_q = 1 + b.Below(9);
  std::vector<float> q(size_t(n_q) * heads * dim), out(size_t(n_q) * heads * dv, 7.0f);
  for (float& x : q) x = b.Unit();
  relattn_attention_desc a;
  relattn_attention_desc_init(&a);
  a.n_q = n_q;
  a.n_heads = heads;
  a.q = relattn_tensor{q.data(), RELATTN_F32, int64_t(heads) * dim, dim, nullptr, 0, 0};
  a.o = relattn_output{out.data(), RELATTN_F32, int64_t(heads) * dv, dv};
  const int64_t next = relattn_kv_cache_next_position(c);
  a.q_pos.start = next > INT64_MIN + 3 ? next - int64_t(b.Below(4)) : next;
  a.bias.kind = b.Flag() ? RELATTN_BIAS_ALIBI : RELATTN_BIAS_NONE;
  a.mask.causal = b.Flag();
  a.rope = cd.rope;
  a.kv_cache = c;
  size_t ws_bytes = 0;
  relattn_status status = relattn_attention_workspace_size(&a, 1, &ws_bytes);
  std::vector<uint64_t> ws(ws_bytes / 8 + 8);
  void* aligned =
      reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws.data()) + 63) & ~uintptr_t{63});
  if (status == RELATTN_OK) status = relattn_attention(&a, aligned, ws_bytes, nullptr);
  if (status != RELATTN_OK) {
    CheckFailed(status);
    for (float x : out) {
      if (x != 7.0f) std::abort();  // a failed call wrote to the output
    }
    return;
  }
  const relattn::KvCacheView view = relattn::ViewOf(c);
  bool flagged = false;
  for (int64_t i = 0; i < int64_t(heads) * cd.capacity; ++i) flagged = flagged || view.bad[i];
  for (float x : out) {
    if (!std::isfinite(x) && !flagged) std::abort();
  }
}

// Mode (b): a copy of the cache's bytes, overwritten by the input's remaining
// bytes at an offset, a header field set to an edge value, or bytes flipped,
// attached with cache_bytes maybe short. attach must refuse with a message
// (leaving *cache as it was) or give a cache attention and appends can use.
void AttachArbitrary(Bytes& b, CacheCase* cc) {
  const size_t total = size_t(relattn::KvCacheBytes(cc->cache));
  cc->copy.assign(total / 8 + 8, 0);
  uint8_t* bytes = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(cc->copy.data()) + 63) &
                                              ~uintptr_t{63});
  std::memcpy(bytes, cc->cache, total);
  static const size_t kFields[][2] = {
      {offsetof(relattn_kv_cache, magic), 8},
      {offsetof(relattn_kv_cache, version), 4},
      {offsetof(relattn_kv_cache, desc.n_kv_heads), 4},
      {offsetof(relattn_kv_cache, desc.head_dim), 4},
      {offsetof(relattn_kv_cache, desc.v_head_dim), 4},
      {offsetof(relattn_kv_cache, desc.capacity), 8},
      {offsetof(relattn_kv_cache, desc.k_dtype), 4},
      {offsetof(relattn_kv_cache, desc.v_dtype), 4},
      {offsetof(relattn_kv_cache, desc.ring), 4},
      {offsetof(relattn_kv_cache, desc.rope.pairing), 4},
      {offsetof(relattn_kv_cache, desc.rope.rotary_dims), 4},
      {offsetof(relattn_kv_cache, desc.n_sink_tokens), 8},
      {offsetof(relattn_kv_cache, desc.sink_positions), 4},
      {offsetof(relattn_kv_cache, length), 8},
      {offsetof(relattn_kv_cache, next_slot), 8},
      {offsetof(relattn_kv_cache, next_position), 8},
      {offsetof(relattn_kv_cache, appending), 4},
      {offsetof(relattn_kv_cache, k_max_abs), 4},
      {offsetof(relattn_kv_cache, v_max_abs), 4},
      {offsetof(relattn_kv_cache, rope.on), 1},
      {offsetof(relattn_kv_cache, rope.pairs), 4},
  };
  switch (b.Below(3)) {
    case 0: {
      const size_t at = b.Below(uint32_t(std::min<size_t>(total, 1 << 16)));
      b.Rest(bytes + at, total - at);
      break;
    }
    case 1: {
      const size_t* f = kFields[b.Below(sizeof(kFields) / sizeof(kFields[0]))];
      const int64_t value = b.Flag() ? Position(b) : int64_t(b.Below(300)) - 10;
      std::memcpy(bytes + f[0], &value, f[1]);  // the low bytes (little-endian)
      break;
    }
    default:
      for (uint32_t n = 1 + b.Below(8); n > 0; --n) {
        bytes[b.Below(uint32_t(std::min<size_t>(total, 1 << 16)))] ^= uint8_t(1 + b.Below(255));
      }
  }
  const size_t cache_bytes = b.Below(8) == 0 ? b.Below(uint32_t(total) + 1) : total;
  relattn_kv_cache* const untouched = reinterpret_cast<relattn_kv_cache*>(uintptr_t{64});
  relattn_kv_cache* attached = untouched;
  const relattn_status status = relattn_kv_cache_attach(bytes, cache_bytes, &attached);
  if (status != RELATTN_OK) {
    CheckFailed(status);
    if (attached != untouched) std::abort();
    return;
  }
  if (static_cast<void*>(attached) != bytes) std::abort();
  AttendAttached(b, attached);
  const relattn_kv_cache_desc& cd = attached->desc;
  std::vector<float> k(size_t(cd.n_kv_heads) * cd.head_dim, 0.25f);
  std::vector<float> v(size_t(cd.n_kv_heads) * cd.v_head_dim, -0.25f);
  const relattn_tensor kt{
      k.data(), RELATTN_F32, int64_t(cd.n_kv_heads) * cd.head_dim, cd.head_dim, nullptr, 0, 0};
  const relattn_tensor vt{
      v.data(), RELATTN_F32, int64_t(cd.n_kv_heads) * cd.v_head_dim, cd.v_head_dim, nullptr, 0, 0};
  const relattn_status appended = relattn_kv_cache_append(attached, 1, &kt, &vt, nullptr);
  if (appended != RELATTN_OK) return CheckFailed(appended);
  AttendAttached(b, attached);
  const int64_t n =
      b.Below(uint32_t(std::min<int64_t>(relattn_kv_cache_length(attached), 1 << 16)) + 1);
  if (relattn_kv_cache_truncate(attached, n) != RELATTN_OK) std::abort();
  relattn_kv_cache* again = nullptr;
  if (relattn_kv_cache_attach(bytes, total, &again) != RELATTN_OK) std::abort();  // still valid
}

// The SIMD target and thread count one execution runs with.
struct Run {
  int64_t target;
  int32_t n_threads;
};

Run ChooseRun(Bytes& b) {
  static const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  Run run{0, 1 + int32_t(b.Below(5))};
  if (!targets.empty()) run.target = targets[b.Below(uint32_t(targets.size()))];
  return run;
}

// A pthreadpool of n threads (2..5), made once and kept.
const relattn_threads* ThreadsFor(int32_t n) {
  static relattn_threads threads[6];
  if (n < 2) return nullptr;
  if (!threads[n].parallel_for) {
    if (relattn_threads_from_pthreadpool(pthreadpool_create(size_t(n)), &threads[n]) !=
        RELATTN_OK) {
      std::abort();
    }
  }
  return &threads[n];
}

// One relattn_attention call of d on run's target and threads, with a
// workspace of ws_bytes (aligned, sized exactly but for the alignment).
relattn_status Call(const relattn_attention_desc& d, const Run& run, size_t ws_bytes, void* out) {
  relattn_attention_desc call = d;
  call.o.data = out;
  hwy::SetSupportedTargetsForTest(run.target);
  void* ws = std::aligned_alloc(64, (ws_bytes + 64) / 64 * 64);
  const relattn_status status = relattn_attention(&call, ws, ws_bytes, ThreadsFor(run.n_threads));
  std::free(ws);
  hwy::SetSupportedTargetsForTest(0);
  return status;
}

// Element i of an output as a double.
double OutputAt(const relattn_output& o, const std::vector<uint8_t>& out, size_t i) {
  return o.dtype == RELATTN_F16
             ? relattn::F16ToF32(reinterpret_cast<const uint16_t*>(out.data())[i])
             : reinterpret_cast<const float*>(out.data())[i];
}

// Prints what ref (the tensors the reference read: never NULL) holds.
void PrintKeys(const relattn_attention_desc& ref) {
  for (int64_t t = 0; t < ref.n_kv; ++t) {
    const int64_t k_at = t * ref.k.token_stride, v_at = t * ref.v.token_stride;
    const double k = ref.k.dtype == RELATTN_I8
                         ? double(static_cast<const int8_t*>(ref.k.data)[k_at])
                         : double(ElementOf(ref.k, t, 0, 0));
    std::fprintf(stderr, "key %lld: k %g (%s) v %g\n", (long long)t, k,
                 ref.k.dtype == RELATTN_I8 ? "int8" : "float", double(ElementOf(ref.v, t, 0, 0)));
    (void)v_at;
  }
}

void CheckAgainstReference(const relattn_attention_desc& d, const relattn_attention_desc& ref,
                           const std::vector<uint8_t>& out, const std::vector<double>& expected,
                           float slope0) {
  const double bound = relattn::bounds::Output(d.o.dtype) + FastBound(d);
  if (std::getenv("RELATTN_FUZZ_PRINT")) {
    PrintDesc(d);
    std::fprintf(stderr, "reference o[0] = %.9g; slope0 %.9g\n", expected[0], slope0);
  }
  for (size_t i = 0; i < expected.size(); ++i) {
    const double got = OutputAt(d.o, out, i);
    if (!(std::fabs(got - expected[i]) <= bound)) {
      std::fprintf(stderr, "mismatch at %zu: %.9g vs reference %.9g\n", i, got, expected[i]);
      PrintDesc(d);
      PrintKeys(ref);
      std::abort();
    }
  }
}

// True where relattn.h promises the int8 products summed exactly: int8 Q and
// K without RoPE, or decode over int8 cache keys.
bool IntegerProducts(const relattn_attention_desc& d, const relattn_attention_desc& ref) {
  const bool tensors = !d.kv_cache && d.q.dtype == RELATTN_I8 && d.k.dtype == RELATTN_I8 &&
                       d.rope.pairing == RELATTN_ROPE_NONE;
  return tensors || (d.kv_cache && ref.k.dtype == RELATTN_I8 && d.n_q <= 7);
}

// The integer dot-product kernels (VNNI, vpmaddwd, SDOT) on or off.
void SetIntDotKernels(bool enabled) {
#if defined(RELATTN_HAVE_X86_INT_DOT)
  relattn::x86::SetVnniEnabled(enabled);
  relattn::x86::SetMaddEnabled(enabled);
#elif defined(RELATTN_HAVE_ARM_SDOT)
  relattn::arm::SetSdotEnabled(enabled);
#else
  (void)enabled;
#endif
}

// Reruns d with one thread (the same bits for any thread count) and, where
// the products are integers, with the portable kernel (the same bits as the
// ISA's): any difference aborts.
void CheckSameBits(const relattn_attention_desc& d, const Run& run, const std::vector<uint8_t>& out,
                   bool integer) {
  size_t ws_bytes = 0;
  if (relattn_attention_workspace_size(&d, 1, &ws_bytes) != RELATTN_OK) std::abort();
  const Run one{run.target, 1};
  std::vector<uint8_t> again(out.size());
  if (run.n_threads > 1) {
    if (Call(d, one, ws_bytes, again.data()) != RELATTN_OK || again != out) {
      std::fprintf(stderr, "%d threads and 1 thread differ\n", run.n_threads);
      PrintDesc(d);
      std::abort();
    }
  }
  if (integer) {
    SetIntDotKernels(false);
    const relattn_status status = Call(d, one, ws_bytes, again.data());
    SetIntDotKernels(true);
    if (status != RELATTN_OK || again != out) {
      std::fprintf(stderr, "the integer kernel and the portable path differ on %s\n",
                   hwy::TargetName(run.target));
      PrintDesc(d);
      std::abort();
    }
  }
}

// Bytes that are not a cache, handed in as one: refused, nothing read past
// its header. (Their first byte differs from the magic's, which the fuzzer
// could otherwise learn from the comparison: a header that passes every
// check over too little memory is what attaching with a size will catch.)
const relattn_kv_cache* ArbitraryCache(Bytes& b, CacheCase* cc) {
  cc->junk.assign(64 * 8, 0);
  for (uint64_t& word : cc->junk) {
    for (int i = 0; i < 8; ++i) word = word << 8 | b.Next();
  }
  reinterpret_cast<uint8_t*>(cc->junk.data())[0] = 0;
  return reinterpret_cast<const relattn_kv_cache*>(cc->junk.data());
}

}  // namespace

// Index masks by token (segment ids, allowed bits) and left padding, valid
// mostly, out of range sometimes; the buffers d points into are the caller's.
void AddIndexMasks(Bytes& b, relattn_attention_desc* d, std::vector<int32_t>* q_seg,
                   std::vector<int32_t>* k_seg, std::vector<uint64_t>* allowed) {
  if (b.Below(4) == 0) d->mask.first_valid_kv = b.Below(uint32_t(d->n_kv) + 2);
  if (b.Below(4) == 0) {
    const uint32_t ids = 1 + b.Below(4);
    q_seg->resize(size_t(d->n_q));
    k_seg->resize(size_t(d->n_kv));
    for (int32_t& x : *q_seg) x = int32_t(b.Below(ids));
    for (int32_t& x : *k_seg) x = int32_t(b.Below(ids));
    if (b.Flag()) {  // sequence after sequence, the engines' layout
      std::sort(q_seg->begin(), q_seg->end());
      std::sort(k_seg->begin(), k_seg->end());
    }
    d->mask.q_segments = q_seg->data();
    d->mask.k_segments = b.Below(32) == 0 ? nullptr : k_seg->data();
  }
  if (b.Below(4) == 0) {
    const int64_t offset = b.Below(uint32_t(d->n_kv) + 2);
    const int64_t need = offset <= d->n_kv ? (d->n_kv - offset + 63) / 64 : 1;
    const int64_t words = std::max<int64_t>(1, need + b.Below(3) - (b.Below(16) == 0 ? 1 : 0));
    allowed->resize(size_t(d->n_q * words));
    for (uint64_t& w : *allowed) {
      for (int byte = 0; byte < 8; ++byte) w = w << 8 | (b.Flag() ? 0xffu : b.Next());
    }
    d->mask.allowed = allowed->data();
    d->mask.allowed_row_words = words;
    d->mask.allowed_key_offset = offset;
  }
}

// The lse output against the reference's (bounds::kLse per unit of 1 + |lse|;
// infinities exactly).
void CheckLse(const relattn_attention_desc& d, const std::vector<float>& lse,
              const std::vector<double>& expected) {
  for (size_t i = 0; i < lse.size(); ++i) {
    const double got = lse[i], want = expected[i];
    const bool ok = std::isinf(want) || std::isinf(got)
                        ? got == want
                        : std::fabs(got - want) <= relattn::bounds::kLse * (1 + std::fabs(want));
    if (!ok) {
      std::fprintf(stderr, "lse mismatch at %zu: %.9g vs reference %.9g\n", i, got, want);
      PrintDesc(d);
      std::abort();
    }
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes b(data, size);
  relattn_attention_desc d;
  relattn_attention_desc_init(&d);
  d.n_q = 1 + b.Below(40);
  d.n_kv = 1 + b.Below(80);
  d.n_kv_heads = 1 + b.Below(3);
  d.n_heads = d.n_kv_heads * (1 + b.Below(3));
  if (b.Below(32) == 0) d.n_heads += 1;  // GQA ratio that may not divide
  d.head_dim = 1 + b.Below(40);
  d.v_head_dim = b.Flag() ? 0 : 1 + b.Below(40);
  if (b.Below(64) == 0) d.head_dim = 257;
  const int32_t dv = d.v_head_dim ? d.v_head_dim : d.head_dim;
  std::vector<uint8_t> q, k, v;
  d.q = Tensor(b, d.n_q, d.n_heads, d.head_dim, q);
  d.k = Tensor(b, d.n_kv, d.n_kv_heads, d.head_dim, k);
  d.v = Tensor(b, d.n_kv, d.n_kv_heads, dv, v);
  std::vector<int64_t> q_pos(d.n_q), k_pos(d.n_kv);
  d.q_pos.start = Position(b);
  d.k_pos.start = Position(b);
  if (b.Flag()) {
    for (int64_t& p : q_pos) p = Position(b);
    d.q_pos.positions = q_pos.data();
  }
  if (b.Flag()) {
    for (int64_t& p : k_pos) p = Position(b);
    d.k_pos.positions = k_pos.data();
  }
  // Scores stay within the range the tested error bounds assume: |scale q.k|
  // <= 2 sqrt(head_dim).
  d.scale = b.Flag()
                ? 0.0f
                : (0.5f + 1.5f * float(b.Below(1001)) / 1000.0f) / std::sqrt(float(d.head_dim));
  std::vector<float> table(size_t(d.n_heads) * 2 * 64 + 64), scales(d.n_heads + 1);
  for (float& x : table) x = 4.0f * b.Unit();
  for (float& x : scales) x = 0.03f * std::fabs(b.Unit());  // |i8 * scale| <= 3.8
  std::vector<uint16_t> table_f16(table.size());
  std::vector<int8_t> table_i8(table.size());
  std::vector<float> slopes(d.n_heads + 1);
  for (float& x : slopes) x = std::fabs(b.Unit());
  std::vector<float> shaw_vector(size_t(d.n_heads) * 129 * d.head_dim);
  for (float& x : shaw_vector) x = b.Unit();
  switch (b.Below(6)) {
    case 1:
      d.bias.kind = RELATTN_BIAS_ALIBI;
      d.bias.alibi = {b.Flag() ? slopes.data() : nullptr, float(b.Below(10)), int(b.Flag())};
      break;
    case 2: {
      // Table entries in [-4, 4] in every dtype: the tested error bounds hold
      // for scores of moderate size (the f32 rounding of s is relative to |s|).
      const relattn_dtype dtype = relattn_dtype(b.Below(3));
      const void* data = table.data();
      if (dtype == RELATTN_F16) {
        for (size_t i = 0; i < table.size(); ++i) table_f16[i] = relattn::F32ToF16(table[i]);
        data = table_f16.data();
      } else if (dtype == RELATTN_I8) {
        for (size_t i = 0; i < table.size(); ++i) table_i8[i] = int8_t(b.Below(255)) - 127;
        data = table_i8.data();
      }
      d.bias.kind = RELATTN_BIAS_T5;
      d.bias.t5 = {data,
                   dtype,
                   b.Flag() ? scales.data() : nullptr,
                   int32_t(b.Below(70)),
                   int32_t(b.Below(300)),
                   int(b.Flag())};
      break;
    }
    case 3:
      d.bias.kind = RELATTN_BIAS_SHAW;
      d.bias.shaw = {table.data(), int32_t(b.Below(64)) - 1};
      break;
    case 4: d.bias.kind = relattn_bias_kind(b.Below(8)); break;
    case 5:
      d.bias.kind = RELATTN_BIAS_SHAW_VECTOR;
      d.bias.shaw_vector = {shaw_vector.data(), int32_t(b.Below(66)) - 1, int(b.Flag())};
      break;
  }
  // RoPE: valid parameters mostly, invalid ones sometimes.
  if (b.Below(3) == 0) {
    d.rope.pairing = relattn_rope_pairing(b.Below(4));
    d.rope.rotary_dims = b.Flag() ? 0 : int32_t(b.Below(d.head_dim + 2));
    d.rope.base = b.Flag() ? 0.0f : 1.0f + 1e5f * float(b.Below(1000)) / 1000.0f;
    d.rope.linear_scale = b.Flag() ? 0.0f : float(b.Below(8)) / 2.0f;
  }
  // KV-cache mode (K and V float, appended to a cache after the masks are set).
  const bool use_cache = b.Below(4) == 0;
  // int8 K (and Q), quantised from the float rows.
  std::vector<int8_t> q_i8, k_i8;
  std::vector<float> q_scales, k_scales;
  const int int8_mode = int(b.Below(4));  // 0, 1: float; 2: k int8; 3: q and k int8
  if (int8_mode >= 2 && !use_cache && d.k.token_stride >= 0 && d.k.head_stride >= 0) {
    k_i8.resize(size_t(d.n_kv) * d.n_kv_heads * d.head_dim);
    k_scales.resize(size_t(d.n_kv) * d.n_kv_heads);
    relattn_tensor out;
    if (relattn_quantize_i8(&d.k, d.n_kv, d.n_kv_heads, d.head_dim, k_i8.data(), k_scales.data(),
                            &out) == RELATTN_OK) {
      d.k = out;
    }
  }
  if (int8_mode == 3 && d.q.token_stride >= 0 && d.q.head_stride >= 0) {
    q_i8.resize(size_t(d.n_q) * d.n_heads * d.head_dim);
    q_scales.resize(size_t(d.n_q) * d.n_heads);
    relattn_tensor out;
    if (relattn_quantize_i8(&d.q, d.n_q, d.n_heads, d.head_dim, q_i8.data(), q_scales.data(),
                            &out) == RELATTN_OK) {
      d.q = out;
    }
  }
  d.mask.causal = b.Flag();
  d.mask.window = b.Flag() ? int64_t(b.Below(100)) - 2 : 0;
  d.mask.n_valid_kv = b.Flag() ? int64_t(b.Below(d.n_kv + 3)) - 1 : -1;
  relattn_attention_desc ref = d;
  CacheCase cache_case;
  if (use_cache && !UseKvCache(b, &d, &ref, &cache_case)) return 0;
  d.o.dtype = b.Flag() ? RELATTN_F16 : RELATTN_F32;
  d.o.token_stride = int64_t(d.n_heads) * dv;
  d.o.head_stride = dv;
  const size_t out_bytes = size_t(d.n_q) * d.n_heads * dv * Bytes_(d.o.dtype);
  std::vector<uint8_t> out(out_bytes, 0xa5);
  d.o.data = out.data();
  const bool shrink_workspace = b.Below(8) == 0;
  const uint32_t workspace_choice = b.Below(1 << 16);
  // Choices read last, so that older seeds decode as before up to here.
  const Run run = ChooseRun(b);
  if (use_cache && b.Below(16) == 0) d.kv_cache = ArbitraryCache(b, &cache_case);
  // Soft-capping and learned sinks (valid mostly; out of range sometimes).
  std::vector<float> sinks(size_t(d.n_heads));
  if (b.Below(4) == 0) {
    d.softcap = b.Below(8) == 0 ? float(b.Below(5)) - 2.0f : 0.5f + 60.0f * std::fabs(b.Unit());
  }
  if (b.Below(4) == 0) {
    for (float& x : sinks) x = b.Below(64) == 0 ? NAN : 4.0f * b.Unit();
    d.sinks = sinks.data();
  }
  ref.softcap = d.softcap;
  ref.sinks = d.sinks;
  // Cache modes read last (older seeds decode as before): truncates and
  // appends (a), or attaching the cache's bytes made arbitrary (b).
  if (use_cache && d.kv_cache == cache_case.cache) {
    const uint32_t mode = b.Below(8);
    if (mode == 1) TruncateAndAppend(b, &cache_case, &d, &ref);
    if (mode == 2) return AttachArbitrary(b, &cache_case), 0;
  }
  // Index masks and the lse output, read last as well; index masks over
  // tensors only (the reference holds a cache's tokens in its own order).
  std::vector<int32_t> q_seg, k_seg;
  std::vector<uint64_t> allowed;
  if (!d.kv_cache) AddIndexMasks(b, &d, &q_seg, &k_seg, &allowed);
  ref.mask.first_valid_kv = d.mask.first_valid_kv;
  ref.mask.q_segments = d.mask.q_segments;
  ref.mask.k_segments = d.mask.k_segments;
  ref.mask.allowed = d.mask.allowed;
  ref.mask.allowed_row_words = d.mask.allowed_row_words;
  ref.mask.allowed_key_offset = d.mask.allowed_key_offset;
  std::vector<float> lse(size_t(d.n_q) * d.n_heads, 12345.0f);
  if (b.Below(4) == 0) d.lse = lse.data();
  // bf16 tensors (f16 ones rounded) and precision, read last too.
  if (!d.kv_cache) {
    if (d.q.dtype == RELATTN_F16 && b.Below(4) == 0) F16ToBF16InPlace(q, &d.q, &ref.q);
    if (d.k.dtype == RELATTN_F16 && b.Below(4) == 0) F16ToBF16InPlace(k, &d.k, &ref.k);
    if (d.v.dtype == RELATTN_F16 && b.Below(4) == 0) F16ToBF16InPlace(v, &d.v, &ref.v);
  }
  if (b.Below(4) == 0) d.precision = RELATTN_PRECISION_FAST;
  if (b.Below(64) == 0) d.precision = relattn_precision(int(b.Below(5)) - 2);

  size_t ws_bytes = 0;
  if (relattn_attention_workspace_size(&d, run.n_threads, &ws_bytes) == RELATTN_OK &&
      shrink_workspace) {
    ws_bytes = workspace_choice % (ws_bytes + 1);
  }
  const relattn_status status = Call(d, run, ws_bytes, out.data());
  if (status != RELATTN_OK) {
    for (uint8_t byte : out) {
      if (byte != 0xa5) std::abort();  // a failed call wrote to the output
    }
    for (float x : lse) {
      if (x != 12345.0f) std::abort();  // ... or to the lse
    }
    if (relattn_last_error()[0] == '\0') std::abort();  // no message
    return 0;
  }
  std::vector<double> expected(size_t(d.n_q) * d.n_heads * dv);
  ref.o = d.o;
  std::vector<double> expected_lse(lse.size());
  relattn::reference::Attention(ref, expected.data(), d.lse ? expected_lse.data() : nullptr);
  CheckAgainstReference(d, ref, out, expected, slopes[0]);
  if (d.lse) CheckLse(d, lse, expected_lse);
  CheckSameBits(d, run, out, IntegerProducts(d, ref));
  return 0;
}
