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
  static const bool cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512bf16");
  return cpu && g_enabled.load(std::memory_order_relaxed);
}

void SetBf16DotEnabled(bool enabled) { g_enabled.store(enabled, std::memory_order_relaxed); }

namespace {

// kKeys keys x 2 query vectors of accumulators (16 at kKeys = 8: enough
// independent chains to cover vdpbf16ps' latency at 2 per cycle); per channel
// pair, 2 loads of q, kKeys broadcasts of k.
template <int kKeys>
__attribute__((target("avx512f,avx512bf16"), always_inline)) inline void ScoresKeys(
    const uint32_t* q_pairs, int64_t d2, const uint16_t* k, int64_t k_stride, __m512 scale,
    float* s) {
  __m512 acc[kKeys][2];
#pragma GCC unroll 8
  for (int r = 0; r < kKeys; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t c = 0; c < d2; ++c) {
    const __m512bh q0 = (__m512bh)_mm512_loadu_si512(q_pairs + c * 32);
    const __m512bh q1 = (__m512bh)_mm512_loadu_si512(q_pairs + c * 32 + 16);
#pragma GCC unroll 8
    for (int r = 0; r < kKeys; ++r) {
      const __m512bh b = (__m512bh)_mm512_set1_epi32(Pair(k + r * k_stride + 2 * c));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], q0, b);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], q1, b);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kKeys; ++r) {
    _mm512_storeu_ps(s + r * 32, _mm512_mul_ps(acc[r][0], scale));
    _mm512_storeu_ps(s + r * 32 + 16, _mm512_mul_ps(acc[r][1], scale));
  }
}

}  // namespace

__attribute__((target("avx512f,avx512bf16"))) void ScoresQLanesBf16Dot(
    const uint32_t* q_pairs, int64_t d2, const uint16_t* k, int64_t k_stride, int64_t n_keys,
    float scale, float* s) {
  const __m512 m = _mm512_set1_ps(scale);
  int64_t j = 0;
  for (; j + 8 <= n_keys; j += 8) {
    ScoresKeys<8>(q_pairs, d2, k + j * k_stride, k_stride, m, s + j * 32);
  }
  for (; j + 4 <= n_keys; j += 4) {
    ScoresKeys<4>(q_pairs, d2, k + j * k_stride, k_stride, m, s + j * 32);
  }
  for (; j < n_keys; ++j) ScoresKeys<1>(q_pairs, d2, k + j * k_stride, k_stride, m, s + j * 32);
}

namespace {

// Probabilities of keys 2i, 2i + 1 for 16 lanes as bf16 pairs (RNE).
__attribute__((target("avx512f,avx512bf16"))) inline __m512i PairOfRows(const float* r0,
                                                                        const float* r1) {
  const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(r0)));
  const __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(r1)));
  return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}

// kChannels channels x 2 lane vectors of accumulators; per key pair, 2 loads
// of p pairs, kChannels broadcasts of v. pairs: [n_pairs][32]; v_pairs:
// [n_pairs][dv], this call's channels from v_pairs[i * dv].
template <int kChannels>
__attribute__((target("avx512f,avx512bf16"), always_inline)) inline void PVChannels(
    const uint32_t (*pairs)[32], int64_t n_pairs, const uint32_t* v_pairs, int64_t dv, float* o_t) {
  __m512 acc[kChannels][2];
#pragma GCC unroll 8
  for (int r = 0; r < kChannels; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t i = 0; i < n_pairs; ++i) {
    const __m512bh p0 = (__m512bh)_mm512_load_si512(pairs[i]);
    const __m512bh p1 = (__m512bh)_mm512_load_si512(pairs[i] + 16);
#pragma GCC unroll 8
    for (int r = 0; r < kChannels; ++r) {
      const __m512bh b = (__m512bh)_mm512_set1_epi32(int32_t(v_pairs[i * dv + r]));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], p0, b);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], p1, b);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kChannels; ++r) {
    float* o = o_t + r * 32;
    _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), acc[r][0]));
    _mm512_storeu_ps(o + 16, _mm512_add_ps(_mm512_loadu_ps(o + 16), acc[r][1]));
  }
}

}  // namespace

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
  for (; e + 8 <= dv; e += 8) PVChannels<8>(pairs, n_pairs, v_pairs + e, dv, o_t + e * 32);
  for (; e + 4 <= dv; e += 4) PVChannels<4>(pairs, n_pairs, v_pairs + e, dv, o_t + e * 32);
  for (; e < dv; ++e) PVChannels<1>(pairs, n_pairs, v_pairs + e, dv, o_t + e * 32);
}

namespace {

// The channels of a row that `mask` selects (of 16) as bf16 bits in the low
// halves of 32-bit lanes (zero elsewhere: a zero f16 is a zero bf16).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"), always_inline)) inline __m512i
Bf16Lanes(const uint16_t* row, __mmask16 mask, bool from_f16) {
  const __m256i bits = _mm256_maskz_loadu_epi16(mask, row);
  if (!from_f16) return _mm512_cvtepu16_epi32(bits);
  return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_cvtph_ps(bits)));
}

}  // namespace

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void F16RowToBF16(
    const uint16_t* src, int64_t n, uint16_t* dst) {
  int64_t e = 0;
  for (; e + 32 <= n; e += 32) {
    const __m512 lo =
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + e)));
    const __m512 hi =
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + e + 16)));
    _mm512_storeu_si512(dst + e, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
  }
  if (e < n) {  // the tail through a masked load and store
    const __mmask16 lo_mask = static_cast<__mmask16>((n - e >= 16) ? 0xffff : (1u << (n - e)) - 1);
    const __mmask16 hi_mask = static_cast<__mmask16>(n - e > 16 ? (1u << (n - e - 16)) - 1 : 0);
    const __m512 lo = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lo_mask, src + e));
    const __m512 hi = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(hi_mask, src + e + 16));
    const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
    _mm512_mask_storeu_epi16(dst + e, (__mmask32(hi_mask) << 16) | lo_mask, both);
  }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void PackValuePairsBf16(
    const uint16_t* v, int64_t v_stride, int64_t n_keys, int64_t dv, bool from_f16,
    uint32_t* v_pairs) {
  for (int64_t j = 0; j < n_keys; j += 2) {
    const uint16_t* r0 = v + j * v_stride;
    const uint16_t* r1 = j + 1 < n_keys ? r0 + v_stride : nullptr;
    uint32_t* out = v_pairs + (j / 2) * dv;
    for (int64_t e = 0; e < dv; e += 16) {  // the last 16 channels or fewer masked
      const __mmask16 m = dv - e >= 16 ? __mmask16(0xffff) : __mmask16((1u << (dv - e)) - 1);
      const __m512i lo = Bf16Lanes(r0 + e, m, from_f16);
      const __m512i hi =
          r1 ? _mm512_slli_epi32(Bf16Lanes(r1 + e, m, from_f16), 16) : _mm512_setzero_si512();
      _mm512_mask_storeu_epi32(out + e, m, _mm512_or_si512(lo, hi));
    }
  }
}

}  // namespace relattn::x86
