// RELATTN_Q4 (ggml's q4_0 blocks): K and V tensors of q4_0 bytes against the
// fp64 reference on the values they hold; a KV cache storing K and V in Q4
// holds exactly the q4_0 blocks of what was appended (written here from the
// published definition, ggml-common.h block_q4_0 and quantize_row_q4_0_ref);
// truncate, copy and attach of such a cache; the errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lib/api/kv_cache.h"
#include "lib/common/f16.h"
#include "lib/reference/bounds.h"
#include "lib/reference/reference.h"
#include "relattn/relattn.hpp"
#include "tests/attention_case.h"

namespace relattn_test {
namespace {

constexpr int32_t kHeads = 4, kKvHeads = 2, kD = 64, kDv = 32;
constexpr int64_t kKeys = 150;
constexpr size_t kBlock = 18;  // bytes of 32 values

// ggml's quantize_row_q4_0_ref over rows of `dim` values (x: whole rows).
std::vector<uint8_t> QuantizeQ4_0(const std::vector<float>& x) {
  std::vector<uint8_t> out(x.size() / 32 * kBlock);
  for (size_t b = 0; b < x.size() / 32; ++b) {
    const float* v = x.data() + b * 32;
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < 32; ++i) {
      if (amax < std::fabs(v[i])) {
        amax = std::fabs(v[i]);
        max = v[i];
      }
    }
    const float d = max / -8, id = d ? 1.0f / d : 0.0f;
    uint8_t* y = out.data() + b * kBlock;
    const uint16_t d16 = relattn::F32ToF16(d);
    std::memcpy(y, &d16, 2);
    for (int j = 0; j < 16; ++j) {
      const float x0 = v[j] * id, x1 = v[16 + j] * id;
      const uint8_t xi0 = uint8_t(std::min(15, int(x0 + 8.5f)));
      const uint8_t xi1 = uint8_t(std::min(15, int(x1 + 8.5f)));
      y[2 + j] = uint8_t(xi0 | (xi1 << 4));
    }
  }
  return out;
}

std::vector<float> DequantizeQ4_0(const std::vector<uint8_t>& q) {
  std::vector<float> out(q.size() / kBlock * 32);
  for (size_t b = 0; b < q.size() / kBlock; ++b) {
    const uint8_t* y = q.data() + b * kBlock;
    uint16_t d16;
    std::memcpy(&d16, y, 2);
    const float d = relattn::F16ToF32(d16);
    for (int j = 0; j < 16; ++j) {
      out[b * 32 + j] = float((y[2 + j] & 15) - 8) * d;
      out[b * 32 + 16 + j] = float((y[2 + j] >> 4) - 8) * d;
    }
  }
  return out;
}

std::vector<float> RoundTripF16(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = relattn::F16ToF32(relattn::F32ToF16(x[i]));
  return out;
}

std::vector<float> Uniform(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(n);
  for (float& e : x) e = u(rng);
  return x;
}

// A [tokens][heads][dim] tensor (heads_major: [heads][tokens][dim]) of dtype
// over data; Q4 strides count bytes (dim / 32 * 18 a row).
relattn_tensor TensorOf(const void* data, relattn_dtype dtype, int64_t tokens, int32_t heads,
                        int32_t dim, bool heads_major) {
  const int64_t row = dtype == RELATTN_Q4 ? dim / 32 * int64_t(kBlock) : dim;
  relattn_tensor t{data, dtype, heads * row, row, nullptr, 0, 0};
  if (heads_major) {
    t.token_stride = row;
    t.head_stride = tokens * row;
  }
  return t;
}

// x [tokens][heads][dim] reordered to [heads][tokens][dim] (element size `size`).
template <class T>
std::vector<T> HeadsMajor(const std::vector<T>& x, int64_t tokens, int32_t heads, size_t row) {
  std::vector<T> out(x.size());
  for (int64_t t = 0; t < tokens; ++t) {
    for (int32_t h = 0; h < heads; ++h) {
      std::copy_n(x.begin() + (t * heads + h) * row, row, out.begin() + (h * tokens + t) * row);
    }
  }
  return out;
}

struct Problem {
  int64_t n_q;
  bool causal_alibi = true;
  relattn_rope rope = {};
};

relattn_attention_desc DescOf(const Problem& p, const std::vector<float>& q, float* out) {
  relattn_attention_desc d;
  relattn_attention_desc_init(&d);
  d.n_q = p.n_q;
  d.n_heads = kHeads;
  d.head_dim = kD;
  d.v_head_dim = kDv;
  d.q = relattn::TokensHeadsDim(q.data(), RELATTN_F32, kHeads, kD);
  d.o = relattn::OutputTokensHeadsDim(out, RELATTN_F32, kHeads, kDv);
  d.q_pos.start = kKeys - p.n_q;
  d.mask.causal = p.causal_alibi;
  if (p.causal_alibi) d.bias.kind = RELATTN_BIAS_ALIBI;
  d.rope = p.rope;
  return d;
}

std::vector<double> Run(const relattn_attention_desc& d) {
  std::vector<float> out(size_t(d.n_q) * kHeads * kDv, NAN);
  relattn_attention_desc desc = d;
  desc.o.data = out.data();
  relattn::Workspace ws;
  REQUIRE(bool(ws.Reserve(desc, 1)));
  const relattn_status s = relattn_attention(&desc, ws.data(), ws.bytes(), nullptr);
  INFO(relattn_last_error());
  REQUIRE(s == RELATTN_OK);
  return std::vector<double>(out.begin(), out.end());
}

// The reference over float K and V [tokens][kv_heads][dim].
std::vector<double> Reference(const Problem& p, const std::vector<float>& q,
                              const std::vector<float>& k, const std::vector<float>& v) {
  std::vector<float> unused(size_t(p.n_q) * kHeads * kDv);
  relattn_attention_desc d = DescOf(p, q, unused.data());
  d.n_kv = kKeys;
  d.n_kv_heads = kKvHeads;
  d.k = relattn::TokensHeadsDim(k.data(), RELATTN_F32, kKvHeads, kD);
  d.v = relattn::TokensHeadsDim(v.data(), RELATTN_F32, kKvHeads, kDv);
  std::vector<double> out(unused.size());
  relattn::reference::Attention(d, out.data());
  return out;
}

struct Inputs {
  std::vector<float> q, k, v;
  std::vector<uint8_t> k4, v4;  // q4_0 blocks of k, v
  std::vector<float> k4f, v4f;  // their values
};

Inputs InputsOf(int64_t n_q, uint64_t seed) {
  Inputs in;
  in.q = Uniform(seed, size_t(n_q) * kHeads * kD);
  in.k = Uniform(seed + 1, size_t(kKeys) * kKvHeads * kD);
  in.v = Uniform(seed + 2, size_t(kKeys) * kKvHeads * kDv);
  in.k4 = QuantizeQ4_0(in.k);
  in.v4 = QuantizeQ4_0(in.v);
  in.k4f = DequantizeQ4_0(in.k4);
  in.v4f = DequantizeQ4_0(in.v4);
  return in;
}

TEST_CASE("Q4 K and V tensors: within the f32 bound of the fp64 reference on their values") {
  WorstErrors worst("test_q4");
  relattn_rope halves{};
  halves.pairing = RELATTN_ROPE_HALVES;
  for (const Problem& p : {Problem{1}, Problem{3}, Problem{40}, Problem{40, false},
                           Problem{2, true, halves}, Problem{40, true, halves}}) {
    for (bool heads_major : {false, true}) {
      for (int pair = 0; pair < 3; ++pair) {  // Q4 K + V, Q4 K + f32 V, f32 K + Q4 V
        const bool k_q4 = pair != 2, v_q4 = pair != 1;
        const Inputs in = InputsOf(p.n_q, 7 + p.n_q);
        const std::vector<uint8_t> k4 =
            heads_major ? HeadsMajor(in.k4, kKeys, kKvHeads, kD / 32 * kBlock) : in.k4;
        const std::vector<uint8_t> v4 =
            heads_major ? HeadsMajor(in.v4, kKeys, kKvHeads, kDv / 32 * kBlock) : in.v4;
        const std::vector<float> k = heads_major ? HeadsMajor(in.k, kKeys, kKvHeads, kD) : in.k;
        const std::vector<float> v = heads_major ? HeadsMajor(in.v, kKeys, kKvHeads, kDv) : in.v;
        std::vector<float> unused(size_t(p.n_q) * kHeads * kDv);
        relattn_attention_desc d = DescOf(p, in.q, unused.data());
        d.n_kv = kKeys;
        d.n_kv_heads = kKvHeads;
        d.k = k_q4 ? TensorOf(k4.data(), RELATTN_Q4, kKeys, kKvHeads, kD, heads_major)
                   : TensorOf(k.data(), RELATTN_F32, kKeys, kKvHeads, kD, heads_major);
        d.v = v_q4 ? TensorOf(v4.data(), RELATTN_Q4, kKeys, kKvHeads, kDv, heads_major)
                   : TensorOf(v.data(), RELATTN_F32, kKeys, kKvHeads, kDv, heads_major);
        const std::vector<double> expected =
            Reference(p, in.q, k_q4 ? in.k4f : in.k, v_q4 ? in.v4f : in.v);
        const std::string context = "n_q " + std::to_string(p.n_q) + " pair " +
                                    std::to_string(pair) + (heads_major ? " heads-major" : "") +
                                    (p.rope.pairing ? " rope" : "");
        worst.Note("tensors", CheckAllTargets([&] { return Run(d); }, expected,
                                              relattn::bounds::kF32Output, context));
      }
    }
  }
}

// 64-byte aligned memory.
struct Memory {
  explicit Memory(size_t bytes) : words(bytes / 8 + 16), bytes(bytes) {}
  void* get() {
    return reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(words.data()) + 63) &
                                   ~uintptr_t{63});
  }
  std::vector<uint64_t> words;
  size_t bytes;
};

struct Cache {
  Cache(relattn_dtype k_dtype, relattn_dtype v_dtype, int64_t capacity, bool ring)
      : desc(DescOf(k_dtype, v_dtype, capacity, ring)), memory(Size(desc)) {
    REQUIRE(relattn_kv_cache_init(&desc, memory.get(), memory.bytes, &cache) == RELATTN_OK);
  }
  static relattn_kv_cache_desc DescOf(relattn_dtype k_dtype, relattn_dtype v_dtype,
                                      int64_t capacity, bool ring) {
    relattn_kv_cache_desc d{};
    d.n_kv_heads = kKvHeads;
    d.head_dim = kD;
    d.v_head_dim = kDv;
    d.capacity = capacity;
    d.k_dtype = k_dtype;
    d.v_dtype = v_dtype;
    d.ring = ring;
    return d;
  }
  static size_t Size(const relattn_kv_cache_desc& d) {
    size_t bytes = 0;
    REQUIRE(relattn_kv_cache_size(&d, &bytes) == RELATTN_OK);
    return bytes;
  }
  // Appends tokens [t0, t1) of in (positions: t, unless `positions`).
  void Append(const Inputs& in, int64_t t0, int64_t t1, bool positions = false) {
    const relattn_tensor k =
        relattn::TokensHeadsDim(in.k.data() + t0 * kKvHeads * kD, RELATTN_F32, kKvHeads, kD);
    const relattn_tensor v =
        relattn::TokensHeadsDim(in.v.data() + t0 * kKvHeads * kDv, RELATTN_F32, kKvHeads, kDv);
    std::vector<int64_t> p(size_t(t1 - t0));
    for (int64_t t = t0; t < t1; ++t) p[size_t(t - t0)] = t;
    const relattn_positions pos{positions ? p.data() : nullptr, 0};
    REQUIRE(relattn_kv_cache_append(cache, t1 - t0, &k, &v, positions ? &pos : nullptr) ==
            RELATTN_OK);
  }
  std::vector<double> Attend(const Problem& p, const Inputs& in, relattn_kv_cache* c) const {
    std::vector<float> unused(size_t(p.n_q) * kHeads * kDv);
    relattn_attention_desc d = relattn_test::DescOf(p, in.q, unused.data());
    d.kv_cache = c;
    d.q_pos.start = relattn_kv_cache_next_position(c) - p.n_q;
    return Run(d);
  }
  relattn_kv_cache_desc desc;
  Memory memory;
  relattn_kv_cache* cache = nullptr;
};

TEST_CASE("a Q4 KV cache holds the q4_0 blocks of what it was given") {
  WorstErrors worst("test_q4");
  const relattn_dtype pairs[][2] = {{RELATTN_Q4, RELATTN_Q4},
                                    {RELATTN_Q4, RELATTN_F16},
                                    {RELATTN_F16, RELATTN_Q4},
                                    {RELATTN_Q4, RELATTN_F32}};
  for (const auto& pair : pairs) {
    for (const Problem& p : {Problem{1}, Problem{3}, Problem{7}, Problem{40}}) {
      const Inputs in = InputsOf(p.n_q, 100 + p.n_q);
      Cache c(pair[0], pair[1], kKeys, false);
      c.Append(in, 0, kKeys);
      const std::vector<float> k = pair[0] == RELATTN_Q4 ? in.k4f : RoundTripF16(in.k);
      const std::vector<float> v = pair[1] == RELATTN_Q4    ? in.v4f
                                   : pair[1] == RELATTN_F16 ? RoundTripF16(in.v)
                                                            : in.v;
      const std::string context = "k " + std::to_string(pair[0]) + " v " + std::to_string(pair[1]) +
                                  " n_q " + std::to_string(p.n_q);
      worst.Note("cache",
                 CheckAllTargets([&] { return c.Attend(p, in, c.cache); }, Reference(p, in.q, k, v),
                                 relattn::bounds::kF32Output, context));
    }
  }
}

TEST_CASE("Q4 cache: truncate then append equals never having appended; copies attach") {
  const Inputs in = InputsOf(3, 300);
  for (bool ring : {false, true}) {
    CAPTURE(ring);
    // Plain: 120 appended, 50 kept. Ring of 48 after 100 tokens holds 52..99: 30 kept (52..81).
    const int64_t capacity = ring ? 48 : kKeys, appended = ring ? 100 : 120;
    const int64_t kept = ring ? 30 : 50, first = ring ? appended - capacity : 0;
    Cache a(RELATTN_Q4, RELATTN_Q4, capacity, ring);
    a.Append(in, 0, appended, true);
    REQUIRE(relattn_kv_cache_truncate(a.cache, kept) == RELATTN_OK);
    a.Append(in, first + kept, first + kept + 9, true);
    Cache b(RELATTN_Q4, RELATTN_Q4, capacity, ring);
    b.Append(in, first, first + kept + 9, true);
    const Problem decode{3};
    const std::vector<double> expected = b.Attend(decode, in, b.cache);
    ForEachTarget([&](int64_t target) {
      INFO(TargetNameOf(target));
      CHECK(a.Attend(decode, in, a.cache) == b.Attend(decode, in, b.cache));
    });
    Memory copy(a.memory.bytes);
    std::memcpy(copy.get(), a.cache, a.memory.bytes);
    relattn_kv_cache* attached = nullptr;
    REQUIRE(relattn_kv_cache_attach(copy.get(), a.memory.bytes, &attached) == RELATTN_OK);
    CHECK(a.Attend(decode, in, attached) == expected);
  }
}

// A value whose block scale would overflow f16 makes the row non-finite, as
// f16 storage does beyond its range: the queries that see that key are
// poisoned (NaN), the others unchanged, and attention still runs.
TEST_CASE("Q4 cache: a value beyond kQ4MaxAbs flags its row as non-finite") {
  Inputs in = InputsOf(1, 400);
  Cache c(RELATTN_Q4, RELATTN_Q4, kKeys, false);
  in.k[size_t((7 * kKvHeads + 0) * kD + 3)] = 6e5f;  // token 7, KV head 0
  c.Append(in, 0, kKeys);
  const std::vector<double> out = c.Attend(Problem{1}, in, c.cache);
  const int32_t group = kHeads / kKvHeads;
  for (int32_t h = 0; h < kHeads; ++h) {
    CAPTURE(h);
    for (int32_t e = 0; e < kDv; ++e) {
      CHECK(std::isnan(out[size_t(h * kDv + e)]) == (h < group));
    }
  }
  in.k[size_t((7 * kKvHeads + 0) * kD + 3)] = 5e5f;  // below: stored, finite
  Cache ok(RELATTN_Q4, RELATTN_Q4, kKeys, false);
  ok.Append(in, 0, kKeys);
  for (double x : ok.Attend(Problem{1}, in, ok.cache)) CHECK(std::isfinite(x));
}

TEST_CASE("attach refuses a Q4 block scale that is not finite or beyond the recorded maximum") {
  const Inputs in = InputsOf(1, 400);
  Cache saved(RELATTN_Q4, RELATTN_Q4, kKeys, false);
  saved.Append(in, 0, 20);
  struct Corruption {
    const char* what;
    bool v;
    float scale;
    const char* message;
  } corruptions[] = {{"K NaN", false, NAN, "slot 5 of KV head 1: K block 1 scale nan"},
                     {"K huge", false, 4.0f, "slot 5 of KV head 1: K block 1 scale 4"},
                     {"V inf", true, INFINITY, "slot 5 of KV head 1: V block 0 scale inf"}};
  for (const Corruption& x : corruptions) {
    CAPTURE(std::string(x.what));
    Memory copy(saved.memory.bytes);
    std::memcpy(copy.get(), saved.cache, saved.memory.bytes);
    relattn_kv_cache* c = static_cast<relattn_kv_cache*>(copy.get());
    const relattn::KvCacheView view = relattn::ViewOf(c);
    const int64_t row_bytes = (x.v ? kDv : kD) / 32 * int64_t(kBlock);
    uint8_t* row = static_cast<uint8_t*>(x.v ? view.v : view.k) + (kKeys + 5) * row_bytes;
    const uint16_t bits = relattn::F32ToF16(x.scale);
    std::memcpy(row + (x.v ? 0 : kBlock), &bits, 2);
    relattn_kv_cache* attached = nullptr;
    CHECK(relattn_kv_cache_attach(copy.get(), saved.memory.bytes, &attached) ==
          RELATTN_ERR_BAD_CACHE);
    const std::string message = relattn_last_error();
    CAPTURE(message);
    CHECK(message.find(x.message) != std::string::npos);
    CHECK(attached == nullptr);
  }
}

TEST_CASE("Q4 errors: dims not a multiple of 32, q or append inputs in Q4") {
  relattn_kv_cache_desc d = Cache::DescOf(RELATTN_Q4, RELATTN_F16, 16, false);
  d.head_dim = 40;
  size_t bytes = 0;
  CHECK(relattn_kv_cache_size(&d, &bytes) == RELATTN_ERR_BAD_DIMENSION);
  CHECK(std::string(relattn_last_error()).find("head_dim = 40") != std::string::npos);
  d = Cache::DescOf(RELATTN_F16, RELATTN_Q4, 16, false);
  d.v_head_dim = 48;
  CHECK(relattn_kv_cache_size(&d, &bytes) == RELATTN_ERR_BAD_DIMENSION);
  CHECK(std::string(relattn_last_error()).find("v_head_dim = 48") != std::string::npos);

  const Inputs in = InputsOf(1, 500);
  std::vector<float> out(size_t(kHeads) * kDv);
  relattn_attention_desc a = DescOf(Problem{1}, in.q, out.data());
  a.n_kv = kKeys;
  a.n_kv_heads = kKvHeads;
  a.k = TensorOf(in.k4.data(), RELATTN_Q4, kKeys, kKvHeads, kD, false);
  a.v = TensorOf(in.v4.data(), RELATTN_Q4, kKeys, kKvHeads, kDv, false);
  relattn_attention_desc bad = a;
  bad.q = TensorOf(in.k4.data(), RELATTN_Q4, 1, kHeads, kD, false);
  size_t ws = 0;
  CHECK(relattn_attention_workspace_size(&bad, 1, &ws) == RELATTN_ERR_UNSUPPORTED);
  CHECK(std::string(relattn_last_error()).find("q.dtype = Q4") != std::string::npos);
  bad = a;
  bad.v_head_dim = 16;  // a Q4 row of 16 values
  bad.o.token_stride = kHeads * 16;
  bad.o.head_stride = 16;
  CHECK(relattn_attention_workspace_size(&bad, 1, &ws) == RELATTN_ERR_BAD_DIMENSION);
  CHECK(std::string(relattn_last_error()).find("v.dtype = Q4 with dim 16") != std::string::npos);

  Cache c(RELATTN_Q4, RELATTN_Q4, 16, false);
  const relattn_tensor k4 = TensorOf(in.k4.data(), RELATTN_Q4, 1, kKvHeads, kD, false);
  const relattn_tensor v = relattn::TokensHeadsDim(in.v.data(), RELATTN_F32, kKvHeads, kDv);
  CHECK(relattn_kv_cache_append(c.cache, 1, &k4, &v, nullptr) == RELATTN_ERR_UNSUPPORTED);
  CHECK(relattn_kv_cache_length(c.cache) == 0);
}

}  // namespace
}  // namespace relattn_test
