// RELATTN_BF16: the scalar conversions, and a KV cache storing bf16 (or fed
// bf16) against the fp64 reference on the values it holds, on every target.
// (bf16 Q, K, V tensors and outputs: test_attention's scheme x mask x dtype
// case.)
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lib/common/bf16.h"
#include "lib/common/f16.h"
#include "lib/common/float_element.h"
#include "lib/reference/bounds.h"
#include "lib/reference/reference.h"
#if defined(RELATTN_HAVE_X86_INT_DOT)
#include "hwy/targets.h"
#include "ports/x86/bf16_scores.h"
#endif
#include "relattn/relattn.hpp"
#include "tests/attention_case.h"

namespace relattn_test {
namespace {

float FromBits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

TEST_CASE("F32ToBF16 rounds to nearest even; BF16ToF32 is exact") {
  CHECK(relattn::F32ToBF16(1.0f) == 0x3f80);
  CHECK(relattn::F32ToBF16(FromBits(0x3f808000u)) == 0x3f80);  // tie, even below
  CHECK(relattn::F32ToBF16(FromBits(0x3f818000u)) == 0x3f82);  // tie, even above
  CHECK(relattn::F32ToBF16(FromBits(0x3f808001u)) == 0x3f81);  // above the tie
  CHECK(relattn::F32ToBF16(-0.0f) == 0x8000);
  CHECK(relattn::F32ToBF16(FromBits(0x7f7fffffu)) == 0x7f80);  // max f32 rounds to inf
  CHECK(relattn::F32ToBF16(INFINITY) == 0x7f80);
  const uint16_t nan = relattn::F32ToBF16(FromBits(0xffc00001u));
  CHECK((nan & 0x8000) != 0);
  CHECK(std::isnan(relattn::BF16ToF32(nan)));
  CHECK(std::isnan(relattn::BF16ToF32(relattn::F32ToBF16(FromBits(0x7f800001u)))));  // sNaN
  for (uint32_t h = 0; h < 0x10000; h += 7) {
    const float f = relattn::BF16ToF32(uint16_t(h));
    if (!std::isnan(f)) CHECK(relattn::F32ToBF16(f) == h);
  }
}

// d 40 and 135 keys reach every tail of the bf16 kernels' register blocks
// and packers on AVX3 (16 lanes): 40 = 2 x 16 + 8 channels, 135 = 2 x 64 + 7
// keys (an odd key pair).
constexpr int32_t kHeads = 4, kKvHeads = 2, kD = 40;
constexpr int64_t kKeys = 135;

std::vector<float> Uniform(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(n);
  for (float& e : x) e = u(rng);
  return x;
}

std::vector<float> Rounded(std::vector<float> x, relattn_dtype dtype) {
  for (float& e : x) e = relattn::RoundedAs(e, dtype);
  return x;
}

std::vector<uint16_t> AsBF16(const std::vector<float>& x) {
  std::vector<uint16_t> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = relattn::F32ToBF16(x[i]);
  return out;
}

relattn_attention_desc DescOf(int64_t n_q, const std::vector<float>& q) {
  relattn_attention_desc d;
  relattn_attention_desc_init(&d);
  d.n_q = n_q;
  d.n_heads = kHeads;
  d.head_dim = kD;
  d.q = relattn::TokensHeadsDim(q.data(), RELATTN_F32, kHeads, kD);
  d.q_pos.start = kKeys - n_q;
  d.mask.causal = 1;
  d.bias.kind = RELATTN_BIAS_ALIBI;
  return d;
}

std::vector<double> Run(relattn_attention_desc d, relattn_dtype out_dtype) {
  std::vector<uint16_t> half(size_t(d.n_q) * kHeads * kD);
  std::vector<float> full(half.size());
  d.o = out_dtype == RELATTN_F32
            ? relattn::OutputTokensHeadsDim(full.data(), out_dtype, kHeads, kD)
            : relattn::OutputTokensHeadsDim(half.data(), out_dtype, kHeads, kD);
  relattn::Workspace ws;
  REQUIRE(bool(ws.Reserve(d, 1)));
  INFO(relattn_last_error());
  REQUIRE(relattn_attention(&d, ws.data(), ws.bytes(), nullptr) == RELATTN_OK);
  std::vector<double> out(half.size());
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = relattn::FloatElement(d.o.data, out_dtype, int64_t(i));
  }
  return out;
}

std::vector<double> Reference(int64_t n_q, const std::vector<float>& q, const std::vector<float>& k,
                              const std::vector<float>& v) {
  relattn_attention_desc d = DescOf(n_q, q);
  d.n_kv = kKeys;
  d.n_kv_heads = kKvHeads;
  d.k = relattn::TokensHeadsDim(k.data(), RELATTN_F32, kKvHeads, kD);
  d.v = relattn::TokensHeadsDim(v.data(), RELATTN_F32, kKvHeads, kD);
  std::vector<double> out(size_t(n_q) * kHeads * kD);
  relattn::reference::Attention(d, out.data());
  return out;
}

// A KV cache of kKeys tokens of k, v appended as `input` (F32 or BF16), stored as k_dtype, v_dtype.
struct Cache {
  Cache(relattn_dtype k_dtype, relattn_dtype v_dtype, relattn_dtype input,
        const std::vector<float>& k, const std::vector<float>& v) {
    relattn_kv_cache_desc cd{};
    cd.n_kv_heads = kKvHeads;
    cd.head_dim = kD;
    cd.capacity = kKeys;
    cd.k_dtype = k_dtype;
    cd.v_dtype = v_dtype;
    size_t bytes = 0;
    REQUIRE(relattn_kv_cache_size(&cd, &bytes) == RELATTN_OK);
    memory.resize(bytes / 8 + 8);
    void* aligned =
        reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(memory.data()) + 63) & ~uintptr_t{63});
    REQUIRE(relattn_kv_cache_init(&cd, aligned, bytes, &cache) == RELATTN_OK);
    k16 = AsBF16(k);
    v16 = AsBF16(v);
    const bool bf16 = input == RELATTN_BF16;
    const relattn_tensor kt = relattn::TokensHeadsDim(
        bf16 ? static_cast<const void*>(k16.data()) : k.data(), input, kKvHeads, kD);
    const relattn_tensor vt = relattn::TokensHeadsDim(
        bf16 ? static_cast<const void*>(v16.data()) : v.data(), input, kKvHeads, kD);
    REQUIRE(relattn_kv_cache_append(cache, kKeys, &kt, &vt, nullptr) == RELATTN_OK);
  }
  std::vector<uint64_t> memory;
  std::vector<uint16_t> k16, v16;
  relattn_kv_cache* cache = nullptr;
};

TEST_CASE("a KV cache storing bf16, or fed bf16: the fp64 reference on the values it holds") {
  WorstErrors worst("test_bf16");
  const relattn_dtype pairs[][2] = {{RELATTN_BF16, RELATTN_BF16},
                                    {RELATTN_BF16, RELATTN_F16},
                                    {RELATTN_F16, RELATTN_BF16},
                                    {RELATTN_F32, RELATTN_F32}};
  for (const auto& pair : pairs) {
    for (relattn_dtype input : {RELATTN_F32, RELATTN_BF16}) {
      for (int64_t n_q : {1, 3, 40}) {
        const std::vector<float> q = Uniform(7 + n_q, size_t(n_q) * kHeads * kD);
        const std::vector<float> k = Uniform(8, size_t(kKeys) * kKvHeads * kD);
        const std::vector<float> v = Uniform(9, k.size());
        // What the cache holds: the input's values rounded by its storage.
        const std::vector<float> k_in = Rounded(k, input), v_in = Rounded(v, input);
        const std::vector<double> expected =
            Reference(n_q, q, Rounded(k_in, pair[0]), Rounded(v_in, pair[1]));
        Cache c(pair[0], pair[1], input, k, v);
        relattn_attention_desc d = DescOf(n_q, q);
        d.kv_cache = c.cache;
        const std::string context = "k " + std::to_string(pair[0]) + " v " +
                                    std::to_string(pair[1]) + " input " + std::to_string(input) +
                                    " n_q " + std::to_string(n_q);
        worst.Note("cache, f32 output",
                   CheckAllTargets([&] { return Run(d, RELATTN_F32); }, expected,
                                   relattn::bounds::kF32Output, context));
        worst.Note("cache, bf16 output",
                   CheckAllTargets([&] { return Run(d, RELATTN_BF16); }, expected,
                                   relattn::bounds::kBF16Output, context));
      }
    }
  }
}

TEST_CASE("bf16 K and V tensors: decode reads them in place, prefill converts them") {
  WorstErrors worst("test_bf16");
  for (bool heads_major : {false, true}) {
    for (int64_t n_q : {1, 2, 7, 40}) {
      const std::vector<float> q = Uniform(20 + n_q, size_t(n_q) * kHeads * kD);
      const std::vector<float> k =
          Rounded(Uniform(21, size_t(kKeys) * kKvHeads * kD), RELATTN_BF16);
      const std::vector<float> v = Rounded(Uniform(22, k.size()), RELATTN_BF16);
      std::vector<uint16_t> k16 = AsBF16(k), v16 = AsBF16(v);
      if (heads_major) {  // [heads][tokens][d]
        std::vector<uint16_t> kh(k16.size()), vh(v16.size());
        for (int64_t t = 0; t < kKeys; ++t) {
          for (int32_t h = 0; h < kKvHeads; ++h) {
            for (int32_t e = 0; e < kD; ++e) {
              kh[(h * kKeys + t) * kD + e] = k16[(t * kKvHeads + h) * kD + e];
              vh[(h * kKeys + t) * kD + e] = v16[(t * kKvHeads + h) * kD + e];
            }
          }
        }
        k16.swap(kh);
        v16.swap(vh);
      }
      relattn_attention_desc d = DescOf(n_q, q);
      d.n_kv = kKeys;
      d.n_kv_heads = kKvHeads;
      d.k = heads_major ? relattn::HeadsTokensDim(k16.data(), RELATTN_BF16, kKeys, kD)
                        : relattn::TokensHeadsDim(k16.data(), RELATTN_BF16, kKvHeads, kD);
      d.v = heads_major ? relattn::HeadsTokensDim(v16.data(), RELATTN_BF16, kKeys, kD)
                        : relattn::TokensHeadsDim(v16.data(), RELATTN_BF16, kKvHeads, kD);
      worst.Note("tensors",
                 CheckAllTargets([&] { return Run(d, RELATTN_F32); }, Reference(n_q, q, k, v),
                                 relattn::bounds::kF32Output, "n_q " + std::to_string(n_q)));
      // A NaN in key 0 of KV head 0 (bf16 bits 0x7fc0) poisons its query heads' rows, which
      // all see key 0, and no other.
      k16[3] = 0x7fc0;
      const std::vector<double> poisoned = Run(d, RELATTN_F32);
      CHECK(std::isnan(poisoned[0]));
      CHECK(std::isnan(poisoned[size_t(kD)]));
      CHECK(!std::isnan(poisoned[size_t(2 * kD)]));
    }
  }
}

#if defined(RELATTN_HAVE_X86_INT_DOT)
// Random bf16 bits of values in [-1, 1].
std::vector<uint16_t> Bf16Bits(uint64_t seed, size_t n) { return AsBF16(Uniform(seed, n)); }

// vdpbf16ps adds exact products with f32 rounding: within n_terms rounding
// errors of 2^-24 of the sum of |terms| (plus what was accumulated before).
bool WithinF32Sum(float got, double exact, double abs_sum, int64_t n_terms) {
  return std::fabs(double(got) - exact) <= double(n_terms + 1) * 0x1p-24 * abs_sum;
}

TEST_CASE("bf16 kernels: every register-block tail against a double sum") {
  if (!relattn::x86::Bf16DotUsable()) {
    MESSAGE("no AVX512-BF16 on this CPU: the kernels are not tested here");
    return;
  }
  constexpr int64_t kLanes = relattn::x86::kBf16Lanes, kD2 = 19, kStride = 41;
  const std::vector<uint16_t> q16 = Bf16Bits(70, size_t(kD2) * 2 * kLanes);
  std::vector<uint32_t> q_pairs(size_t(kD2) * kLanes);  // [c][lane]: channels 2c, 2c + 1
  for (int64_t c = 0; c < kD2; ++c) {
    for (int64_t l = 0; l < kLanes; ++l) {
      const uint16_t* row = &q16[size_t(l * 2 * kD2)];
      q_pairs[size_t(c * kLanes + l)] = row[2 * c] | uint32_t{row[2 * c + 1]} << 16;
    }
  }
  const std::vector<uint16_t> k16 = Bf16Bits(71, size_t(64) * kStride);
  for (int64_t n_keys : {1, 3, 4, 5, 8, 11, 64}) {
    std::vector<float> s(size_t(n_keys * kLanes));
    // scale 0.25: a power of two, so exactly s / 4 of the sums.
    relattn::x86::ScoresQLanesBf16Dot(q_pairs.data(), kD2, k16.data(), kStride, n_keys, 0.25f,
                                      s.data());
    for (int64_t j = 0; j < n_keys; ++j) {
      for (int64_t l = 0; l < kLanes; ++l) {
        double exact = 0.0, abs_sum = 0.0;
        for (int64_t e = 0; e < 2 * kD2; ++e) {
          const double t = double(relattn::BF16ToF32(q16[size_t(l * 2 * kD2 + e)])) *
                           relattn::BF16ToF32(k16[size_t(j * kStride + e)]);
          exact += t;
          abs_sum += std::fabs(t);
        }
        CAPTURE(n_keys);
        CHECK(WithinF32Sum(4.0f * s[size_t(j * kLanes + l)], exact, abs_sum, 2 * kD2));
      }
    }
  }
  const std::vector<float> p = Rounded(Uniform(72, size_t(64) * kLanes), RELATTN_F32);
  for (int64_t dv : {1, 5, 12, 38}) {
    for (int64_t n_keys : {1, 2, 7, 64}) {
      const int64_t n_pairs = (n_keys + 1) / 2;
      const std::vector<uint16_t> v16 = Bf16Bits(73 + dv, size_t(n_keys * dv));
      std::vector<uint32_t> v_pairs(size_t(n_pairs * dv));  // [i][e]: keys 2i, 2i + 1
      for (int64_t i = 0; i < n_pairs; ++i) {
        for (int64_t e = 0; e < dv; ++e) {
          const uint32_t hi = 2 * i + 1 < n_keys ? v16[size_t((2 * i + 1) * dv + e)] : 0u;
          v_pairs[size_t(i * dv + e)] = v16[size_t(2 * i * dv + e)] | hi << 16;
        }
      }
      const std::vector<float> o0 = Uniform(74, size_t(dv * kLanes));
      std::vector<float> o = o0;
      relattn::x86::PVQLanesBf16Dot(p.data(), n_keys, v_pairs.data(), dv, o.data());
      for (int64_t e = 0; e < dv; ++e) {
        for (int64_t l = 0; l < kLanes; ++l) {
          double sum = 0.0, abs_sum = 0.0;
          for (int64_t j = 0; j < n_keys; ++j) {
            const float pj = relattn::BF16ToF32(relattn::F32ToBF16(p[size_t(j * kLanes + l)]));
            const double t = double(pj) * relattn::BF16ToF32(v16[size_t(j * dv + e)]);
            sum += t;
            abs_sum += std::fabs(t);
          }
          const float start = o0[size_t(e * kLanes + l)];
          CAPTURE(dv);
          CAPTURE(n_keys);
          CHECK(WithinF32Sum(o[size_t(e * kLanes + l)], double(start) + sum,
                             std::fabs(start) + 2.0 * abs_sum, n_keys + 1));
        }
      }
    }
  }
}

// Prefill with bf16 Q and K on AVX3 takes vdpbf16ps (ports/x86) where the CPU
// has AVX512-BF16: its scores are f32 arithmetic on the same products in
// another order, so kernel and portable path agree within the f32 bound.
TEST_CASE("bf16 prefill: the vdpbf16ps kernel against the portable path and the reference") {
  if (!relattn::x86::Bf16DotUsable()) {
    MESSAGE("no AVX512-BF16 on this CPU: the kernel is not tested here");
    return;
  }
  struct Restore {
    ~Restore() { relattn::x86::SetBf16DotEnabled(true); }
  } restore;
  UseTarget(HWY_AVX3);
  for (int64_t n_q : {33, 130}) {
    const std::vector<float> q =
        Rounded(Uniform(40 + n_q, size_t(n_q) * kHeads * kD), RELATTN_BF16);
    const std::vector<float> k = Rounded(Uniform(41, size_t(kKeys) * kKvHeads * kD), RELATTN_BF16);
    const std::vector<float> v = Rounded(Uniform(42, k.size()), RELATTN_BF16);
    const std::vector<uint16_t> q16 = AsBF16(q), k16 = AsBF16(k), v16 = AsBF16(v);
    relattn_attention_desc d = DescOf(n_q, q);
    d.q = relattn::TokensHeadsDim(q16.data(), RELATTN_BF16, kHeads, kD);
    d.n_kv = kKeys;
    d.n_kv_heads = kKvHeads;
    d.k = relattn::TokensHeadsDim(k16.data(), RELATTN_BF16, kKvHeads, kD);
    d.v = relattn::TokensHeadsDim(v16.data(), RELATTN_BF16, kKvHeads, kD);
    const std::vector<double> expected = Reference(n_q, q, k, v);
    relattn::x86::SetBf16DotEnabled(true);
    const std::vector<double> kernel = Run(d, RELATTN_F32);
    relattn::x86::SetBf16DotEnabled(false);
    const std::vector<double> portable = Run(d, RELATTN_F32);
    CAPTURE(n_q);
    CHECK(MaxAbsDiff(kernel, expected) <= relattn::bounds::kF32Output);
    CHECK(MaxAbsDiff(portable, expected) <= relattn::bounds::kF32Output);
    CHECK(MaxAbsDiff(kernel, portable) <= relattn::bounds::kF32Output);
    MESSAGE("n_q " << n_q << ": kernel vs portable max |diff| " << MaxAbsDiff(kernel, portable));
    // FAST: P rounded to bf16 for P.V on the kernel; the portable path stays exact.
    d.precision = RELATTN_PRECISION_FAST;
    relattn::x86::SetBf16DotEnabled(true);
    const std::vector<double> fast = Run(d, RELATTN_F32);
    relattn::x86::SetBf16DotEnabled(false);
    CHECK(Run(d, RELATTN_F32) == portable);
    const double fast_error = MaxAbsDiff(fast, expected);
    CHECK(fast_error <= relattn::bounds::kBF16FastOutput);
    CHECK(fast_error > relattn::bounds::kF32Output);  // the bf16 P.V ran
    MESSAGE("n_q " << n_q << ": precision FAST max |error| " << fast_error);
    d.precision = RELATTN_PRECISION_EXACT;
  }
  UseTarget(0);
}

// The largest |scale| * sum_e |q_e k_e| over query-key pairs of a head and its
// KV head (F16FastOutput's max_qk).
double MaxAbsProducts(const std::vector<float>& q, int64_t n_q, const std::vector<float>& k) {
  double m = 0.0;
  for (int64_t i = 0; i < n_q; ++i) {
    for (int32_t h = 0; h < kHeads; ++h) {
      const float* qi = &q[size_t((i * kHeads + h) * kD)];
      for (int64_t j = 0; j < kKeys; ++j) {
        const float* kj = &k[size_t((j * kKvHeads + h / (kHeads / kKvHeads)) * kD)];
        double sum = 0.0;
        for (int32_t e = 0; e < kD; ++e) sum += std::fabs(double(qi[e]) * kj[e]);
        m = std::max(m, sum);
      }
    }
  }
  return m / std::sqrt(double(kD));
}

// f16 Q, K, V with precision FAST take the bf16 kernel (rounded to bf16 as
// they are packed) where the CPU has AVX512-BF16; without it (or the kernel
// switched off) FAST computes as EXACT.
TEST_CASE("f16 with precision FAST: the bf16 kernel within F16FastOutput, outliers too") {
  if (!relattn::x86::Bf16DotUsable()) {
    MESSAGE("no AVX512-BF16 on this CPU: f16 FAST is not tested here");
    return;
  }
  struct Restore {
    ~Restore() { relattn::x86::SetBf16DotEnabled(true); }
  } restore;
  UseTarget(HWY_AVX3);
  for (bool outliers : {false, true}) {
    const int64_t n_q = 130;
    std::vector<float> q = Uniform(80, size_t(n_q) * kHeads * kD);
    std::vector<float> k = Uniform(81, size_t(kKeys) * kKvHeads * kD);
    if (outliers) {  // every 8th channel of K 20x larger
      for (size_t i = 0; i < k.size(); i += 8) k[i] *= 20.0f;
    }
    q = Rounded(q, RELATTN_F16);
    k = Rounded(k, RELATTN_F16);
    const std::vector<float> v = Rounded(Uniform(82, k.size()), RELATTN_F16);
    std::vector<uint16_t> q16(q.size()), k16(k.size()), v16(v.size());
    for (size_t i = 0; i < q.size(); ++i) q16[i] = relattn::F32ToF16(q[i]);
    for (size_t i = 0; i < k.size(); ++i) k16[i] = relattn::F32ToF16(k[i]);
    for (size_t i = 0; i < v.size(); ++i) v16[i] = relattn::F32ToF16(v[i]);
    relattn_attention_desc d = DescOf(n_q, q);
    d.q = relattn::TokensHeadsDim(q16.data(), RELATTN_F16, kHeads, kD);
    d.n_kv = kKeys;
    d.n_kv_heads = kKvHeads;
    d.k = relattn::TokensHeadsDim(k16.data(), RELATTN_F16, kKvHeads, kD);
    d.v = relattn::TokensHeadsDim(v16.data(), RELATTN_F16, kKvHeads, kD);
    d.precision = RELATTN_PRECISION_FAST;
    const std::vector<double> expected = Reference(n_q, q, k, v);
    relattn::x86::SetBf16DotEnabled(true);
    const double error = MaxAbsDiff(Run(d, RELATTN_F32), expected);
    relattn::x86::SetBf16DotEnabled(false);
    const std::vector<double> portable = Run(d, RELATTN_F32);
    d.precision = RELATTN_PRECISION_EXACT;
    CHECK(portable == Run(d, RELATTN_F32));
    const double bound = relattn::bounds::F16FastOutput(MaxAbsProducts(q, n_q, k), 1.0);
    CAPTURE(outliers);
    CHECK(MaxAbsDiff(portable, expected) <= relattn::bounds::kF32Output);
    CHECK(error <= bound);
    CHECK(error > relattn::bounds::kF32Output);  // the bf16 kernel ran
    MESSAGE(std::string(outliers ? "outlier K channels" : "uniform")
            << ": f16 FAST max |error| " << error << " (bound " << bound << ")");
  }
  UseTarget(0);
}
#endif

TEST_CASE("precision: EXACT and FAST, anything else an error naming the field") {
  const std::vector<float> q = Uniform(60, size_t(2) * kHeads * kD);
  const std::vector<float> k = Uniform(61, size_t(kKeys) * kKvHeads * kD);
  relattn_attention_desc d = DescOf(2, q);
  d.n_kv = kKeys;
  d.n_kv_heads = kKvHeads;
  d.k = relattn::TokensHeadsDim(k.data(), RELATTN_F32, kKvHeads, kD);
  d.v = d.k;
  d.precision = RELATTN_PRECISION_FAST;  // f32 inputs: computed as EXACT
  const std::vector<double> fast = Run(d, RELATTN_F32);
  d.precision = RELATTN_PRECISION_EXACT;
  CHECK(Run(d, RELATTN_F32) == fast);
  d.precision = relattn_precision(2);
  std::vector<float> out(size_t(2) * kHeads * kD);
  d.o = relattn::OutputTokensHeadsDim(out.data(), RELATTN_F32, kHeads, kD);
  size_t bytes = 0;
  CHECK(relattn_attention_workspace_size(&d, 1, &bytes) == RELATTN_ERR_UNSUPPORTED);
  CHECK(std::string(relattn_last_error()).find("precision = 2") != std::string::npos);
}

}  // namespace
}  // namespace relattn_test
