#include "ports/x86/vnni_scores.h"

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
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void VnniSubTileScores(
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

}  // namespace relattn::x86
