// Rotary position embedding (RoPE) against the fp64 reference on every SIMD
// target: both pairings, partial rotary dims, base and linear scaling, with
// every bias scheme, prefill and decode, the KV cache (K rotated at append),
// large positions and translation invariance; and its argument errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "lib/common/f16.h"
#include "lib/reference/bounds.h"
#include "lib/reference/reference.h"
#include "tests/attention_case.h"

namespace relattn_test {
namespace {

WorstErrors error_log("rope");

relattn_rope Rope(relattn_rope_pairing pairing, int32_t rotary_dims = 0, float base = 0.0f,
                  float linear_scale = 0.0f) {
  return relattn_rope{pairing, rotary_dims, base, linear_scale, {}};
}

// Runs spec on every target against the reference; returns the worst error.
double CheckAgainstReference(const CaseSpec& spec, const char* what) {
  const double worst = CheckAllTargets(spec);
  error_log.Note(std::string(what) + (spec.out_dtype == RELATTN_F16 ? ", f16 out" : ", f32 out"),
                 worst);
  return worst;
}

TEST_CASE("rope: pairings x rotary dims x base / scaling x schemes, prefill and decode") {
  struct Dims {
    int32_t head_dim, rotary_dims;
  } const dims[] = {{8, 0}, {17, 16}, {64, 0}, {80, 32}, {128, 0}, {128, 64}};
  int index = 0;
  for (const Dims& dm : dims) {
    for (int64_t n_q : {int64_t{70}, int64_t{3}}) {
      for (relattn_rope_pairing pairing : {RELATTN_ROPE_INTERLEAVED, RELATTN_ROPE_HALVES}) {
        CaseSpec spec;
        spec.seed = 7000 + index;
        spec.n_q = n_q;
        spec.n_kv = 150;
        spec.q_start = 150 - n_q;
        spec.n_heads = 4;
        spec.n_kv_heads = index % 2 ? 2 : 4;
        spec.head_dim = dm.head_dim;
        spec.heads_major = index % 3 == 0;
        spec.in_dtype = index % 2 ? RELATTN_F16 : RELATTN_F32;
        spec.out_dtype = index % 5 == 4 ? RELATTN_F16 : RELATTN_F32;
        spec.scheme = relattn_bias_kind(index % 4);
        spec.alibi_causal = true;
        spec.t5_bidirectional = false;
        spec.causal = index % 4 != 3;
        spec.position_arrays = index % 3;  // start-based, sorted with gaps, shuffled
        spec.rope = Rope(pairing, dm.rotary_dims, index % 2 ? 500000.0f : 0.0f,
                         index % 4 == 2 ? 4.0f : 0.0f);
        CheckAgainstReference(spec, "grid");
        ++index;
      }
    }
  }
}

TEST_CASE("rope: positions up to 2^40 keep the accuracy of small ones") {
  for (int64_t start : {int64_t{1000}, int64_t{1'000'000'000}, int64_t{1} << 40}) {
    for (int arrays : {0, 2}) {
      for (int64_t n_q : {int64_t{40}, int64_t{1}}) {
        CaseSpec spec;
        spec.seed = uint64_t(start % 977) + arrays + n_q;
        spec.n_q = n_q;
        spec.n_kv = 120;
        spec.n_heads = 2;
        spec.n_kv_heads = 1;
        spec.head_dim = 64;
        spec.q_start = start + 120 - n_q;
        spec.k_start = start;
        spec.position_arrays = arrays;
        spec.causal = arrays == 0;
        spec.rope = Rope(RELATTN_ROPE_HALVES);
        const double err = CheckAgainstReference(spec, "large positions");
        INFO("start ", start);
        CHECK(err <= ErrorBound(RELATTN_F32));
      }
    }
  }
}

TEST_CASE("rope: shifting every position by C changes the output by at most the f32 bound") {
  for (relattn_rope_pairing pairing : {RELATTN_ROPE_INTERLEAVED, RELATTN_ROPE_HALVES}) {
    CaseSpec spec;
    spec.seed = 99;
    spec.n_q = 33;
    spec.n_kv = 100;
    spec.q_start = 67;
    spec.n_heads = 2;
    spec.n_kv_heads = 2;
    spec.head_dim = 64;
    spec.causal = true;
    spec.scheme = RELATTN_BIAS_ALIBI;
    spec.alibi_causal = true;
    spec.rope = Rope(pairing);
    Case c(spec);
    std::vector<uint8_t> out;
    REQUIRE(c.Run(&out) == RELATTN_OK);
    const std::vector<double> at_zero = c.Decode(out);
    int64_t shifted = 0;
    for (int64_t shift :
         {int64_t{1}, int64_t{1000}, int64_t{1} << 31, int64_t{1'000'000'000}, int64_t{1} << 40}) {
      c.ShiftPositions(shift - shifted);
      shifted = shift;
      REQUIRE(c.Run(&out) == RELATTN_OK);
      const double diff = MaxAbsDiff(c.Decode(out), at_zero);
      error_log.Note("translation (output change, shifts up to 2^40)", diff);
      INFO("shift ", shift);
      CHECK(diff <= ErrorBound(RELATTN_F32));
    }
  }
}

// A KV cache with rope, filled from a Case's K and V (f32 inputs).
class RopeCache {
 public:
  RopeCache(const relattn_attention_desc& d, int64_t capacity, relattn_dtype storage, bool ring) {
    relattn_kv_cache_desc cd{};
    cd.n_kv_heads = d.n_kv_heads;
    cd.head_dim = d.head_dim;
    cd.capacity = capacity;
    cd.k_dtype = cd.v_dtype = storage;
    cd.ring = ring;
    cd.rope = d.rope;
    size_t bytes = 0;
    REQUIRE(relattn_kv_cache_size(&cd, &bytes) == RELATTN_OK);
    memory_.resize(bytes / 8 + 16);
    void* aligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(memory_.data()) + 63) &
                                            ~uintptr_t{63});
    REQUIRE(relattn_kv_cache_init(&cd, aligned, bytes, &cache_) == RELATTN_OK);
  }
  // Appends tokens [t0, t1) of d's K and V at their positions.
  void Append(const relattn_attention_desc& d, int64_t t0, int64_t t1) {
    relattn_tensor k = d.k, v = d.v;
    const size_t bytes = d.k.dtype == RELATTN_F16 ? 2 : 4;
    k.data = static_cast<const char*>(d.k.data) + t0 * d.k.token_stride * bytes;
    v.data = static_cast<const char*>(d.v.data) + t0 * d.v.token_stride * bytes;
    relattn_positions pos{d.k_pos.positions ? d.k_pos.positions + t0 : nullptr, d.k_pos.start + t0};
    REQUIRE(relattn_kv_cache_append(cache_, t1 - t0, &k, &v, &pos) == RELATTN_OK);
  }
  const relattn_kv_cache* get() const { return cache_; }

 private:
  std::vector<uint64_t> memory_;
  relattn_kv_cache* cache_ = nullptr;
};

// Output of d (its K and V replaced by the cache) on the current target, as
// doubles.
std::vector<double> RunOverCache(Case& c, const relattn_kv_cache* cache) {
  relattn_attention_desc d = c.desc();
  d.n_kv = d.n_kv_heads = d.head_dim = 0;
  d.k = d.v = relattn_tensor{};
  d.k_pos = relattn_positions{};
  d.kv_cache = cache;
  std::vector<uint8_t> bytes(c.out_elems() * 4);
  d.o.data = bytes.data();
  size_t ws_bytes = 0;
  REQUIRE(relattn_attention_workspace_size(&d, 1, &ws_bytes) == RELATTN_OK);
  std::vector<uint64_t> ws(ws_bytes / 8 + 16);
  void* aligned =
      reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws.data()) + 63) & ~uintptr_t{63});
  REQUIRE(relattn_attention(&d, aligned, ws_bytes, nullptr) == RELATTN_OK);
  return c.Decode(bytes);
}

TEST_CASE("rope: a KV cache rotates K at append; decode and prefill over it match the reference") {
  for (relattn_rope_pairing pairing : {RELATTN_ROPE_INTERLEAVED, RELATTN_ROPE_HALVES}) {
    for (int64_t n_q : {int64_t{1}, int64_t{5}, int64_t{40}}) {
      CaseSpec spec;
      spec.seed = 4242 + n_q;
      spec.n_q = n_q;
      spec.n_kv = 200;
      spec.q_start = 1'000'000'000 + 200 - n_q;
      spec.k_start = 1'000'000'000;
      spec.n_heads = 4;
      spec.n_kv_heads = 2;
      spec.head_dim = 48;
      spec.causal = true;
      spec.scheme = RELATTN_BIAS_ALIBI;
      spec.alibi_causal = true;
      spec.rope = Rope(pairing, 32);
      Case c(spec);
      const std::vector<double> expected = c.Reference();
      // f32 storage holds the rotated keys exactly as the kernel would use them.
      RopeCache f32_cache(c.desc(), 256, RELATTN_F32, false);
      f32_cache.Append(c.desc(), 0, 77);
      f32_cache.Append(c.desc(), 77, 78);
      f32_cache.Append(c.desc(), 78, 200);
      error_log.Note("KV cache, f32 storage",
                     CheckAllTargets([&] { return RunOverCache(c, f32_cache.get()); }, expected,
                                     ErrorBound(RELATTN_F32), "f32 cache, " + spec.Name()));
      // f16 storage rounds the rotated keys: half an f16 ulp per element more.
      RopeCache f16_cache(c.desc(), 256, RELATTN_F16, false);
      f16_cache.Append(c.desc(), 0, 200);
      error_log.Note("KV cache, f16 storage (rotated K rounded to f16)",
                     CheckAllTargets([&] { return RunOverCache(c, f16_cache.get()); }, expected,
                                     relattn::bounds::kF16RopeCache, "f16 cache, " + spec.Name()));
    }
  }
}

TEST_CASE("rope: a ring cache after wrap-around equals the reference over the last W tokens") {
  CaseSpec spec;
  spec.seed = 5;
  spec.n_q = 1;
  spec.n_kv = 64;  // the last W = 64 of 300 tokens
  spec.q_start = 299;
  spec.k_start = 236;
  spec.n_heads = 2;
  spec.n_kv_heads = 1;
  spec.head_dim = 32;
  spec.causal = true;
  spec.rope = Rope(RELATTN_ROPE_HALVES, 0, 0.0f, 2.0f);
  Case tail(spec);
  CaseSpec all_spec = spec;
  all_spec.n_kv = 300;
  all_spec.k_start = 0;
  Case all(all_spec);  // other random K / V: only its first 236 tokens are appended
  RopeCache ring(tail.desc(), 64, RELATTN_F32, true);
  ring.Append(all.desc(), 0, 236);
  ring.Append(tail.desc(), 0, 64);
  const std::vector<double> expected = tail.Reference();
  CheckAllTargets([&] { return RunOverCache(tail, ring.get()); }, expected, ErrorBound(RELATTN_F32),
                  "ring cache, " + spec.Name());
}

TEST_CASE("rope: bad parameters fail with a message naming the field and write nothing") {
  CaseSpec spec;
  spec.head_dim = 6;
  spec.rope = Rope(RELATTN_ROPE_HALVES);
  struct Bad {
    relattn_rope rope;
    int32_t head_dim;
    const char* message;
  } const bad[] = {
      {Rope(relattn_rope_pairing(7)), 6, "rope.pairing = 7"},
      {Rope(RELATTN_ROPE_HALVES, 3), 6, "rope.rotary_dims = 3"},
      {Rope(RELATTN_ROPE_HALVES, 8), 6, "rope.rotary_dims = 8"},
      {Rope(RELATTN_ROPE_HALVES, -2), 6, "rope.rotary_dims = -2"},
      {Rope(RELATTN_ROPE_INTERLEAVED), 5, "rope.rotary_dims = 5"},  // odd head_dim, default
      {Rope(RELATTN_ROPE_HALVES, 0, 1.0f), 6, "rope.base = 1"},
      {Rope(RELATTN_ROPE_HALVES, 0, NAN), 6, "rope.base = nan"},
      {Rope(RELATTN_ROPE_HALVES, 0, -5.0f), 6, "rope.base = -5"},
      {Rope(RELATTN_ROPE_HALVES, 0, 0.0f, 1e-7f), 6, "rope.linear_scale = 1e-07"},
      {Rope(RELATTN_ROPE_HALVES, 0, 0.0f, INFINITY), 6, "rope.linear_scale = inf"},
  };
  for (const Bad& b : bad) {
    CaseSpec s = spec;
    s.head_dim = b.head_dim;
    s.rope = b.rope;
    Case c(s);
    std::vector<uint8_t> out;
    INFO(b.message);
    CHECK(c.Run(&out) == RELATTN_ERR_BAD_ROPE);
    CHECK(std::string(relattn_last_error()).find(b.message) != std::string::npos);
    CHECK(std::all_of(out.begin(), out.end(), [](uint8_t x) { return x == 0xff; }));
  }
  // Positions beyond +-2^53 are not exact in double.
  CaseSpec far = spec;
  far.q_start = far.k_start = (int64_t{1} << 53) - 3;
  Case c(far);
  std::vector<uint8_t> out;
  CHECK(c.Run(&out) == RELATTN_ERR_POSITION_OVERFLOW);
  CHECK(std::string(relattn_last_error()).find("within +-2^53") != std::string::npos);
  CHECK(std::all_of(out.begin(), out.end(), [](uint8_t x) { return x == 0xff; }));
  // The same far positions without rope are fine.
  far.rope = Rope(RELATTN_ROPE_NONE);
  Case plain(far);
  CHECK(plain.Run(&out) == RELATTN_OK);
}

TEST_CASE("rope: the attention's rope must equal the KV cache's") {
  CaseSpec spec;
  spec.n_q = 1;
  spec.n_kv = 10;
  spec.head_dim = 8;
  spec.rope = Rope(RELATTN_ROPE_HALVES);
  Case c(spec);
  RopeCache cache(c.desc(), 16, RELATTN_F32, false);
  cache.Append(c.desc(), 0, 10);
  relattn_attention_desc d = c.desc();
  d.n_kv = d.n_kv_heads = d.head_dim = 0;
  d.k = d.v = relattn_tensor{};
  d.kv_cache = cache.get();
  std::vector<float> out(8, NAN);
  d.o.data = out.data();
  size_t bytes = 0;
  CHECK(relattn_attention_workspace_size(&d, 1, &bytes) == RELATTN_OK);
  d.rope.base = 500000.0f;
  CHECK(relattn_attention_workspace_size(&d, 1, &bytes) == RELATTN_ERR_BAD_ROPE);
  CHECK(std::string(relattn_last_error()).find("kv_cache's rope") != std::string::npos);
  d.rope = Rope(RELATTN_ROPE_NONE);
  CHECK(relattn_attention_workspace_size(&d, 1, &bytes) == RELATTN_ERR_BAD_ROPE);
  // The defaults resolve: base 10000 and rotary_dims = head_dim spelled out.
  d.rope = Rope(RELATTN_ROPE_HALVES, 8, 10000.0f, 1.0f);
  CHECK(relattn_attention_workspace_size(&d, 1, &bytes) == RELATTN_OK);
  // A cache's own rope is validated at size / init, its positions at append.
  relattn_kv_cache_desc cd{1,           8,
                           0,           16,
                           RELATTN_F32, RELATTN_F32,
                           0,           Rope(RELATTN_ROPE_HALVES, 5),
                           0,           RELATTN_SINK_POSITIONS_TEXT};
  CHECK(relattn_kv_cache_size(&cd, &bytes) == RELATTN_ERR_BAD_ROPE);
  CHECK(std::string(relattn_last_error()).find("rope.rotary_dims = 5") != std::string::npos);
}

TEST_CASE("rope: the workspace does not depend on n_q or n_kv") {
  std::vector<size_t> sizes;
  for (int64_t n : {int64_t{100}, int64_t{3000}}) {
    CaseSpec spec;
    spec.n_q = spec.n_kv = n;
    spec.n_heads = spec.n_kv_heads = 2;
    spec.head_dim = 128;
    spec.rope = Rope(RELATTN_ROPE_HALVES);
    Case c(spec);
    std::vector<float> out(c.out_elems());
    c.desc().o.data = out.data();
    size_t bytes = 0;
    REQUIRE(relattn_attention_workspace_size(&c.desc(), 1, &bytes) == RELATTN_OK);
    sizes.push_back(bytes);
  }
  std::printf("rope: workspace, prefill, 2 heads, d 128, 1 thread: %zu bytes\n", sizes[0]);
  CHECK(sizes[0] == sizes[1]);
}

}  // namespace
}  // namespace relattn_test
