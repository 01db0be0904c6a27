#include "ports/x86/madd_scores.h"

#if !defined(__x86_64__)
#error "ports/x86 is x86-64 code: CMakeLists.txt builds it only for x86-64"
#endif

#include <immintrin.h>

#include <atomic>
#include <cstring>

namespace relattn::x86 {
namespace {

std::atomic<bool> g_enabled{true};

// Channels e and e + 1 of an int16 row as the 32-bit value vpmaddwd pairs.
inline int32_t Pair(const int16_t* p) {
  int32_t x;
  std::memcpy(&x, p, sizeof(x));
  return x;
}

__attribute__((target("avx2"))) inline __m256i MulAdd(__m256i acc, __m256i a, __m256i b) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
}

}  // namespace

bool MaddUsable() {
  static const bool cpu = __builtin_cpu_supports("avx2");
  return cpu && g_enabled.load(std::memory_order_relaxed);
}

void SetMaddEnabled(bool enabled) { g_enabled.store(enabled, std::memory_order_relaxed); }

// 4 keys x 2 query vectors = 8 accumulators; per pair of channels, 2 loads of
// q, 4 broadcasts of k and 8 vpmaddwd + 8 vpaddd (256 multiply-adds).
__attribute__((target("avx2"))) void ScoresQLanesI16Madd(const int16_t* q, int64_t d4,
                                                         const int16_t* k, int64_t n_keys,
                                                         int32_t* s) {
  const int64_t steps = d4 / 2;
  int64_t j = 0;
  for (; j + 4 <= n_keys; j += 4) {
    const int16_t* k0 = k + j * d4;
    const int16_t *k1 = k0 + d4, *k2 = k1 + d4, *k3 = k2 + d4;
    __m256i a00 = _mm256_setzero_si256(), a01 = _mm256_setzero_si256();
    __m256i a10 = _mm256_setzero_si256(), a11 = _mm256_setzero_si256();
    __m256i a20 = _mm256_setzero_si256(), a21 = _mm256_setzero_si256();
    __m256i a30 = _mm256_setzero_si256(), a31 = _mm256_setzero_si256();
    for (int64_t c = 0; c < steps; ++c) {
      const __m256i q0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(q + c * 32));
      const __m256i q1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(q + c * 32 + 16));
      const __m256i b0 = _mm256_set1_epi32(Pair(k0 + 2 * c));
      a00 = MulAdd(a00, q0, b0);
      a01 = MulAdd(a01, q1, b0);
      const __m256i b1 = _mm256_set1_epi32(Pair(k1 + 2 * c));
      a10 = MulAdd(a10, q0, b1);
      a11 = MulAdd(a11, q1, b1);
      const __m256i b2 = _mm256_set1_epi32(Pair(k2 + 2 * c));
      a20 = MulAdd(a20, q0, b2);
      a21 = MulAdd(a21, q1, b2);
      const __m256i b3 = _mm256_set1_epi32(Pair(k3 + 2 * c));
      a30 = MulAdd(a30, q0, b3);
      a31 = MulAdd(a31, q1, b3);
    }
    __m256i* out = reinterpret_cast<__m256i*>(s + j * 16);
    _mm256_store_si256(out, a00);
    _mm256_store_si256(out + 1, a01);
    _mm256_store_si256(out + 2, a10);
    _mm256_store_si256(out + 3, a11);
    _mm256_store_si256(out + 4, a20);
    _mm256_store_si256(out + 5, a21);
    _mm256_store_si256(out + 6, a30);
    _mm256_store_si256(out + 7, a31);
  }
  for (; j < n_keys; ++j) {
    const int16_t* kj = k + j * d4;
    __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
    for (int64_t c = 0; c < steps; ++c) {
      const __m256i b = _mm256_set1_epi32(Pair(kj + 2 * c));
      a0 = MulAdd(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(q + c * 32)), b);
      a1 = MulAdd(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(q + c * 32 + 16)), b);
    }
    __m256i* out = reinterpret_cast<__m256i*>(s + j * 16);
    _mm256_store_si256(out, a0);
    _mm256_store_si256(out + 1, a1);
  }
}

// Per pair of channels and group: the 16 keys' bytes of each channel
// sign-extended to int16 and interleaved in-lane, so `lo` holds keys 0-3 and
// 8-11, `hi` keys 4-7 and 12-15, as (channel e, e + 1) pairs; one vpmaddwd
// per row and half. The halves are put back in key order at the store.
__attribute__((target("avx2"))) void ScoresKLanesI8Madd(const int16_t* q, int64_t n_rows,
                                                        const int8_t* keys, int32_t d,
                                                        int64_t n_keys, int32_t* s,
                                                        int64_t s_stride) {
  const int64_t d4 = (d + 3) / 4 * 4, groups = (n_keys + 15) / 16;
  for (int64_t g = 0; g < groups; ++g) {
    const int8_t* group = keys + g * int64_t{d} * 16;
    for (int64_t r = 0; r < n_rows; r += 4) {
      const int16_t* q0 = q + r * d4;
      const int16_t *q1 = q0 + d4, *q2 = q1 + d4, *q3 = q2 + d4;
      __m256i lo0 = _mm256_setzero_si256(), hi0 = _mm256_setzero_si256();
      __m256i lo1 = _mm256_setzero_si256(), hi1 = _mm256_setzero_si256();
      __m256i lo2 = _mm256_setzero_si256(), hi2 = _mm256_setzero_si256();
      __m256i lo3 = _mm256_setzero_si256(), hi3 = _mm256_setzero_si256();
      for (int64_t e = 0; e < d; e += 2) {
        const int8_t* channel = group + e * 16;
        // The same bytes of the next block of keys (64 on): streamed from
        // DRAM in decode, so prefetched into L2 one block ahead.
        if (r == 0 && e % 4 == 0) __builtin_prefetch(channel + 64 * int64_t{d}, 0, 1);
        const __m256i c0 =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(channel)));
        const __m256i c1 = e + 1 < d ? _mm256_cvtepi8_epi16(_mm_loadu_si128(
                                           reinterpret_cast<const __m128i*>(channel + 16)))
                                     : _mm256_setzero_si256();
        const __m256i lo = _mm256_unpacklo_epi16(c0, c1), hi = _mm256_unpackhi_epi16(c0, c1);
        const __m256i b0 = _mm256_set1_epi32(Pair(q0 + e));
        lo0 = MulAdd(lo0, lo, b0);
        hi0 = MulAdd(hi0, hi, b0);
        const __m256i b1 = _mm256_set1_epi32(Pair(q1 + e));
        lo1 = MulAdd(lo1, lo, b1);
        hi1 = MulAdd(hi1, hi, b1);
        const __m256i b2 = _mm256_set1_epi32(Pair(q2 + e));
        lo2 = MulAdd(lo2, lo, b2);
        hi2 = MulAdd(hi2, hi, b2);
        const __m256i b3 = _mm256_set1_epi32(Pair(q3 + e));
        lo3 = MulAdd(lo3, lo, b3);
        hi3 = MulAdd(hi3, hi, b3);
      }
      int32_t* out = s + r * s_stride + g * 16;
      const __m256i lo[4] = {lo0, lo1, lo2, lo3}, hi[4] = {hi0, hi1, hi2, hi3};
      for (int64_t i = 0; i < 4 && r + i < n_rows; ++i) {
        __m256i* row = reinterpret_cast<__m256i*>(out + i * s_stride);
        _mm256_storeu_si256(row, _mm256_permute2x128_si256(lo[i], hi[i], 0x20));
        _mm256_storeu_si256(row + 1, _mm256_permute2x128_si256(lo[i], hi[i], 0x31));
      }
    }
  }
}

}  // namespace relattn::x86
