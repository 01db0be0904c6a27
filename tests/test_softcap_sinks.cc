// Logit soft-capping (desc.softcap) and learned attention sinks (desc.sinks)
// against the fp64 reference on every SIMD target: the vectorised tanh
// (SoftcapScores, lib/kernels/softcap-inl.h) on a dense sweep; soft-capping
// that stays linear and that saturates, sinks that vanish, compete and
// dominate, with every bias scheme, masks, GQA, f16 and int8 inputs, RoPE,
// prefill, decode, the split-K merge and a KV cache; ALiBi at 10^12 (the
// anchored frame); and their argument errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tests/test_softcap_sinks.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#include "hwy/highway.h"
#include "lib/kernels/softcap-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn_test {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// out[i] = SoftcapScores(cap, 1 / cap) of x[i], in aligned blocks the size of
// the kernel's vectors (tail padded with zeros); returns the target compiled.
int64_t SoftcapAll(float cap, const std::vector<float>& x, std::vector<float>* out) {
  constexpr int64_t kBlock = 4 * relattn::kMaxLanes;
  alignas(64) float block[kBlock];
  out->assign(x.size(), 0.0f);
  for (size_t i = 0; i < x.size(); i += kBlock) {
    const size_t n = std::min<size_t>(kBlock, x.size() - i);
    std::fill(block, block + kBlock, 0.0f);
    std::copy(x.begin() + i, x.begin() + i + n, block);
    relattn::HWY_NAMESPACE::SoftcapScores(cap, 1.0f / cap, block, kBlock);
    std::copy(block, block + n, out->begin() + i);
  }
  return HWY_TARGET;
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn_test
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "lib/reference/bounds.h"
#include "tests/attention_case.h"

namespace relattn_test {
HWY_EXPORT(SoftcapAll);

namespace {

WorstErrors error_log("softcap sinks");

std::vector<float> SoftcapOnTarget(int64_t target, float cap, const std::vector<float>& x) {
  std::vector<float> y;
  const int64_t ran = HWY_DYNAMIC_DISPATCH(SoftcapAll)(cap, x, &y);
  INFO("asked for ", TargetNameOf(target), ", ran ", TargetNameOf(ran));
  REQUIRE(ran == target);
  return y;
}

// Ulp distance of two finite floats of the same sign (else 2^32).
int64_t UlpDistance(float got, float expected) {
  if (std::signbit(got) != std::signbit(expected) && got != expected) return int64_t{1} << 32;
  uint32_t a, b;
  const float fa = std::fabs(got), fb = std::fabs(expected);
  std::memcpy(&a, &fa, 4);
  std::memcpy(&b, &fb, 4);
  return a > b ? int64_t{a} - b : int64_t{b} - a;
}

// Every multiple of 2^-12 in [-20, 20], 10^6 log-spaced magnitudes from
// 1e-30 to 1e30 of both signs, and the edges.
std::vector<float> TanhSweep() {
  std::vector<float> x;
  for (int k = -20 * 4096; k <= 20 * 4096; ++k) x.push_back(float(k) / 4096.0f);
  for (int i = 0; i < 500'000; ++i) {
    const float m = float(std::pow(10.0, -30.0 + 60.0 * i / 500'000));
    x.push_back(m);
    x.push_back(-m);
  }
  for (float v : {0.0f, -0.0f, FLT_MIN, -FLT_MIN, std::numeric_limits<float>::denorm_min(), FLT_MAX,
                  -FLT_MAX, 9.0f, -9.0f, std::nextafter(9.0f, 10.0f), std::nextafter(9.0f, 0.0f)}) {
    x.push_back(v);
  }
  return x;
}

TEST_CASE("softcap: SoftcapScores is cap * tanh(x / cap) within 5 ulp of tanh, every target") {
  const std::vector<float> x = TanhSweep();
  ForEachTarget([&](int64_t target) {
    const std::vector<float> got = SoftcapOnTarget(target, 1.0f, x);
    int64_t worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const int64_t ulp = UlpDistance(got[i], float(std::tanh(double(x[i]))));
      if (ulp > worst) worst = ulp, at = i;
    }
    MESSAGE("softcap: ", TargetNameOf(target), " tanh max error ", worst, " ulp over ", x.size(),
            " points (at x = ", x[at], ": ", got[at], ")");
    INFO(TargetNameOf(target), " at x = ", x[at]);
    CHECK(worst <= 5);
    // Non-finite scores: NaN stays NaN, +-inf saturate to +-cap; a cap of 50
    // in log2 units maps 1e4 to 50 and 0.5 to 50 tanh(0.01).
    const std::vector<float> edge =
        SoftcapOnTarget(target, 50.0f, {NAN, INFINITY, -INFINITY, 1e4f, 0.5f});
    CHECK(std::isnan(edge[0]));
    CHECK(edge[1] == 50.0f);
    CHECK(edge[2] == -50.0f);
    CHECK(edge[3] == 50.0f);
    CHECK(std::fabs(edge[4] - 50.0 * std::tanh(0.01)) <= 4e-8);
  });
}

void Check(const CaseSpec& spec, const char* label) {
  const double err = CheckAllTargets(spec);
  error_log.Note(std::string(label) + (spec.out_dtype == RELATTN_F16 ? " f16 out" : " f32 out"),
                 err);
}

// Schemes x prefill / decode x input dtypes, with GQA and a causal mask on
// most; each with a given softcap / sink setting applied by `set`.
template <class Set>
void Grid(uint64_t seed, const char* label, const Set& set) {
  int index = 0;
  for (relattn_bias_kind scheme : {RELATTN_BIAS_NONE, RELATTN_BIAS_ALIBI, RELATTN_BIAS_T5,
                                   RELATTN_BIAS_SHAW, RELATTN_BIAS_SHAW_VECTOR}) {
    for (int64_t n_q : {int64_t{3}, int64_t{70}}) {
      for (int variant = 0; variant < 3; ++variant, ++index) {
        CaseSpec spec;
        spec.seed = seed + index;
        spec.scheme = scheme;
        spec.n_q = n_q;
        spec.n_kv = 150;
        spec.q_start = 150 - n_q;
        spec.head_dim = variant == 2 ? 128 : 64;
        spec.n_heads = 4;
        spec.n_kv_heads = variant == 1 ? 1 : 2;
        spec.in_dtype = variant == 1 ? RELATTN_F16 : RELATTN_F32;
        spec.out_dtype = index % 4 == 3 ? RELATTN_F16 : RELATTN_F32;
        spec.int8_qk = variant == 2 && scheme != RELATTN_BIAS_SHAW_VECTOR ? 2 : 0;
        spec.causal = index % 3 != 0;
        spec.window = index % 5 == 4 ? 40 : 0;
        spec.alibi_causal = index % 2 == 1;
        spec.position_arrays = index % 3;
        if (index % 4 == 1) spec.rope = relattn_rope{RELATTN_ROPE_HALVES, 0, 0.0f, 0.0f, {}};
        if (spec.rope.pairing != RELATTN_ROPE_NONE) spec.int8_qk = 0;
        set(spec);
        Check(spec, label);
      }
    }
  }
}

TEST_CASE("softcap: Gemma 2's cap (50) and a saturating one, every scheme and target") {
  Grid(4100, "softcap 50", [](CaseSpec& s) { s.softcap = 50.0f; });
  // Content scores up to ~100: tanh saturates (|x / c| up to 50).
  Grid(4200, "softcap 2, saturated", [](CaseSpec& s) {
    s.softcap = 2.0f;
    s.scale = 4.0f;
  });
}

TEST_CASE("sinks: vanishing, competing and dominating sinks, every scheme and target") {
  Grid(4300, "sinks -30", [](CaseSpec& s) {
    s.sinks = true;
    s.sink_offset = -30.0f;
  });
  Grid(4400, "sinks 0", [](CaseSpec& s) { s.sinks = true; });
  Grid(4500, "sinks +8", [](CaseSpec& s) {
    s.sinks = true;
    s.sink_offset = 8.0f;
  });
  Grid(4600, "sinks and softcap 5", [](CaseSpec& s) {
    s.sinks = true;
    s.softcap = 5.0f;
  });
}

TEST_CASE("sinks: ALiBi rows at 10^12 keep the sink in their anchored frame") {
  int index = 0;
  for (bool alibi_causal : {false, true}) {
    for (bool causal : {false, true}) {
      for (int position_arrays : {0, 1}) {
        for (int64_t n_q : {int64_t{2}, int64_t{40}}) {
          CaseSpec spec;
          spec.seed = 4700 + index++;
          spec.scheme = RELATTN_BIAS_ALIBI;
          spec.alibi_causal = alibi_causal;
          spec.alibi_slopes = 2;
          spec.causal = causal;
          spec.position_arrays = position_arrays;
          spec.n_q = n_q;
          spec.n_kv = 200;
          // Queries 11.. past the last key: every row drops a constant of
          // ALiBi distance >= 11, which the sink must follow.
          spec.k_start = int64_t{1'000'000'000'000};
          spec.q_start = spec.k_start + 210;
          spec.n_heads = 4;
          spec.n_kv_heads = 2;
          spec.sinks = true;
          spec.sink_offset = float(index % 3) * 2.0f - 2.0f;
          Check(spec, "sinks alibi 1e12");
        }
      }
    }
  }
}

TEST_CASE("softcap and sinks: decode split over 6000 keys (the merge takes the sink)") {
  for (int variant = 0; variant < 4; ++variant) {
    CaseSpec spec;
    spec.seed = 4800 + variant;
    spec.scheme = variant % 2 ? RELATTN_BIAS_ALIBI : RELATTN_BIAS_T5;
    spec.n_q = 1 + variant;
    spec.n_kv = 6000;
    spec.q_start = 6000 - spec.n_q;
    spec.n_heads = 8;
    spec.n_kv_heads = 2;
    spec.causal = true;
    spec.position_arrays = variant / 2;
    spec.sinks = true;
    spec.sink_offset = variant == 3 ? 6.0f : 0.0f;
    spec.softcap = variant >= 2 ? 30.0f : 0.0f;
    Check(spec, "split decode");
  }
}

// The library over a KV cache filled with c's K and V (storage k_dtype = v_dtype).
std::vector<double> RunOverCache(Case& c, relattn_dtype storage) {
  const relattn_attention_desc& d = c.desc();
  relattn_kv_cache_desc cd{};
  cd.n_kv_heads = d.n_kv_heads;
  cd.head_dim = d.head_dim;
  cd.capacity = d.n_kv;
  cd.k_dtype = cd.v_dtype = storage;
  cd.rope = d.rope;
  size_t bytes = 0;
  REQUIRE(relattn_kv_cache_size(&cd, &bytes) == RELATTN_OK);
  std::vector<uint64_t> memory(bytes / 8 + 8);
  void* aligned =
      reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(memory.data()) + 63) & ~uintptr_t{63});
  relattn_kv_cache* cache = nullptr;
  REQUIRE(relattn_kv_cache_init(&cd, aligned, bytes, &cache) == RELATTN_OK);
  REQUIRE(relattn_kv_cache_append(cache, d.n_kv, &d.k, &d.v, &d.k_pos) == RELATTN_OK);
  relattn_attention_desc over = d;
  over.n_kv = over.n_kv_heads = over.head_dim = 0;
  over.k = over.v = relattn_tensor{};
  over.k_pos = relattn_positions{};
  over.kv_cache = cache;
  std::vector<uint8_t> out(c.out_elems() * 4);
  over.o.data = out.data();
  size_t ws_bytes = 0;
  REQUIRE(relattn_attention_workspace_size(&over, 1, &ws_bytes) == RELATTN_OK);
  std::vector<uint64_t> ws(ws_bytes / 8 + 8);
  void* ws_aligned =
      reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws.data()) + 63) & ~uintptr_t{63});
  REQUIRE(relattn_attention(&over, ws_aligned, ws_bytes, nullptr) == RELATTN_OK);
  return c.Decode(out);
}

TEST_CASE("softcap and sinks: decode over a KV cache (f32 and f16 storage)") {
  for (int variant = 0; variant < 4; ++variant) {
    CaseSpec spec;
    spec.seed = 4900 + variant;
    spec.scheme = variant % 2 ? RELATTN_BIAS_ALIBI : RELATTN_BIAS_SHAW_VECTOR;
    spec.in_dtype = variant >= 2 ? RELATTN_F16 : RELATTN_F32;  // f16 storage is then exact
    spec.n_q = 1 + variant;
    spec.n_kv = variant == 3 ? 3000 : 300;
    spec.q_start = spec.n_kv - spec.n_q;
    spec.n_heads = 4;
    spec.n_kv_heads = 2;
    spec.causal = true;
    spec.sinks = true;
    spec.softcap = 20.0f;
    if (variant == 1) spec.rope = relattn_rope{RELATTN_ROPE_HALVES, 0, 0.0f, 0.0f, {}};
    Case c(spec);
    const double err = CheckAllTargets([&] { return RunOverCache(c, spec.in_dtype); },
                                       c.Reference(), ErrorBound(RELATTN_F32), spec.Name());
    error_log.Note("kv cache", err);
  }
}

TEST_CASE("softcap and sinks: no sink is the plain softmax bit for bit; a softcap of 1e30 too") {
  CaseSpec spec;
  spec.scheme = RELATTN_BIAS_ALIBI;
  spec.n_q = 50;
  spec.n_kv = 90;
  spec.causal = true;
  Case plain(spec);
  std::vector<uint8_t> a, b;
  REQUIRE(plain.Run(&a) == RELATTN_OK);
  // A sink of -2^126 vanishes exactly: e^(sink - m) underflows to 0.
  std::vector<float> sinks(spec.n_heads, -0x1p126f);
  plain.desc().sinks = sinks.data();
  REQUIRE(plain.Run(&b) == RELATTN_OK);
  CHECK(a == b);
}

TEST_CASE("softcap and sinks: bad values fail with their own status, output untouched") {
  CaseSpec spec;
  spec.n_heads = 2;
  Case c(spec);
  std::vector<uint8_t> out;
  for (float cap : {-1.0f, NAN, INFINITY, 1e-7f, 1e31f}) {
    c.desc().softcap = cap;
    REQUIRE(c.Run(&out) == RELATTN_ERR_BAD_SOFTCAP);
    CHECK(std::string(relattn_last_error()).find("softcap = ") == 0);
    CHECK(std::all_of(out.begin(), out.end(), [](uint8_t x) { return x == 0xff; }));
  }
  c.desc().softcap = 0.0f;
  std::vector<float> sinks = {0.0f, 0.0f, 0.0f};
  c.desc().sinks = sinks.data();
  for (float bad : {NAN, INFINITY, -INFINITY, 0x1p127f}) {
    sinks[1] = bad;
    REQUIRE(c.Run(&out) == RELATTN_ERR_BAD_SINK);
    CHECK(std::string(relattn_last_error()).find("sinks[1] = ") == 0);
  }
  sinks[1] = 0.0f;
  c.desc().sinks = reinterpret_cast<const float*>(reinterpret_cast<const char*>(sinks.data()) + 1);
  REQUIRE(c.Run(&out) == RELATTN_ERR_BAD_SINK);
  CHECK(std::string(relattn_last_error()).find("aligned") != std::string::npos);
}

}  // namespace
}  // namespace relattn_test
#endif  // HWY_ONCE
