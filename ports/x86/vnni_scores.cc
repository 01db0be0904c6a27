#include "ports/x86/vnni_scores.h"

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

// 4 int8 channels of a key row as the 32-bit value vpdpbusd broadcasts.
inline int32_t Quad(const int8_t* p) {
  int32_t x;
  std::memcpy(&x, p, sizeof(x));
  return x;
}

}  // namespace

bool VnniUsable() {
  static const bool cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vnni");
  return cpu && g_enabled.load(std::memory_order_relaxed);
}

void SetVnniEnabled(bool enabled) { g_enabled.store(enabled, std::memory_order_relaxed); }

// 4 keys x 2 query vectors = 8 accumulators; per step of 4 channels, 2 loads
// of q, 4 broadcasts of k and 8 vpdpbusd (512 multiply-adds).
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void ScoresQLanesI8Vnni(
    const uint8_t* q_u8, int64_t d4, const int8_t* k, const int32_t* k_sum, int64_t n_keys,
    int32_t* s) {
  const int64_t steps = d4 / 4;
  int64_t j = 0;
  for (; j + 4 <= n_keys; j += 4) {
    const int8_t* k0 = k + j * d4;
    const int8_t *k1 = k0 + d4, *k2 = k1 + d4, *k3 = k2 + d4;
    __m512i a00 = _mm512_setzero_si512(), a01 = _mm512_setzero_si512();
    __m512i a10 = _mm512_setzero_si512(), a11 = _mm512_setzero_si512();
    __m512i a20 = _mm512_setzero_si512(), a21 = _mm512_setzero_si512();
    __m512i a30 = _mm512_setzero_si512(), a31 = _mm512_setzero_si512();
    for (int64_t c = 0; c < steps; ++c) {
      const __m512i q0 = _mm512_load_si512(q_u8 + c * 128);
      const __m512i q1 = _mm512_load_si512(q_u8 + c * 128 + 64);
      const __m512i b0 = _mm512_set1_epi32(Quad(k0 + 4 * c));
      a00 = _mm512_dpbusd_epi32(a00, q0, b0);
      a01 = _mm512_dpbusd_epi32(a01, q1, b0);
      const __m512i b1 = _mm512_set1_epi32(Quad(k1 + 4 * c));
      a10 = _mm512_dpbusd_epi32(a10, q0, b1);
      a11 = _mm512_dpbusd_epi32(a11, q1, b1);
      const __m512i b2 = _mm512_set1_epi32(Quad(k2 + 4 * c));
      a20 = _mm512_dpbusd_epi32(a20, q0, b2);
      a21 = _mm512_dpbusd_epi32(a21, q1, b2);
      const __m512i b3 = _mm512_set1_epi32(Quad(k3 + 4 * c));
      a30 = _mm512_dpbusd_epi32(a30, q0, b3);
      a31 = _mm512_dpbusd_epi32(a31, q1, b3);
    }
    int32_t* out = s + j * 32;
    const __m512i o0 = _mm512_set1_epi32(128 * k_sum[j]),
                  o1 = _mm512_set1_epi32(128 * k_sum[j + 1]);
    const __m512i o2 = _mm512_set1_epi32(128 * k_sum[j + 2]);
    const __m512i o3 = _mm512_set1_epi32(128 * k_sum[j + 3]);
    _mm512_store_si512(out, _mm512_sub_epi32(a00, o0));
    _mm512_store_si512(out + 16, _mm512_sub_epi32(a01, o0));
    _mm512_store_si512(out + 32, _mm512_sub_epi32(a10, o1));
    _mm512_store_si512(out + 48, _mm512_sub_epi32(a11, o1));
    _mm512_store_si512(out + 64, _mm512_sub_epi32(a20, o2));
    _mm512_store_si512(out + 80, _mm512_sub_epi32(a21, o2));
    _mm512_store_si512(out + 96, _mm512_sub_epi32(a30, o3));
    _mm512_store_si512(out + 112, _mm512_sub_epi32(a31, o3));
  }
  for (; j < n_keys; ++j) {
    const int8_t* kj = k + j * d4;
    __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
    for (int64_t c = 0; c < steps; ++c) {
      const __m512i b = _mm512_set1_epi32(Quad(kj + 4 * c));
      a0 = _mm512_dpbusd_epi32(a0, _mm512_load_si512(q_u8 + c * 128), b);
      a1 = _mm512_dpbusd_epi32(a1, _mm512_load_si512(q_u8 + c * 128 + 64), b);
    }
    const __m512i o = _mm512_set1_epi32(128 * k_sum[j]);
    _mm512_store_si512(s + j * 32, _mm512_sub_epi32(a0, o));
    _mm512_store_si512(s + j * 32 + 16, _mm512_sub_epi32(a1, o));
  }
}

// Per quad of channels and group: one (masked) 64-byte load of 4 channels x
// 16 keys, a dword permute and an in-lane byte shuffle turn it into 16 keys
// x 4 channels, then one vpdpbusd per row and one for the keys' sums.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void ScoresKLanesI8Vnni(
    const uint8_t* q_u8, int64_t n_rows, const int8_t* keys, int32_t d, int64_t n_keys, int32_t* s,
    int64_t s_stride) {
  const int64_t d4 = (d + 3) / 4 * 4, quads = d4 / 4, groups = (n_keys + 15) / 16;
  // Lane L' gets dword L' of every channel lane: dword p of lane L' <- 4p + L'.
  const __m512i gather = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  // Within a lane, byte 4t + p <- byte 4p + t (a 4 x 4 byte transpose).
  const __m512i transpose =
      _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
  const __m512i ones = _mm512_set1_epi8(1);
  for (int64_t g = 0; g < groups; ++g) {
    const int8_t* group = keys + g * int64_t{d} * 16;
    for (int64_t r = 0; r < n_rows; r += 4) {
      const uint8_t* q0 = q_u8 + r * d4;
      const uint8_t *q1 = q0 + d4, *q2 = q1 + d4, *q3 = q2 + d4;
      __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
      __m512i a2 = _mm512_setzero_si512(), a3 = _mm512_setzero_si512();
      __m512i sum = _mm512_setzero_si512();
      for (int64_t c = 0; c < quads; ++c) {
        const int64_t valid = (d - 4 * c < 4 ? d - 4 * c : 4) * 16;  // bytes in this quad
        const __mmask64 mask = valid == 64 ? ~__mmask64{0} : (__mmask64{1} << valid) - 1;
        // The same bytes of the next block of keys (64 on): streamed from DRAM
        // in decode, so prefetched into L2 one block ahead.
        if (r == 0) __builtin_prefetch(group + c * 64 + 64 * int64_t{d}, 0, 1);
        const __m512i raw = _mm512_maskz_loadu_epi8(mask, group + c * 64);
        const __m512i k = _mm512_shuffle_epi8(_mm512_permutexvar_epi32(gather, raw), transpose);
        sum = _mm512_dpbusd_epi32(sum, ones, k);
        a0 = _mm512_dpbusd_epi32(
            a0, _mm512_set1_epi32(Quad(reinterpret_cast<const int8_t*>(q0 + 4 * c))), k);
        a1 = _mm512_dpbusd_epi32(
            a1, _mm512_set1_epi32(Quad(reinterpret_cast<const int8_t*>(q1 + 4 * c))), k);
        a2 = _mm512_dpbusd_epi32(
            a2, _mm512_set1_epi32(Quad(reinterpret_cast<const int8_t*>(q2 + 4 * c))), k);
        a3 = _mm512_dpbusd_epi32(
            a3, _mm512_set1_epi32(Quad(reinterpret_cast<const int8_t*>(q3 + 4 * c))), k);
      }
      const __m512i offset = _mm512_slli_epi32(sum, 7);  // 128 * sum_e k[e]
      int32_t* out = s + r * s_stride + g * 16;
      _mm512_storeu_si512(out, _mm512_sub_epi32(a0, offset));
      if (r + 1 < n_rows) _mm512_storeu_si512(out + s_stride, _mm512_sub_epi32(a1, offset));
      if (r + 2 < n_rows) _mm512_storeu_si512(out + 2 * s_stride, _mm512_sub_epi32(a2, offset));
      if (r + 3 < n_rows) _mm512_storeu_si512(out + 3 * s_stride, _mm512_sub_epi32(a3, offset));
    }
  }
}

}  // namespace relattn::x86
