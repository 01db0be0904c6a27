// int8 Q.K against the fp64 reference on every SIMD target: on the
// dequantised inputs (the kernel's own error, tight) and on the original
// float inputs with LLM-like outlier channels (the quantisation error);
// saturated and zero rows, head dims off every vector width, int8 K in the KV
// cache, non-finite scales; relattn_quantize_i8 itself.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "hwy/targets.h"
#include "lib/reference/bounds.h"
#include "lib/reference/reference.h"
#include "tests/attention_case.h"
#if defined(RELATTN_HAVE_X86_INT_DOT)
#include "ports/x86/madd_scores.h"
#include "ports/x86/vnni_scores.h"
#endif
#if defined(RELATTN_HAVE_ARM_SDOT)
#include "ports/arm/sdot_scores.h"
#endif

namespace relattn_test {
namespace {

// Bounds against the reference on the original float inputs (inputs in
// [-1, 1], one scale per row; the measured worst is printed at exit): the
// quantisation error, not the kernel's. Outliers (every 8th K channel 20x the
// others, as in LLMs) set the row scale, so the other channels keep only
// about 6 of the 127 levels: per-row int8 K loses ~15x more there.
constexpr double kQuantisedBound = relattn::bounds::kInt8Quantised;
constexpr double kQuantisedOutlierBound = relattn::bounds::kInt8QuantisedOutliers;

WorstErrors error_log("int8");

std::string Label(const CaseSpec& spec) {
  return std::string(spec.int8_qk == 2 ? "q+k int8" : "k int8") + ", d " +
         std::to_string(spec.head_dim);
}

// Every target against the reference on the dequantised inputs (bound per
// output dtype) and on the float inputs (kQuantisedBound).
void Check(const CaseSpec& spec) {
  Case c(spec);
  const std::vector<double> dequantised = c.Reference();
  const std::vector<double> original = c.ReferenceOnFloatInputs();
  ForEachTarget([&](int64_t target) {
    std::vector<uint8_t> out;
    INFO(TargetNameOf(target), " ", spec.Name());
    REQUIRE(c.Run(&out) == RELATTN_OK);
    const std::vector<double> got = c.Decode(out);
    const double kernel_err = MaxAbsDiff(got, dequantised);
    const double total_err = MaxAbsDiff(got, original);
    CHECK(kernel_err <= ErrorBound(spec.out_dtype));
    CHECK(total_err <= (spec.k_outlier != 1.0f ? kQuantisedOutlierBound : kQuantisedBound));
    const char* out_name = spec.out_dtype == RELATTN_F16 ? ", f16 out" : ", f32 out";
    error_log.Note("vs dequantised inputs" + std::string(out_name), kernel_err);
    error_log.Note("vs float inputs, " + Label(spec) +
                       (spec.k_outlier != 1.0f ? ", 20x outlier channels" : ", no outliers"),
                   total_err);
  });
}

TEST_CASE("int8: head dims x n_q x Q/K quantised x schemes, against both references") {
  const int32_t dims[] = {1, 3, 17, 64, 80, 128, 256};
  int index = 0;
  for (int32_t d : dims) {
    for (int64_t n_q : {int64_t{1}, int64_t{5}, int64_t{70}}) {
      for (int int8_qk : {1, 2}) {
        CaseSpec spec;
        spec.seed = 8000 + index;
        spec.head_dim = d;
        spec.n_q = n_q;
        spec.n_kv = 130;
        spec.q_start = 130 - n_q;
        spec.n_heads = index % 2 ? 4 : 2;
        spec.n_kv_heads = index % 2 ? 2 : 2;
        spec.int8_qk = int8_qk;
        spec.in_dtype = index % 3 == 1 ? RELATTN_F16 : RELATTN_F32;
        spec.out_dtype = index % 5 == 2 ? RELATTN_F16 : RELATTN_F32;
        spec.heads_major = index % 4 == 3;
        spec.scheme = relattn_bias_kind(index % 4);
        spec.alibi_causal = true;
        spec.t5_bidirectional = false;
        spec.causal = index % 3 != 2;
        spec.k_outlier = index / 2 % 2 ? 20.0f : 1.0f;
        Check(spec);
        ++index;
      }
    }
  }
}

// A hand-made int8 problem: K rows with -128 and 127, an all-zero row (scale
// 0), a scale-0 row with non-zero integers, head_dim 5 (no vector width).
TEST_CASE("int8: saturated values, zero rows and zero scales") {
  constexpr int64_t kNq = 3, kNkv = 6;
  constexpr int32_t kD = 5;
  const int8_t k[kNkv][kD] = {
      {-128, 127, -128, 127, -128},   {127, 127, 127, 127, 127}, {0, 0, 0, 0, 0},
      {-128, -128, -128, -128, -128}, {5, -7, 9, -11, 13},       {100, -100, 50, -50, 1}};
  const float k_scales[kNkv] = {0.01f, 0.004f, 0.0f, 0.008f, 0.0f, 0.02f};
  const int8_t q[kNq][kD] = {
      {-128, -128, -128, -128, -128}, {127, -128, 0, 1, -1}, {3, 4, 5, 6, 7}};
  const float q_scales[kNq] = {0.01f, 0.02f, 0.0f};
  std::vector<float> v(kNkv * kD);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.7 * double(i));
  for (bool int8_q : {false, true}) {
    std::vector<float> q_float(kNq * kD);
    for (int64_t i = 0; i < kNq * kD; ++i) q_float[i] = q_scales[i / kD] * q[i / kD][i % kD];
    relattn_attention_desc d;
    relattn_attention_desc_init(&d);
    d.n_q = kNq;
    d.n_kv = kNkv;
    d.n_heads = d.n_kv_heads = 1;
    d.head_dim = kD;
    d.q = int8_q ? relattn_tensor{q, RELATTN_I8, kD, kD, q_scales, 1, 1}
                 : relattn_tensor{q_float.data(), RELATTN_F32, kD, kD, nullptr, 0, 0};
    d.k = relattn_tensor{k, RELATTN_I8, kD, kD, k_scales, 1, 1};
    d.v = relattn_tensor{v.data(), RELATTN_F32, kD, kD, nullptr, 0, 0};
    d.scale = 3.0f;  // large enough that the saturated rows dominate
    std::vector<double> expected(kNq * kD);
    relattn::reference::Attention(d, expected.data());
    CheckAllTargets(
        [&] {
          std::vector<float> out(kNq * kD, NAN);
          d.o = relattn_output{out.data(), RELATTN_F32, kD, kD};
          size_t bytes = 0;
          REQUIRE(relattn_attention_workspace_size(&d, 1, &bytes) == RELATTN_OK);
          std::vector<uint64_t> ws(bytes / 8 + 8);
          void* aligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws.data()) + 63) &
                                                  ~uintptr_t{63});
          REQUIRE(relattn_attention(&d, aligned, bytes, nullptr) == RELATTN_OK);
          return std::vector<double>(out.begin(), out.end());
        },
        expected, ErrorBound(RELATTN_F32), "int8 q " + std::to_string(int8_q));
  }
}

TEST_CASE("int8: a non-finite K row scale poisons exactly the queries that see it") {
  CaseSpec spec;
  spec.n_q = 6;
  spec.n_kv = 6;
  spec.head_dim = 16;
  spec.causal = true;
  spec.int8_qk = 1;
  Case c(spec);
  float* scales = const_cast<float*>(c.desc().k.row_scales);
  const std::vector<double> clean = c.Reference();  // rows 0..2 do not see key 3
  scales[3] = NAN;
  ForEachTarget([&](int64_t target) {
    std::vector<uint8_t> out;
    REQUIRE(c.Run(&out) == RELATTN_OK);
    const std::vector<double> got = c.Decode(out);
    INFO(TargetNameOf(target));
    for (int64_t i = 0; i < 6; ++i) {
      for (int e = 0; e < 16; ++e) {
        const double x = got[size_t(i) * 16 + e];
        if (i < 3) {
          CHECK(std::fabs(x - clean[size_t(i) * 16 + e]) <= ErrorBound(RELATTN_F32));
        } else {
          CHECK(std::isnan(x));
        }
      }
    }
  });
}

// A KV cache of `cd` (allocated in memory) holding the case's 150 tokens.
relattn_kv_cache* CacheOf(relattn_kv_cache_desc cd, const relattn_tensor& k,
                          const relattn_tensor& v, std::vector<uint64_t>* memory) {
  size_t bytes = 0;
  REQUIRE(relattn_kv_cache_size(&cd, &bytes) == RELATTN_OK);
  memory->assign(bytes / 8 + 16, 0);
  void* aligned =
      reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(memory->data()) + 63) & ~uintptr_t{63});
  relattn_kv_cache* cache = nullptr;
  REQUIRE(relattn_kv_cache_init(&cd, aligned, bytes, &cache) == RELATTN_OK);
  REQUIRE(relattn_kv_cache_append(cache, 150, &k, &v, nullptr) == RELATTN_OK);
  return cache;
}

// Attention of d (workspace for one thread) into a fresh NaN-filled output of out_elems floats.
std::vector<double> RunOver(relattn_attention_desc d, size_t out_elems) {
  std::vector<float> out(out_elems, NAN);
  d.o.data = out.data();
  size_t ws_bytes = 0;
  REQUIRE(relattn_attention_workspace_size(&d, 1, &ws_bytes) == RELATTN_OK);
  std::vector<uint64_t> ws(ws_bytes / 8 + 8);
  void* ws_aligned =
      reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws.data()) + 63) & ~uintptr_t{63});
  REQUIRE(relattn_attention(&d, ws_aligned, ws_bytes, nullptr) == RELATTN_OK);
  return std::vector<double>(out.begin(), out.end());
}

// int8 K in a KV cache is quantised at append exactly as relattn_quantize_i8
// does, so attention over it equals the int8 case's reference: with Q as
// given for prefill, with Q quantised per row too for decode (n_q <= 7:
// every target sums the same integer products).
TEST_CASE("int8: K stored in int8 in a KV cache, decode and prefill over it") {
  for (int64_t n_q : {int64_t{1}, int64_t{3}, int64_t{40}}) {
    CaseSpec spec;
    spec.seed = 31 + n_q;
    spec.n_q = n_q;
    spec.n_kv = 150;
    spec.q_start = 150 - n_q;
    spec.n_heads = 4;
    spec.n_kv_heads = 2;
    spec.head_dim = 40;
    spec.causal = true;
    spec.scheme = RELATTN_BIAS_ALIBI;
    spec.alibi_causal = true;
    spec.int8_qk = 1;
    spec.in_dtype = RELATTN_F16;
    Case c(spec);
    CaseSpec quantised_q = spec;
    quantised_q.int8_qk = 2;
    Case decode_view(quantised_q);
    const std::vector<double> expected = n_q <= 7 ? decode_view.Reference() : c.Reference();
    const relattn_kv_cache_desc cd{2,           40, 0,  160, RELATTN_I8,
                                   RELATTN_F16, 0,  {}, 0,   RELATTN_SINK_POSITIONS_TEXT};
    // The float K the case quantised (same seed, not quantised); V is f16
    // data, which the f16 cache stores exactly.
    CaseSpec float_spec = spec;
    float_spec.int8_qk = 0;
    Case source(float_spec);
    std::vector<uint64_t> memory;
    relattn_attention_desc d = c.desc();
    d.n_kv = d.n_kv_heads = d.head_dim = 0;
    d.k = d.v = relattn_tensor{};
    d.kv_cache = CacheOf(cd, source.desc().k, c.desc().v, &memory);
    const double err = CheckAllTargets([&] { return RunOver(d, c.out_elems()); }, expected,
                                       ErrorBound(RELATTN_F32), "n_q " + std::to_string(n_q));
    error_log.Note("KV cache int8 K (f16 V) vs dequantised reference", err);
  }
}

// Int8 V (cache storage and tensors): equal within the f32 bound to f32 V
// holding the dequantised rows (scale x q in f32, as the kernels convert).
TEST_CASE("int8: V stored in int8 in a KV cache and int8 V tensors") {
  for (int64_t n_q : {int64_t{1}, int64_t{3}, int64_t{40}}) {
    CaseSpec spec;
    spec.seed = 51 + n_q;
    spec.n_q = n_q;
    spec.n_kv = 150;
    spec.q_start = 150 - n_q;
    spec.n_heads = 4;
    spec.n_kv_heads = 2;
    spec.head_dim = 40;
    spec.causal = true;
    spec.scheme = RELATTN_BIAS_ALIBI;
    spec.alibi_causal = true;
    spec.in_dtype = RELATTN_F16;
    Case c(spec);
    std::vector<int8_t> v_q(150 * 2 * 40);
    std::vector<float> v_scales(150 * 2), v_deq(v_q.size());
    relattn_tensor v_i8{};
    REQUIRE(relattn_quantize_i8(&c.desc().v, 150, 2, 40, v_q.data(), v_scales.data(), &v_i8) ==
            RELATTN_OK);
    for (size_t i = 0; i < v_q.size(); ++i) v_deq[i] = v_scales[i / 40] * float(v_q[i]);
    const relattn_tensor v_f32{v_deq.data(), RELATTN_F32, 80, 40, nullptr, 0, 0};
    relattn_kv_cache_desc cd{2,          40, 0,  160, RELATTN_F16,
                             RELATTN_I8, 0,  {}, 0,   RELATTN_SINK_POSITIONS_TEXT};
    std::vector<uint64_t> m_i8, m_f32;
    relattn_kv_cache* cache_i8 = CacheOf(cd, c.desc().k, c.desc().v, &m_i8);
    cd.v_dtype = RELATTN_F32;
    relattn_kv_cache* cache_f32 = CacheOf(cd, c.desc().k, v_f32, &m_f32);
    relattn_attention_desc d = c.desc();
    d.n_kv = d.n_kv_heads = d.head_dim = 0;
    d.k = d.v = relattn_tensor{};
    d.kv_cache = cache_f32;
    const std::vector<double> expected = RunOver(d, c.out_elems());
    d.kv_cache = cache_i8;
    double err = CheckAllTargets([&] { return RunOver(d, c.out_elems()); }, expected,
                                 ErrorBound(RELATTN_F32), "cache n_q " + std::to_string(n_q));
    error_log.Note("KV cache int8 V vs f32 V of its dequantised rows", err);
    relattn_attention_desc t = c.desc();
    t.v = v_f32;
    const std::vector<double> expected_t = RunOver(t, c.out_elems());
    t.v = v_i8;
    err = CheckAllTargets([&] { return RunOver(t, c.out_elems()); }, expected_t,
                          ErrorBound(RELATTN_F32), "tensors n_q " + std::to_string(n_q));
    error_log.Note("int8 V tensors vs f32 V of their dequantised rows", err);
    // And against the fp64 reference of the unquantised V: the quantisation error.
    const std::vector<double> exact = c.Reference();
    double q_err = 0;
    for (size_t i = 0; i < exact.size(); ++i)
      q_err = std::max(q_err, std::fabs(exact[i] - expected[i]));
    CHECK(q_err < 0.02);
    error_log.Note("int8 V quantisation error vs fp64 on float V", q_err);
  }
}

#if defined(RELATTN_HAVE_X86_INT_DOT) || defined(RELATTN_HAVE_ARM_SDOT)
// The integer dot-product kernels (AVX-512 VNNI on the AVX3 target, vpmaddwd
// on AVX2, SDOT on NEON) and the portable path compute the same integer
// scores and scale them alike: the outputs agree bit for bit.
struct IntDotKernel {
  int64_t target;
  bool (*usable)();
  void (*set_enabled)(bool);
};
#if defined(RELATTN_HAVE_X86_INT_DOT)
const IntDotKernel kIntDotKernels[] = {
    {HWY_AVX3, relattn::x86::VnniUsable, relattn::x86::SetVnniEnabled},
    {HWY_AVX2, relattn::x86::MaddUsable, relattn::x86::SetMaddEnabled}};
#else
const IntDotKernel kIntDotKernels[] = {
    {HWY_NEON, relattn::arm::SdotUsable, relattn::arm::SetSdotEnabled}};
#endif

// Sets every 7th int8 value of `t` (n_rows rows of d) to -128, the value
// that would saturate pmaddubsw and has no positive counterpart.
void PutMinimumValues(const relattn_tensor& t, int64_t n_rows, int32_t d) {
  int8_t* data = static_cast<int8_t*>(const_cast<void*>(t.data));
  for (int64_t i = 0; i < n_rows * d; i += 7) data[i] = -128;
}

void CompareIntDotWithPortable(const IntDotKernel& kernel) {
  int index = 0;
  for (int32_t d : {3, 64, 128, 256}) {
    for (int64_t n_q : {int64_t{33}, int64_t{100}}) {
      CaseSpec spec;
      spec.seed = 600 + index++;
      spec.head_dim = d;
      spec.n_q = n_q;
      spec.n_kv = 150;
      spec.n_heads = 4;
      spec.n_kv_heads = 2;
      spec.int8_qk = 2;
      spec.causal = index % 2;
      spec.scheme = RELATTN_BIAS_ALIBI;
      spec.alibi_causal = spec.causal;
      Case c(spec);
      PutMinimumValues(c.desc().q, spec.n_q * spec.n_heads, d);
      PutMinimumValues(c.desc().k, spec.n_kv * spec.n_kv_heads, d);
      UseTarget(kernel.target);
      std::vector<uint8_t> int_dot, portable;
      REQUIRE(c.Run(&int_dot) == RELATTN_OK);
      kernel.set_enabled(false);
      REQUIRE(c.Run(&portable) == RELATTN_OK);
      kernel.set_enabled(true);
      UseTarget(0);
      INFO(std::string(hwy::TargetName(kernel.target)), " ", spec.Name());
      CHECK(int_dot == portable);
      CHECK(MaxAbsDiff(c.Decode(int_dot), c.Reference()) <= ErrorBound(RELATTN_F32));
    }
  }
  // Decode over an int8 KV cache: head dims off a multiple of 4 (masked
  // loads), key counts off a multiple of 16, row counts off a multiple of 4.
  for (int32_t d : {5, 64, 130}) {
    for (int32_t group : {1, 3, 4}) {
      CaseSpec spec;
      spec.seed = 700 + d + group;
      spec.head_dim = d;
      spec.n_q = group == 3 ? 2 : 1;
      spec.n_kv = 1000 + d;
      spec.q_start = spec.n_kv - 1;
      spec.n_heads = 2 * group;
      spec.n_kv_heads = 2;
      spec.causal = true;
      Case c(spec);
      relattn_kv_cache_desc cd{2,           d, 0,  spec.n_kv, RELATTN_I8,
                               RELATTN_F32, 0, {}, 0,         RELATTN_SINK_POSITIONS_TEXT};
      size_t bytes = 0;
      REQUIRE(relattn_kv_cache_size(&cd, &bytes) == RELATTN_OK);
      std::vector<uint64_t> memory(bytes / 8 + 16);
      void* aligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(memory.data()) + 63) &
                                              ~uintptr_t{63});
      relattn_kv_cache* cache = nullptr;
      REQUIRE(relattn_kv_cache_init(&cd, aligned, bytes, &cache) == RELATTN_OK);
      REQUIRE(relattn_kv_cache_append(cache, spec.n_kv, &c.desc().k, &c.desc().v, nullptr) ==
              RELATTN_OK);
      relattn_attention_desc desc = c.desc();
      desc.n_kv = desc.n_kv_heads = desc.head_dim = 0;
      desc.k = desc.v = relattn_tensor{};
      desc.kv_cache = cache;
      std::vector<float> int_dot(c.out_elems()), portable(c.out_elems());
      desc.o.data = int_dot.data();
      size_t ws_bytes = 0;
      REQUIRE(relattn_attention_workspace_size(&desc, 1, &ws_bytes) == RELATTN_OK);
      std::vector<uint64_t> ws(ws_bytes / 8 + 16);
      void* ws_aligned =
          reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws.data()) + 63) & ~uintptr_t{63});
      UseTarget(kernel.target);
      desc.o.data = int_dot.data();
      REQUIRE(relattn_attention(&desc, ws_aligned, ws_bytes, nullptr) == RELATTN_OK);
      kernel.set_enabled(false);
      desc.o.data = portable.data();
      REQUIRE(relattn_attention(&desc, ws_aligned, ws_bytes, nullptr) == RELATTN_OK);
      kernel.set_enabled(true);
      UseTarget(0);
      INFO(std::string(hwy::TargetName(kernel.target)), " decode d ", d, " group ", group);
      CHECK(std::memcmp(int_dot.data(), portable.data(), int_dot.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("int8: the integer dot-product kernels and the portable path give the same bits") {
  const std::vector<int64_t> targets = TargetsUnderTest();
  int compared = 0;
  for (const IntDotKernel& kernel : kIntDotKernels) {
    if (std::count(targets.begin(), targets.end(), kernel.target) == 0 || !kernel.usable()) {
      std::printf("int8: %s or its integer kernel not under test here: not compared\n",
                  hwy::TargetName(kernel.target));
      continue;
    }
    CompareIntDotWithPortable(kernel);
    ++compared;
  }
  std::printf("int8: %d integer kernel(s) compared with the portable path bit for bit\n", compared);
}
#endif

TEST_CASE("int8: relattn_quantize_i8") {
  const float src[2][3][4] = {{{1.0f, -0.5f, 0.25f, 0.0f}, {0, 0, 0, 0}, {-3.0f, 2.0f, 1.0f, 0.1f}},
                              {{127.0f, -127.0f, 63.5f, 0.4f}, {1e-3f, 0, 0, 0}, {5, 5, 5, 5}}};
  relattn_tensor t{src, RELATTN_F32, 12, 4, nullptr, 0, 0};
  int8_t q[24];
  float scales[6];
  relattn_tensor out{};
  REQUIRE(relattn_quantize_i8(&t, 2, 3, 4, q, scales, &out) == RELATTN_OK);
  CHECK(out.dtype == RELATTN_I8);
  CHECK(out.data == q);
  CHECK(out.row_scales == scales);
  CHECK(out.token_stride == 12);
  CHECK(out.head_stride == 4);
  CHECK(out.scale_token_stride == 3);
  CHECK(out.scale_head_stride == 1);
  CHECK(scales[1] == 0.0f);  // all-zero row
  for (int e = 0; e < 4; ++e) CHECK(q[4 + e] == 0);
  CHECK(scales[3] == 1.0f);
  CHECK(q[12] == 127);
  CHECK(q[13] == -127);
  CHECK(q[14] == 64);  // 63.5 rounds half away from zero
  for (int r = 0; r < 6; ++r) {
    for (int e = 0; e < 4; ++e) {
      const float x = src[r / 3][r % 3][e];
      CHECK(std::fabs(x - scales[r] * q[r * 4 + e]) <= scales[r] / 2 * 1.0001f);
      CHECK(q[r * 4 + e] >= -127);
    }
  }
  float bad[4] = {1, NAN, 2, 3};
  relattn_tensor b{bad, RELATTN_F32, 4, 4, nullptr, 0, 0};
  int8_t untouched[4] = {9, 9, 9, 9};
  float untouched_scale = 9;
  CHECK(relattn_quantize_i8(&b, 1, 1, 4, untouched, &untouched_scale, &out) ==
        RELATTN_ERR_NON_FINITE);
  CHECK(std::string(relattn_last_error()).find("(token 0, head 0, 1)") != std::string::npos);
  CHECK(untouched[0] == 9);
  CHECK(untouched_scale == 9);
  CHECK(relattn_quantize_i8(&b, 1, 1, 0, untouched, &untouched_scale, &out) ==
        RELATTN_ERR_BAD_DIMENSION);
  CHECK(relattn_quantize_i8(nullptr, 1, 1, 4, untouched, &untouched_scale, &out) ==
        RELATTN_ERR_NULL_ARGUMENT);
}

}  // namespace
}  // namespace relattn_test
