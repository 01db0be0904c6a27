// See limits_dot.h.
#include "bench/limits_dot.h"

#if defined(__x86_64__) && defined(__GNUC__)
// gcc 12 flags _mm512_undefined_epi32() inside its own intrinsics headers.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define RELATTN_BENCH_X86_DOT 1
#else
#define RELATTN_BENCH_X86_DOT 0
#endif

namespace relattn_bench {

#if RELATTN_BENCH_X86_DOT

bool Bf16DotUsable() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
}

bool Int8DotUsable() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni");
}

// The chains: acc_i = dot(acc_i, a, b) with a, b fixed, so each instruction
// waits only on its own chain's previous one.
__attribute__((target("avx512f,avx512bf16"))) float Bf16DotChains(int64_t iterations) {
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80);  // bf16 1.0
  const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3380);  // bf16 2^-24: sums stay finite
  __m512 acc[kDotChains];
  for (int c = 0; c < kDotChains; ++c) acc[c] = _mm512_set1_ps(float(c));
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < kDotChains; ++c) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
  }
  __m512 sum = acc[0];
  for (int c = 1; c < kDotChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  return _mm512_reduce_add_ps(sum);
}

__attribute__((target("avx512f,avx512vnni"))) float Int8DotChains(int64_t iterations) {
  const __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(1);
  __m512i acc[kDotChains];
  for (int c = 0; c < kDotChains; ++c) acc[c] = _mm512_set1_epi32(c);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < kDotChains; ++c) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
  }
  __m512i sum = acc[0];
  for (int c = 1; c < kDotChains; ++c) sum = _mm512_add_epi32(sum, acc[c]);
  return float(_mm512_reduce_add_epi32(sum));
}

#else

bool Bf16DotUsable() { return false; }
bool Int8DotUsable() { return false; }
float Bf16DotChains(int64_t) { return 0.0f; }
float Int8DotChains(int64_t) { return 0.0f; }

#endif

}  // namespace relattn_bench
