#include "ports/x86/bf16_scores.h"

#if !defined(__x86_64__)
#error "ports/x86 is x86-64 code: CMakeLists.txt builds it only for x86-64"
#endif

// gcc 12 flags _mm512_undefined_epi32() inside its own intrinsics headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <atomic>
#include <cstring>

namespace relattn::x86 {
namespace {

std::atomic<bool> g_enabled{true};

// Channels 2c, 2c + 1 of a key row as the 32-bit pair vdpbf16ps broadcasts.
inline int32_t Pair(const uint16_t* p) {
  int32_t x;
  std::memcpy(&x, p, sizeof(x));
  return x;
}

}  // namespace

bool Bf16DotUsable() {
  static const bool cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
  return cpu && g_enabled.load(std::memory_order_relaxed);
}

void SetBf16DotEnabled(bool enabled) { g_enabled.store(enabled, std::memory_order_relaxed); }

// 4 keys x 2 query vectors = 8 accumulators; per channel pair, 2 loads of q,
// 4 broadcasts of k and 8 vdpbf16ps (256 multiply-adds).
__attribute__((target("avx512f,avx512bf16"))) void ScoresQLanesBf16Dot(const uint32_t* q_pairs,
                                                                       int64_t d2,
                                                                       const uint16_t* k,
                                                                       int64_t k_stride,
                                                                       int64_t n_keys, float* s) {
  int64_t j = 0;
  for (; j + 4 <= n_keys; j += 4) {
    const uint16_t* k0 = k + j * k_stride;
    const uint16_t *k1 = k0 + k_stride, *k2 = k1 + k_stride, *k3 = k2 + k_stride;
    __m512 a00 = _mm512_setzero_ps(), a01 = _mm512_setzero_ps();
    __m512 a10 = _mm512_setzero_ps(), a11 = _mm512_setzero_ps();
    __m512 a20 = _mm512_setzero_ps(), a21 = _mm512_setzero_ps();
    __m512 a30 = _mm512_setzero_ps(), a31 = _mm512_setzero_ps();
    for (int64_t c = 0; c < d2; ++c) {
      const __m512bh q0 = (__m512bh)_mm512_loadu_si512(q_pairs + c * 32);
      const __m512bh q1 = (__m512bh)_mm512_loadu_si512(q_pairs + c * 32 + 16);
      const __m512bh b0 = (__m512bh)_mm512_set1_epi32(Pair(k0 + 2 * c));
      a00 = _mm512_dpbf16_ps(a00, q0, b0);
      a01 = _mm512_dpbf16_ps(a01, q1, b0);
      const __m512bh b1 = (__m512bh)_mm512_set1_epi32(Pair(k1 + 2 * c));
      a10 = _mm512_dpbf16_ps(a10, q0, b1);
      a11 = _mm512_dpbf16_ps(a11, q1, b1);
      const __m512bh b2 = (__m512bh)_mm512_set1_epi32(Pair(k2 + 2 * c));
      a20 = _mm512_dpbf16_ps(a20, q0, b2);
      a21 = _mm512_dpbf16_ps(a21, q1, b2);
      const __m512bh b3 = (__m512bh)_mm512_set1_epi32(Pair(k3 + 2 * c));
      a30 = _mm512_dpbf16_ps(a30, q0, b3);
      a31 = _mm512_dpbf16_ps(a31, q1, b3);
    }
    float* out = s + j * 32;
    _mm512_storeu_ps(out, a00);
    _mm512_storeu_ps(out + 16, a01);
    _mm512_storeu_ps(out + 32, a10);
    _mm512_storeu_ps(out + 48, a11);
    _mm512_storeu_ps(out + 64, a20);
    _mm512_storeu_ps(out + 80, a21);
    _mm512_storeu_ps(out + 96, a30);
    _mm512_storeu_ps(out + 112, a31);
  }
  for (; j < n_keys; ++j) {
    const uint16_t* kj = k + j * k_stride;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int64_t c = 0; c < d2; ++c) {
      const __m512bh b = (__m512bh)_mm512_set1_epi32(Pair(kj + 2 * c));
      a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(q_pairs + c * 32), b);
      a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(q_pairs + c * 32 + 16), b);
    }
    _mm512_storeu_ps(s + j * 32, a0);
    _mm512_storeu_ps(s + j * 32 + 16, a1);
  }
}

namespace {

// Probabilities of keys 2i, 2i + 1 for 16 lanes as bf16 pairs (RNE).
__attribute__((target("avx512f,avx512bf16"))) inline __m512i PairOfRows(const float* r0,
                                                                        const float* r1) {
  const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(r0)));
  const __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(r1)));
  return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}

}  // namespace

// 4 channels x 2 lane vectors = 8 accumulators; per key pair, 4 broadcasts of
// v and 8 vdpbf16ps.
__attribute__((target("avx512f,avx512bf16"))) void PVQLanesBf16Dot(const float* p, int64_t n_keys,
                                                                   const uint32_t* v_pairs,
                                                                   int64_t dv, float* o_t) {
  constexpr int64_t kMaxPairs = 32;
  alignas(64) uint32_t pairs[kMaxPairs][32];  // the p rows as bf16 pairs of keys
  alignas(64) static const float kZeros[16] = {};
  const int64_t n_pairs = (n_keys + 1) / 2;
  for (int64_t i = 0; i < n_pairs; ++i) {
    const float* r0 = p + 2 * i * 32;
    const float* r1 = 2 * i + 1 < n_keys ? r0 + 32 : nullptr;
    _mm512_store_si512(pairs[i], PairOfRows(r0, r1 ? r1 : kZeros));
    _mm512_store_si512(pairs[i] + 16, PairOfRows(r0 + 16, r1 ? r1 + 16 : kZeros));
  }
  int64_t e = 0;
  for (; e + 4 <= dv; e += 4) {
    const uint32_t* v0 = v_pairs + e * n_pairs;
    const uint32_t *v1 = v0 + n_pairs, *v2 = v1 + n_pairs, *v3 = v2 + n_pairs;
    __m512 a00 = _mm512_setzero_ps(), a01 = _mm512_setzero_ps();
    __m512 a10 = _mm512_setzero_ps(), a11 = _mm512_setzero_ps();
    __m512 a20 = _mm512_setzero_ps(), a21 = _mm512_setzero_ps();
    __m512 a30 = _mm512_setzero_ps(), a31 = _mm512_setzero_ps();
    for (int64_t i = 0; i < n_pairs; ++i) {
      const __m512bh p0 = (__m512bh)_mm512_load_si512(pairs[i]);
      const __m512bh p1 = (__m512bh)_mm512_load_si512(pairs[i] + 16);
      const __m512bh b0 = (__m512bh)_mm512_set1_epi32(int32_t(v0[i]));
      a00 = _mm512_dpbf16_ps(a00, p0, b0);
      a01 = _mm512_dpbf16_ps(a01, p1, b0);
      const __m512bh b1 = (__m512bh)_mm512_set1_epi32(int32_t(v1[i]));
      a10 = _mm512_dpbf16_ps(a10, p0, b1);
      a11 = _mm512_dpbf16_ps(a11, p1, b1);
      const __m512bh b2 = (__m512bh)_mm512_set1_epi32(int32_t(v2[i]));
      a20 = _mm512_dpbf16_ps(a20, p0, b2);
      a21 = _mm512_dpbf16_ps(a21, p1, b2);
      const __m512bh b3 = (__m512bh)_mm512_set1_epi32(int32_t(v3[i]));
      a30 = _mm512_dpbf16_ps(a30, p0, b3);
      a31 = _mm512_dpbf16_ps(a31, p1, b3);
    }
    float* o = o_t + e * 32;
    const __m512 acc[8] = {a00, a01, a10, a11, a20, a21, a30, a31};
    for (int k = 0; k < 8; ++k) {
      _mm512_storeu_ps(o + 16 * k, _mm512_add_ps(_mm512_loadu_ps(o + 16 * k), acc[k]));
    }
  }
  for (; e < dv; ++e) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int64_t i = 0; i < n_pairs; ++i) {
      const __m512bh b = (__m512bh)_mm512_set1_epi32(int32_t(v_pairs[e * n_pairs + i]));
      a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_load_si512(pairs[i]), b);
      a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_load_si512(pairs[i] + 16), b);
    }
    float* o = o_t + e * 32;
    _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), a0));
    _mm512_storeu_ps(o + 16, _mm512_add_ps(_mm512_loadu_ps(o + 16), a1));
  }
}

}  // namespace relattn::x86
