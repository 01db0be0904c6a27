#include "ports/arm/sdot_scores.h"

#if !defined(__aarch64__)
#error "ports/arm is aarch64 code: CMakeLists.txt builds it only for aarch64"
#endif

#include <arm_neon.h>
#include <sys/auxv.h>

#include <atomic>
#include <cstring>

#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif

namespace relattn::arm {
namespace {

std::atomic<bool> g_enabled{true};

// 4 bytes of q + 128 as the signed quad SDOT broadcasts (q itself).
inline int32_t SignedQuad(const uint8_t* p) {
  uint32_t x;
  std::memcpy(&x, p, sizeof(x));
  return static_cast<int32_t>(x ^ 0x80808080u);
}

inline int32_t Quad(const int8_t* p) {
  int32_t x;
  std::memcpy(&x, p, sizeof(x));
  return x;
}

}  // namespace

bool SdotUsable() {
  static const bool cpu = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
  return cpu && g_enabled.load(std::memory_order_relaxed);
}

void SetSdotEnabled(bool enabled) { g_enabled.store(enabled, std::memory_order_relaxed); }

// 4 keys x 2 query vectors = 8 accumulators; per quad of channels, 2 loads of
// q, 4 broadcasts of k and 8 SDOTs.
__attribute__((target("arch=armv8.2-a+dotprod"))) void ScoresQLanesI8Sdot(
    const uint8_t* q_u8, int64_t d4, const int8_t* k, int64_t n_keys, int32_t* s) {
  const int64_t steps = d4 / 4;
  const uint8x16_t flip = vdupq_n_u8(0x80);
  int64_t j = 0;
  for (; j + 4 <= n_keys; j += 4) {
    const int8_t* k0 = k + j * d4;
    const int8_t *k1 = k0 + d4, *k2 = k1 + d4, *k3 = k2 + d4;
    int32x4_t a00 = vdupq_n_s32(0), a01 = vdupq_n_s32(0), a10 = vdupq_n_s32(0);
    int32x4_t a11 = vdupq_n_s32(0), a20 = vdupq_n_s32(0), a21 = vdupq_n_s32(0);
    int32x4_t a30 = vdupq_n_s32(0), a31 = vdupq_n_s32(0);
    for (int64_t c = 0; c < steps; ++c) {
      const int8x16_t q0 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(q_u8 + c * 32), flip));
      const int8x16_t q1 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(q_u8 + c * 32 + 16), flip));
      const int8x16_t b0 = vreinterpretq_s8_s32(vdupq_n_s32(Quad(k0 + 4 * c)));
      a00 = vdotq_s32(a00, q0, b0);
      a01 = vdotq_s32(a01, q1, b0);
      const int8x16_t b1 = vreinterpretq_s8_s32(vdupq_n_s32(Quad(k1 + 4 * c)));
      a10 = vdotq_s32(a10, q0, b1);
      a11 = vdotq_s32(a11, q1, b1);
      const int8x16_t b2 = vreinterpretq_s8_s32(vdupq_n_s32(Quad(k2 + 4 * c)));
      a20 = vdotq_s32(a20, q0, b2);
      a21 = vdotq_s32(a21, q1, b2);
      const int8x16_t b3 = vreinterpretq_s8_s32(vdupq_n_s32(Quad(k3 + 4 * c)));
      a30 = vdotq_s32(a30, q0, b3);
      a31 = vdotq_s32(a31, q1, b3);
    }
    int32_t* out = s + j * 8;
    vst1q_s32(out, a00);
    vst1q_s32(out + 4, a01);
    vst1q_s32(out + 8, a10);
    vst1q_s32(out + 12, a11);
    vst1q_s32(out + 16, a20);
    vst1q_s32(out + 20, a21);
    vst1q_s32(out + 24, a30);
    vst1q_s32(out + 28, a31);
  }
  for (; j < n_keys; ++j) {
    const int8_t* kj = k + j * d4;
    int32x4_t a0 = vdupq_n_s32(0), a1 = vdupq_n_s32(0);
    for (int64_t c = 0; c < steps; ++c) {
      const int8x16_t b = vreinterpretq_s8_s32(vdupq_n_s32(Quad(kj + 4 * c)));
      a0 = vdotq_s32(a0, vreinterpretq_s8_u8(veorq_u8(vld1q_u8(q_u8 + c * 32), flip)), b);
      a1 = vdotq_s32(a1, vreinterpretq_s8_u8(veorq_u8(vld1q_u8(q_u8 + c * 32 + 16), flip)), b);
    }
    vst1q_s32(s + j * 8, a0);
    vst1q_s32(s + j * 8 + 4, a1);
  }
}

// Per group and quad of channels: 4 rows of 16 keys (zero past d) zipped into
// 4 vectors of 4 keys x 4 channels, then 4 SDOTs per query row.
__attribute__((target("arch=armv8.2-a+dotprod"))) void ScoresKLanesI8Sdot(
    const uint8_t* q_u8, int64_t n_rows, const int8_t* keys, int32_t d, int64_t n_keys, int32_t* s,
    int64_t s_stride) {
  const int64_t d4 = (d + 3) / 4 * 4, quads = d4 / 4, groups = (n_keys + 15) / 16;
  const int8x16_t zero = vdupq_n_s8(0);
  for (int64_t g = 0; g < groups; ++g) {
    const int8_t* group = keys + g * int64_t{d} * 16;
    for (int64_t r = 0; r < n_rows; r += 2) {
      const uint8_t* q0 = q_u8 + r * d4;
      const uint8_t* q1 = q0 + d4;
      int32x4_t a00 = vdupq_n_s32(0), a01 = vdupq_n_s32(0), a02 = vdupq_n_s32(0);
      int32x4_t a03 = vdupq_n_s32(0), a10 = vdupq_n_s32(0), a11 = vdupq_n_s32(0);
      int32x4_t a12 = vdupq_n_s32(0), a13 = vdupq_n_s32(0);
      for (int64_t c = 0; c < quads; ++c) {
        const int64_t e = 4 * c;
        if (r == 0) __builtin_prefetch(group + e * 16 + 64 * int64_t{d}, 0, 1);  // next block
        const int8x16_t r0 = vld1q_s8(group + e * 16);
        const int8x16_t r1 = e + 1 < d ? vld1q_s8(group + (e + 1) * 16) : zero;
        const int8x16_t r2 = e + 2 < d ? vld1q_s8(group + (e + 2) * 16) : zero;
        const int8x16_t r3 = e + 3 < d ? vld1q_s8(group + (e + 3) * 16) : zero;
        const int16x8_t p01_lo = vreinterpretq_s16_s8(vzip1q_s8(r0, r1));
        const int16x8_t p01_hi = vreinterpretq_s16_s8(vzip2q_s8(r0, r1));
        const int16x8_t p23_lo = vreinterpretq_s16_s8(vzip1q_s8(r2, r3));
        const int16x8_t p23_hi = vreinterpretq_s16_s8(vzip2q_s8(r2, r3));
        const int8x16_t k0 = vreinterpretq_s8_s16(vzip1q_s16(p01_lo, p23_lo));  // keys 0..3
        const int8x16_t k1 = vreinterpretq_s8_s16(vzip2q_s16(p01_lo, p23_lo));  // keys 4..7
        const int8x16_t k2 = vreinterpretq_s8_s16(vzip1q_s16(p01_hi, p23_hi));  // keys 8..11
        const int8x16_t k3 = vreinterpretq_s8_s16(vzip2q_s16(p01_hi, p23_hi));  // keys 12..15
        const int8x16_t b0 = vreinterpretq_s8_s32(vdupq_n_s32(SignedQuad(q0 + e)));
        const int8x16_t b1 = vreinterpretq_s8_s32(vdupq_n_s32(SignedQuad(q1 + e)));
        a00 = vdotq_s32(a00, k0, b0);
        a01 = vdotq_s32(a01, k1, b0);
        a02 = vdotq_s32(a02, k2, b0);
        a03 = vdotq_s32(a03, k3, b0);
        a10 = vdotq_s32(a10, k0, b1);
        a11 = vdotq_s32(a11, k1, b1);
        a12 = vdotq_s32(a12, k2, b1);
        a13 = vdotq_s32(a13, k3, b1);
      }
      int32_t* out = s + r * s_stride + g * 16;
      vst1q_s32(out, a00);
      vst1q_s32(out + 4, a01);
      vst1q_s32(out + 8, a02);
      vst1q_s32(out + 12, a03);
      if (r + 1 < n_rows) {
        vst1q_s32(out + s_stride, a10);
        vst1q_s32(out + s_stride + 4, a11);
        vst1q_s32(out + s_stride + 8, a12);
        vst1q_s32(out + s_stride + 12, a13);
      }
    }
  }
}

}  // namespace relattn::arm
