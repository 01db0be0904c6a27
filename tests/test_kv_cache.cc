// The KV cache: decode over the cache equals attention over the same tokens,
// the ring keeps exactly the last W tokens at their true positions, and a
// full non-ring cache refuses appends without changing.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "lib/common/f16.h"
#include "lib/reference/bounds.h"
#include "lib/reference/reference.h"
#include "relattn/relattn.hpp"

namespace {

constexpr int32_t kKvHeads = 2, kHeads = 6, kDim = 24;

struct Tokens {
  std::vector<float> k, v;  // [n][kKvHeads][kDim]
};

Tokens RandomTokens(std::mt19937& rng, int64_t n, bool round_to_f16) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  Tokens t{std::vector<float>(size_t(n) * kKvHeads * kDim),
           std::vector<float>(size_t(n) * kKvHeads * kDim)};
  for (auto* values : {&t.k, &t.v}) {
    for (float& x : *values) {
      x = uniform(rng);
      if (round_to_f16) x = relattn::F16ToF32(relattn::F32ToF16(x));
    }
  }
  return t;
}

class Cache {
 public:
  Cache(int64_t capacity, relattn_dtype dtype, bool ring) {
    relattn_kv_cache_desc d{kKvHeads, kDim, 0,  capacity, dtype,
                            dtype,    ring, {}, 0,        RELATTN_SINK_POSITIONS_TEXT};
    size_t bytes = 0;
    REQUIRE(relattn_kv_cache_size(&d, &bytes) == RELATTN_OK);
    memory_.resize(bytes / 8 + 16);
    void* aligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(memory_.data()) + 63) &
                                            ~uintptr_t{63});
    REQUIRE(relattn_kv_cache_init(&d, aligned, bytes, &cache_) == RELATTN_OK);
  }
  relattn_kv_cache* get() { return cache_; }
  // Appends tokens [t0, t0 + n) of all.
  relattn_status Append(const Tokens& all, int64_t t0, int64_t n,
                        const relattn_positions* pos = nullptr) {
    const relattn_tensor k =
        relattn::TokensHeadsDim(all.k.data() + t0 * kKvHeads * kDim, RELATTN_F32, kKvHeads, kDim);
    const relattn_tensor v =
        relattn::TokensHeadsDim(all.v.data() + t0 * kKvHeads * kDim, RELATTN_F32, kKvHeads, kDim);
    return relattn_kv_cache_append(cache_, n, &k, &v, pos);
  }

 private:
  std::vector<uint64_t> memory_;
  relattn_kv_cache* cache_ = nullptr;
};

struct Run {
  std::vector<float> q, t5_table;
  relattn_attention_desc desc;
};

// Queries and a scheme for n_q queries at q_start (causal by default).
Run MakeRun(std::mt19937& rng, int64_t n_q, int64_t q_start, int scheme) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  Run run;
  run.q.resize(size_t(n_q) * kHeads * kDim);
  for (float& x : run.q) x = uniform(rng);
  run.t5_table.resize(size_t(kHeads) * 32);
  for (float& x : run.t5_table) x = uniform(rng);
  relattn_attention_desc& d = run.desc;
  relattn_attention_desc_init(&d);
  d.n_q = n_q;
  d.n_heads = kHeads;
  d.q = relattn::TokensHeadsDim(run.q.data(), RELATTN_F32, kHeads, kDim);
  d.q_pos.start = q_start;
  d.mask.causal = 1;
  d.bias.kind = relattn_bias_kind(scheme);
  d.bias.alibi = {nullptr, 8.0f, 1};
  d.bias.t5 = {run.t5_table.data(), RELATTN_F32, nullptr, 32, 128, 0};
  d.bias.shaw = {run.t5_table.data(), 15};  // 31 entries of the same table rows
  return run;
}

std::vector<float> Attend(relattn_attention_desc desc, const relattn_threads* threads = nullptr) {
  std::vector<float> out(size_t(desc.n_q) * kHeads * kDim, NAN);
  desc.o = relattn::OutputTokensHeadsDim(out.data(), RELATTN_F32, kHeads, kDim);
  relattn::Workspace ws;
  const relattn::Status s = relattn::Attention(desc, ws, threads);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return out;
}

// The same attention over plain [tokens][heads][dim] tensors of `tokens`
// [t0, t0 + n) at positions p0 + t.
relattn_attention_desc PlainKeys(relattn_attention_desc desc, const Tokens& tokens, int64_t t0,
                                 int64_t n, int64_t p0) {
  desc.kv_cache = nullptr;
  desc.n_kv = n;
  desc.n_kv_heads = kKvHeads;
  desc.head_dim = kDim;
  desc.k =
      relattn::TokensHeadsDim(tokens.k.data() + t0 * kKvHeads * kDim, RELATTN_F32, kKvHeads, kDim);
  desc.v =
      relattn::TokensHeadsDim(tokens.v.data() + t0 * kKvHeads * kDim, RELATTN_F32, kKvHeads, kDim);
  desc.k_pos = {nullptr, p0};
  return desc;
}

double MaxDiff(const std::vector<float>& a, const std::vector<double>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

std::vector<double> ReferenceOf(relattn_attention_desc desc) {
  std::vector<float> unused(size_t(desc.n_q) * kHeads * kDim);
  desc.o = relattn::OutputTokensHeadsDim(unused.data(), RELATTN_F32, kHeads, kDim);
  std::vector<double> out(unused.size());
  relattn::reference::Attention(desc, out.data());
  return out;
}

TEST_CASE("decode over the cache equals attention over the same tokens, every scheme") {
  std::mt19937 rng(7);
  for (relattn_dtype storage : {RELATTN_F32, RELATTN_F16}) {
    const Tokens tokens = RandomTokens(rng, 300, storage == RELATTN_F16);
    Cache cache(512, storage, false);
    int64_t appended = 0;
    for (int64_t chunk : {1, 7, 100, 1, 91, 100}) {  // 300 tokens in uneven appends
      REQUIRE(cache.Append(tokens, appended, chunk) == RELATTN_OK);
      appended += chunk;
    }
    REQUIRE(relattn_kv_cache_length(cache.get()) == 300);
    REQUIRE(relattn_kv_cache_next_position(cache.get()) == 300);
    for (int scheme = 0; scheme < 4; ++scheme) {
      for (int64_t n_q : {1, 4, 20}) {
        Run run = MakeRun(rng, n_q, 300 - n_q, scheme);
        run.desc.kv_cache = cache.get();
        const std::vector<float> from_cache = Attend(run.desc);
        const relattn_attention_desc plain = PlainKeys(run.desc, tokens, 0, 300, 0);
        INFO("storage ", int(storage), " scheme ", scheme, " n_q ", n_q);
        CHECK(MaxDiff(from_cache, ReferenceOf(plain)) <= relattn::bounds::kF32Output);
        const std::vector<float> direct = Attend(plain);
        CHECK(MaxDiff(from_cache, std::vector<double>(direct.begin(), direct.end())) <=
              relattn::bounds::kF32Output);
      }
    }
  }
}

TEST_CASE("ring buffer: after wrap-around, exactly the last W tokens at their true positions") {
  std::mt19937 rng(11);
  constexpr int64_t kWindow = 50;
  for (int64_t start : {int64_t(0), (int64_t(1) << 31) - 1000}) {
    const Tokens tokens = RandomTokens(rng, 1180, false);
    Cache cache(kWindow, RELATTN_F32, true);
    const relattn_positions first{nullptr, start};
    REQUIRE(cache.Append(tokens, 0, 3, &first) == RELATTN_OK);
    for (int64_t t = 3; t < 1180; t += 1 + t % 5) {
      REQUIRE(cache.Append(tokens, t, std::min<int64_t>(1 + t % 5, 1180 - t)) == RELATTN_OK);
    }
    REQUIRE(relattn_kv_cache_length(cache.get()) == kWindow);
    REQUIRE(relattn_kv_cache_next_position(cache.get()) == start + 1180);
    for (int scheme = 0; scheme < 4; ++scheme) {
      Run run = MakeRun(rng, 2, start + 1178, scheme);
      run.desc.mask.window = 40;  // sees 40 of the 50 cached tokens
      run.desc.kv_cache = cache.get();
      const std::vector<float> from_ring = Attend(run.desc);
      const relattn_attention_desc last_w =
          PlainKeys(run.desc, tokens, 1180 - kWindow, kWindow, start + 1180 - kWindow);
      INFO("start ", start, " scheme ", scheme);
      CHECK(MaxDiff(from_ring, ReferenceOf(last_w)) <= relattn::bounds::kF32Output);
    }
  }
}

TEST_CASE("a full non-ring cache refuses an append and does not change") {
  std::mt19937 rng(3);
  const Tokens tokens = RandomTokens(rng, 12, false);
  Cache cache(10, RELATTN_F32, false);
  REQUIRE(cache.Append(tokens, 0, 8) == RELATTN_OK);
  Run run = MakeRun(rng, 1, 7, 1);
  run.desc.kv_cache = cache.get();
  const std::vector<float> before = Attend(run.desc);
  CHECK(cache.Append(tokens, 8, 3) == RELATTN_ERR_CACHE_FULL);
  CHECK(std::string(relattn_last_error()).find("holds 8 of 10 tokens") != std::string::npos);
  CHECK(relattn_kv_cache_length(cache.get()) == 8);
  CHECK(relattn_kv_cache_next_position(cache.get()) == 8);
  CHECK(Attend(run.desc) == before);
  CHECK(cache.Append(tokens, 8, 2) == RELATTN_OK);
  CHECK(relattn_kv_cache_length(cache.get()) == 10);
}

TEST_CASE("cache misuse gets a status and a message") {
  std::mt19937 rng(5);
  const Tokens tokens = RandomTokens(rng, 4, false);
  Cache cache(8, RELATTN_F16, false);
  Run run = MakeRun(rng, 1, 3, 0);
  run.desc.kv_cache = cache.get();
  std::vector<float> out(kHeads * kDim);
  run.desc.o = relattn::OutputTokensHeadsDim(out.data(), RELATTN_F32, kHeads, kDim);
  size_t bytes = 0;
  CHECK(relattn_attention_workspace_size(&run.desc, 1, &bytes) == RELATTN_ERR_BAD_DIMENSION);
  CHECK(std::string(relattn_last_error()) == "kv_cache holds no token");
  REQUIRE(cache.Append(tokens, 0, 4) == RELATTN_OK);
  run.desc.k.data = tokens.k.data();
  CHECK(relattn_attention_workspace_size(&run.desc, 1, &bytes) == RELATTN_ERR_BAD_DIMENSION);
  run.desc.k.data = nullptr;
  run.desc.head_dim = 7;
  CHECK(relattn_attention_workspace_size(&run.desc, 1, &bytes) == RELATTN_ERR_BAD_DIMENSION);
  CHECK(std::string(relattn_last_error()) == "head_dim = 7: must be 0 or the kv_cache's 24");
  run.desc.head_dim = kDim;
  CHECK(relattn_attention_workspace_size(&run.desc, 1, &bytes) == RELATTN_OK);
  alignas(64) uint64_t junk[64] = {};
  run.desc.kv_cache = reinterpret_cast<const relattn_kv_cache*>(junk);
  CHECK(relattn_attention_workspace_size(&run.desc, 1, &bytes) == RELATTN_ERR_BAD_CACHE);
  CHECK(std::string(relattn_last_error()).find("not a cache laid out by relattn_kv_cache_init") !=
        std::string::npos);
  relattn_kv_cache_desc bad{kKvHeads,    kDim, 0,  0, RELATTN_F16,
                            RELATTN_F16, 0,    {}, 0, RELATTN_SINK_POSITIONS_TEXT};
  CHECK(relattn_kv_cache_size(&bad, &bytes) == RELATTN_ERR_BAD_DIMENSION);
  CHECK(std::string(relattn_last_error()).find("capacity = 0") != std::string::npos);
  bad.capacity = 4;
  bad.k_dtype = RELATTN_I8;  // int8 K and V storage are fine, BF16 is not a storage dtype
  CHECK(relattn_kv_cache_size(&bad, &bytes) == RELATTN_OK);
  bad.v_dtype = RELATTN_I8;
  CHECK(relattn_kv_cache_size(&bad, &bytes) == RELATTN_OK);
  bad.v_dtype = static_cast<relattn_dtype>(7);
  CHECK(relattn_kv_cache_size(&bad, &bytes) == RELATTN_ERR_BAD_DTYPE);
  CHECK(std::string(relattn_last_error()).find("v_dtype = 7") != std::string::npos);
}

// Each bad append argument: its status and message, the cache unchanged.
TEST_CASE("append checks k, v and positions as attention checks its tensors") {
  std::mt19937 rng(7);
  const Tokens tokens = RandomTokens(rng, 8, false);
  Cache cache(16, RELATTN_F32, false);
  REQUIRE(cache.Append(tokens, 0, 3) == RELATTN_OK);
  Run run = MakeRun(rng, 1, 2, 1);
  run.desc.kv_cache = cache.get();
  const std::vector<float> before = Attend(run.desc);
  const relattn_tensor good = relattn::TokensHeadsDim(tokens.k.data(), RELATTN_F32, kKvHeads, kDim);
  alignas(8) static int64_t positions[4] = {3, 4, 5, 6};
  struct Bad {
    const char* what;
    relattn_tensor k;
    int64_t n_tokens;
    const int64_t* positions;
    relattn_status status;
    const char* message;
  };
  relattn_tensor misaligned = good, huge_stride = good, zero_stride = good, heads_overlap = good;
  relattn_tensor int8 = good, inside = good;
  misaligned.data = reinterpret_cast<const char*>(good.data) + 2;
  huge_stride.token_stride = (int64_t{1} << 62) + 1;
  zero_stride.token_stride = 0;
  heads_overlap.head_stride = kDim - 1;
  int8.dtype = RELATTN_I8;
  inside.data = reinterpret_cast<const char*>(cache.get()) + 4096;
  const int64_t* misaligned_positions =
      reinterpret_cast<const int64_t*>(reinterpret_cast<const char*>(positions) + 4);
  const Bad bad[] = {
      {"misaligned k", misaligned, 2, nullptr, RELATTN_ERR_BAD_ALIGNMENT, "k.data = "},
      {"token stride 2^62 + 1", huge_stride, 2, nullptr, RELATTN_ERR_BAD_STRIDE,
       "k: its extent does not fit in the address space"},
      {"zero token stride", zero_stride, 2, nullptr, RELATTN_ERR_BAD_STRIDE,
       "k.token_stride = 0: rows overlap"},
      {"overlapping heads", heads_overlap, 1, nullptr, RELATTN_ERR_BAD_STRIDE,
       "k.head_stride = 23: rows overlap"},
      {"int8 k", int8, 2, nullptr, RELATTN_ERR_UNSUPPORTED, "k.dtype = I8: append takes F32"},
      {"k inside the cache", inside, 2, nullptr, RELATTN_ERR_OVERLAP,
       "k overlaps the KV cache's memory"},
      {"n_tokens 2^41", good, int64_t{1} << 41, nullptr, RELATTN_ERR_BAD_DIMENSION,
       "n_tokens = 2199023255552: must be in 1..2^40"},
      {"misaligned positions", good, 2, misaligned_positions, RELATTN_ERR_BAD_ALIGNMENT,
       "positions->positions"},
  };
  const relattn_tensor v = relattn::TokensHeadsDim(tokens.v.data(), RELATTN_F32, kKvHeads, kDim);
  for (const Bad& b : bad) {
    INFO(b.what);
    const relattn_positions pos{b.positions, 0};
    const relattn_status status =
        relattn_kv_cache_append(cache.get(), b.n_tokens, &b.k, &v, b.positions ? &pos : nullptr);
    INFO(relattn_last_error());
    CHECK(status == b.status);
    CHECK(std::string(relattn_last_error()).find(b.message) != std::string::npos);
    CHECK(relattn_kv_cache_length(cache.get()) == 3);
    CHECK(relattn_kv_cache_next_position(cache.get()) == 3);
  }
  CHECK(Attend(run.desc) == before);
  // Positions stored inside the cache's own memory.
  const relattn_positions in_cache{reinterpret_cast<const int64_t*>(cache.get()) + 64, 0};
  CHECK(relattn_kv_cache_append(cache.get(), 2, &good, &v, &in_cache) == RELATTN_ERR_OVERLAP);
  CHECK(std::string(relattn_last_error()).find("positions->positions overlaps") !=
        std::string::npos);
  CHECK(Attend(run.desc) == before);
}

TEST_CASE("a header that is not a cache's, or no longer consistent, is refused when used") {
  std::mt19937 rng(8);
  const Tokens tokens = RandomTokens(rng, 4, false);
  Cache cache(8, RELATTN_F32, false);
  REQUIRE(cache.Append(tokens, 0, 4) == RELATTN_OK);
  Run run = MakeRun(rng, 1, 3, 0);
  run.desc.kv_cache = cache.get();
  const std::vector<float> before = Attend(run.desc);
  // The header is the cache's first bytes: length (after magic and desc)
  // overwritten by a stray write, then restored.
  int64_t* length = nullptr;
  for (int64_t* p = reinterpret_cast<int64_t*>(cache.get());
       p < reinterpret_cast<int64_t*>(cache.get()) + 32; ++p) {
    if (*p == 4 && p[1] == 4 && p[2] == 4) {  // length, next_slot, next_position
      length = p;
      break;
    }
  }
  REQUIRE(length != nullptr);
  *length = 9;  // > capacity
  size_t bytes = 0;
  CHECK(relattn_attention_workspace_size(&run.desc, 1, &bytes) == RELATTN_ERR_BAD_CACHE);
  CHECK(std::string(relattn_last_error()).find("header is inconsistent") != std::string::npos);
  CHECK(cache.Append(tokens, 0, 1) == RELATTN_ERR_BAD_CACHE);
  *length = 4;
  CHECK(Attend(run.desc) == before);
}

TEST_CASE("a byte copy of a cache is a cache of its own: the original does not change") {
  std::mt19937 rng(9);
  const Tokens tokens = RandomTokens(rng, 8, false);
  Cache original(16, RELATTN_F16, true), reference(16, RELATTN_F16, true);
  REQUIRE(original.Append(tokens, 0, 5) == RELATTN_OK);
  REQUIRE(reference.Append(tokens, 0, 8) == RELATTN_OK);
  Run run = MakeRun(rng, 2, 6, 2);
  run.desc.kv_cache = original.get();
  const std::vector<float> original_before = Attend(run.desc);
  size_t bytes = 0;
  const relattn_kv_cache_desc d{kKvHeads,    kDim, 0,  16, RELATTN_F16,
                                RELATTN_F16, 1,    {}, 0,  RELATTN_SINK_POSITIONS_TEXT};
  REQUIRE(relattn_kv_cache_size(&d, &bytes) == RELATTN_OK);
  std::vector<uint64_t> copy_memory(bytes / 8 + 16);
  void* aligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(copy_memory.data()) + 63) &
                                          ~uintptr_t{63});
  std::memcpy(aligned, original.get(), bytes);
  relattn_kv_cache* copy = static_cast<relattn_kv_cache*>(aligned);
  const relattn_tensor k =
      relattn::TokensHeadsDim(tokens.k.data() + 5 * kKvHeads * kDim, RELATTN_F32, kKvHeads, kDim);
  const relattn_tensor v =
      relattn::TokensHeadsDim(tokens.v.data() + 5 * kKvHeads * kDim, RELATTN_F32, kKvHeads, kDim);
  REQUIRE(relattn_kv_cache_append(copy, 3, &k, &v, nullptr) == RELATTN_OK);
  CHECK(relattn_kv_cache_length(original.get()) == 5);
  CHECK(relattn_kv_cache_length(copy) == 8);
  CHECK(Attend(run.desc) == original_before);
  run.desc.kv_cache = copy;
  const std::vector<float> from_copy = Attend(run.desc);
  run.desc.kv_cache = reference.get();
  CHECK(from_copy == Attend(run.desc));
}

// Appends to one cache from two threads: each either stores its token or
// fails with RELATTN_ERR_BUSY; none is lost.
TEST_CASE("concurrent appends to one cache: each stores its token or fails BUSY") {
  std::mt19937 rng(10);
  const Tokens tokens = RandomTokens(rng, 1, false);
  Cache cache(64, RELATTN_F32, true);
  std::atomic<int64_t> stored{0}, busy{0}, other{0};
  auto append_many = [&] {
    for (int i = 0; i < 20000; ++i) {
      const relattn_status s = cache.Append(tokens, 0, 1);
      (s == RELATTN_OK ? stored : s == RELATTN_ERR_BUSY ? busy : other)++;
    }
  };
  std::thread a(append_many), b(append_many);
  a.join();
  b.join();
  CHECK(other == 0);
  CHECK(stored + busy == 40000);
  CHECK(relattn_kv_cache_next_position(cache.get()) == stored);
  MESSAGE("appends stored ", stored.load(), ", refused as busy ", busy.load());
}

// The cache records the largest |K| and |V| it stored: a call whose q would
// overflow against them fails before writing; a clear forgets them.
TEST_CASE("value range over a cache: the maxima recorded at append, reset by clear") {
  for (relattn_dtype dtype : {RELATTN_F32, RELATTN_F16}) {
    CAPTURE(dtype);
    std::mt19937 rng(11);
    Tokens tokens = RandomTokens(rng, 8, false);
    Cache cache(32, dtype, false);
    REQUIRE(cache.Append(tokens, 0, 8) == RELATTN_OK);
    Run run = MakeRun(rng, 1, 8, RELATTN_BIAS_NONE);
    run.desc.kv_cache = cache.get();
    run.q[3] = 3e35f;  // |q| 3e35 x |k| <= 1 x 24 / sqrt(24): inside 2^125
    Attend(run.desc);
    tokens.k[5] = dtype == RELATTN_F16 ? 60000.0f : 1e10f;  // token 0 again, now huge
    relattn_kv_cache_clear(cache.get());
    REQUIRE(cache.Append(tokens, 0, 8) == RELATTN_OK);
    std::vector<float> out(size_t(kHeads) * kDim, 7.0f);
    relattn_attention_desc desc = run.desc;
    desc.o = relattn::OutputTokensHeadsDim(out.data(), RELATTN_F32, kHeads, kDim);
    relattn::Workspace ws;
    const relattn::Status s = relattn::Attention(desc, ws, nullptr);
    CHECK(s.code == RELATTN_ERR_VALUE_RANGE);
    CHECK(s.ToString().find("max|q| * max|k|") != std::string::npos);
    CHECK(std::all_of(out.begin(), out.end(), [](float x) { return x == 7.0f; }));
    tokens.k[5] = 0.5f;
    relattn_kv_cache_clear(cache.get());
    REQUIRE(cache.Append(tokens, 0, 8) == RELATTN_OK);
    Attend(run.desc);
  }
}

}  // namespace
