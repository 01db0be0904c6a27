// StreamingLLM sink tokens in a ring KV cache (n_sink_tokens, sink_positions):
// after 10^5 wraps (10^4 under qemu) the sinks are still the first tokens, and decode over the
// cache is bit-identical, on every SIMD target, to a fresh cache holding the
// same tokens in the same slots at the same positions; both position rules
// match the fp64 reference (TEXT: positions as appended; CACHE: sinks at
// 0..S-1, the window after them, the query next); and the desc's errors.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "lib/common/f16.h"
#include "lib/reference/bounds.h"
#include "lib/reference/reference.h"
#include "relattn/relattn.hpp"
#include "tests/attention_case.h"
#include "tests/token_value.h"

namespace relattn_test {
namespace {

constexpr int32_t kKvHeads = 2, kHeads = 4, kDim = 16;
constexpr int64_t kSinks = 4, kCapacity = 12, kWindow = kCapacity - kSinks;

// Tokens `ids` as [n][kKvHeads][kDim] K and V.
struct Tokens {
  std::vector<float> k, v;
  explicit Tokens(const std::vector<int64_t>& ids) {
    for (int64_t n : ids) {
      for (int32_t h = 0; h < kKvHeads; ++h) {
        for (int32_t e = 0; e < kDim; ++e) {
          k.push_back(TokenValue(n, h, e, 0));
          v.push_back(TokenValue(n, h, e, 1));
        }
      }
    }
  }
};

relattn_rope Rope() { return relattn_rope{RELATTN_ROPE_HALVES, 0, 0.0f, 0.0f, {}}; }

class Cache {
 public:
  Cache(int64_t sinks, relattn_sink_positions rule, relattn_dtype k_dtype) {
    desc_ = relattn_kv_cache_desc{};
    desc_.n_kv_heads = kKvHeads;
    desc_.head_dim = kDim;
    desc_.capacity = kCapacity;
    desc_.k_dtype = k_dtype;
    desc_.v_dtype = RELATTN_F16;
    desc_.ring = 1;
    desc_.rope = Rope();
    desc_.n_sink_tokens = sinks;
    desc_.sink_positions = rule;
    size_t bytes = 0;
    REQUIRE(relattn_kv_cache_size(&desc_, &bytes) == RELATTN_OK);
    memory_.assign(bytes / 8 + 16, 0);
    void* aligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(memory_.data()) + 63) &
                                            ~uintptr_t{63});
    REQUIRE(relattn_kv_cache_init(&desc_, aligned, bytes, &cache_) == RELATTN_OK);
  }
  relattn_kv_cache* get() const { return cache_; }
  // Appends tokens ids (positions NULL, or the given ones).
  relattn_status Append(const std::vector<int64_t>& ids, const int64_t* positions = nullptr) {
    const Tokens t(ids);
    const relattn_tensor k = relattn::TokensHeadsDim(t.k.data(), RELATTN_F32, kKvHeads, kDim);
    const relattn_tensor v = relattn::TokensHeadsDim(t.v.data(), RELATTN_F32, kKvHeads, kDim);
    const relattn_positions pos{positions, 0};
    return relattn_kv_cache_append(cache_, int64_t(ids.size()), &k, &v, positions ? &pos : nullptr);
  }

 private:
  relattn_kv_cache_desc desc_;
  std::vector<uint64_t> memory_;
  relattn_kv_cache* cache_ = nullptr;
};

// The queries: 2 rows of kHeads heads, values from ids 10^9, 10^9 + 1.
Tokens QueryRows() {
  std::vector<float> q;
  for (int64_t t = 0; t < 2; ++t) {
    for (int32_t h = 0; h < kHeads; ++h) {
      for (int32_t e = 0; e < kDim; ++e) q.push_back(TokenValue(1'000'000'000 + t, h, e, 0));
    }
  }
  Tokens rows({});
  rows.k = q;
  return rows;
}

// Decode of the 2 queries at q_start over the cache, ALiBi causal, f32 out.
std::vector<double> Decode(const relattn_kv_cache* cache, int64_t q_start) {
  static const Tokens q = QueryRows();
  relattn_attention_desc d;
  relattn_attention_desc_init(&d);
  d.n_q = 2;
  d.n_heads = kHeads;
  d.q = relattn::TokensHeadsDim(q.k.data(), RELATTN_F32, kHeads, kDim);
  std::vector<float> out(size_t(2) * kHeads * kDim);
  d.o = relattn::OutputTokensHeadsDim(out.data(), RELATTN_F32, kHeads, kDim);
  d.q_pos.start = q_start;
  d.bias.kind = RELATTN_BIAS_ALIBI;
  d.bias.alibi.max_bias = 8.0f;
  d.bias.alibi.causal = 1;
  d.mask.causal = 1;
  d.rope = Rope();
  d.kv_cache = cache;
  relattn::Workspace ws;
  REQUIRE(bool(relattn::Attention(d, ws, nullptr)));
  return std::vector<double>(out.begin(), out.end());
}

// The reference over the tokens of `slots` (ids) at `positions`, queries at q_start.
std::vector<double> Reference(const std::vector<int64_t>& ids, const std::vector<int64_t>& pos,
                              int64_t q_start) {
  static const Tokens q = QueryRows();
  const Tokens kv(ids);
  std::vector<float> v = kv.v;  // as the cache stores V: f16
  for (float& x : v) x = relattn::F16ToF32(relattn::F32ToF16(x));
  relattn_attention_desc d;
  relattn_attention_desc_init(&d);
  d.n_q = 2;
  d.n_kv = int64_t(ids.size());
  d.n_heads = kHeads;
  d.n_kv_heads = kKvHeads;
  d.head_dim = kDim;
  d.q = relattn::TokensHeadsDim(q.k.data(), RELATTN_F32, kHeads, kDim);
  d.k = relattn::TokensHeadsDim(kv.k.data(), RELATTN_F32, kKvHeads, kDim);
  d.v = relattn::TokensHeadsDim(v.data(), RELATTN_F32, kKvHeads, kDim);
  d.q_pos.start = q_start;
  d.k_pos.positions = pos.data();
  d.bias.kind = RELATTN_BIAS_ALIBI;
  d.bias.alibi.max_bias = 8.0f;
  d.bias.alibi.causal = 1;
  d.mask.causal = 1;
  d.rope = Rope();
  std::vector<double> out(size_t(2) * kHeads * kDim);
  relattn::reference::Attention(d, out.data());
  return out;
}

// Slot contents after `total` tokens 0..total-1 went into a ring of kCapacity
// with kSinks sinks: the id in each slot.
std::vector<int64_t> SlotIds(int64_t total) {
  std::vector<int64_t> ids;
  for (int64_t s = 0; s < kSinks; ++s) ids.push_back(s);
  for (int64_t s = kSinks; s < kCapacity; ++s) {
    // The latest token n >= kSinks with (n - kSinks) % kWindow == s - kSinks.
    const int64_t last = total - 1 - ((total - 1 - s) % kWindow + kWindow) % kWindow;
    ids.push_back(last);
  }
  return ids;
}

TEST_CASE(
    "sink tokens: 10^5 wraps keep the sinks first; bit-identical to a fresh cache, "
    "both rules, every target") {
#if defined(RELATTN_TEST_EMULATED)
  constexpr int64_t kWraps = 10'000;  // under qemu: the appends are scalar code, tested natively
#else
  constexpr int64_t kWraps = 100'000;
#endif
  const int64_t total = kSinks + kWraps * kWindow + 3;  // ends mid-window
  for (relattn_sink_positions rule : {RELATTN_SINK_POSITIONS_TEXT, RELATTN_SINK_POSITIONS_CACHE}) {
    for (relattn_dtype k_dtype : {RELATTN_F32, RELATTN_I8}) {
      CAPTURE(int(rule));
      CAPTURE(int(k_dtype));
      Cache ring(kSinks, rule, k_dtype);
      std::vector<int64_t> batch;
      for (int64_t n = 0; n < total; ++n) {
        batch.push_back(n);
        if (batch.size() == size_t(kWindow) || n == total - 1) {
          REQUIRE(ring.Append(batch) == RELATTN_OK);
          batch.clear();
        }
      }
      REQUIRE(relattn_kv_cache_length(ring.get()) == kCapacity);
      REQUIRE(relattn_kv_cache_next_position(ring.get()) == total);
      const std::vector<int64_t> ids = SlotIds(total);
      // Positions: TEXT, the ids; CACHE, the window's ids and the sinks just before the oldest.
      const int64_t oldest = total - kWindow;
      std::vector<int64_t> positions = ids;
      if (rule == RELATTN_SINK_POSITIONS_CACHE) {
        for (int64_t s = 0; s < kSinks; ++s) positions[s] = oldest - kSinks + s;
      }
      // A fresh TEXT cache with the same tokens in the same slots at the same positions.
      Cache fresh(kSinks, RELATTN_SINK_POSITIONS_TEXT, k_dtype);
      REQUIRE(fresh.Append(ids, positions.data()) == RELATTN_OK);
      ForEachTarget([&](int64_t target) {
        INFO(TargetNameOf(target));
        CHECK(Decode(ring.get(), total) == Decode(fresh.get(), total));
      });
      if (k_dtype == RELATTN_F32) {
        // Against the reference; CACHE: sinks at 0..S-1, window S.., queries next.
        std::vector<int64_t> ref_pos = positions;
        int64_t q_start = total;
        if (rule == RELATTN_SINK_POSITIONS_CACHE) {
          for (int64_t s = 0; s < kCapacity; ++s) ref_pos[s] = positions[s] - (oldest - kSinks);
          q_start = kCapacity;
        }
        const double err =
            CheckAllTargets([&] { return Decode(ring.get(), total); },
                            Reference(ids, ref_pos, q_start), ErrorBound(RELATTN_F32),
                            rule == RELATTN_SINK_POSITIONS_CACHE ? "cache rule" : "text rule");
        MESSAGE("sink tokens, ",
                std::string(rule == RELATTN_SINK_POSITIONS_CACHE ? "CACHE" : "TEXT"),
                " rule after 10^5 wraps: max |error| ", err);
      }
    }
  }
}

TEST_CASE(
    "sink tokens: before the ring is full nothing moves; without sinks the ring is as "
    "before") {
  Cache cache(kSinks, RELATTN_SINK_POSITIONS_CACHE, RELATTN_F32);
  std::vector<int64_t> first;
  for (int64_t n = 0; n < kCapacity; ++n) first.push_back(n);
  REQUIRE(cache.Append(first) == RELATTN_OK);
  Cache text(kSinks, RELATTN_SINK_POSITIONS_TEXT, RELATTN_F32);
  REQUIRE(text.Append(first) == RELATTN_OK);
  CHECK(Decode(cache.get(), kCapacity) == Decode(text.get(), kCapacity));
}

TEST_CASE("sink tokens: bad fields fail with RELATTN_ERR_BAD_SINK_TOKENS naming them") {
  relattn_kv_cache_desc d{};
  d.n_kv_heads = 1;
  d.head_dim = 8;
  d.capacity = 8;
  d.k_dtype = d.v_dtype = RELATTN_F32;
  d.ring = 1;
  size_t bytes = 0;
  struct Bad {
    int64_t sinks;
    int rule, ring;
    const char* message;
  } const bad[] = {
      {-1, 0, 1, "n_sink_tokens = -1: must be in 0..capacity - 1 = 7"},
      {8, 0, 1, "n_sink_tokens = 8: must be in 0..capacity - 1 = 7"},
      {0, 2, 1, "sink_positions = 2: must be"},
      {0, -5, 1, "sink_positions = -5: must be"},
      {2, 0, 0, "need ring = 1"},
      {0, 1, 0, "need ring = 1"},
  };
  for (const Bad& b : bad) {
    d.n_sink_tokens = b.sinks;
    d.sink_positions = relattn_sink_positions(b.rule);
    d.ring = b.ring;
    CAPTURE(b.message);
    CHECK(relattn_kv_cache_size(&d, &bytes) == RELATTN_ERR_BAD_SINK_TOKENS);
    CHECK(std::string(relattn_last_error()).find(b.message) != std::string::npos);
  }
  Cache cache(kSinks, RELATTN_SINK_POSITIONS_CACHE, RELATTN_F32);
  const int64_t positions[1] = {5};
  CHECK(cache.Append({0}, positions) == RELATTN_ERR_BAD_SINK_TOKENS);
  CHECK(std::string(relattn_last_error()).find("must be NULL with sink_positions = CACHE") !=
        std::string::npos);
  CHECK(relattn_kv_cache_length(cache.get()) == 0);
}

}  // namespace
}  // namespace relattn_test
