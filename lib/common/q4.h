// RELATTN_Q4: ggml's q4_0 blocks. A row of dim values (dim a multiple of
// kQ4BlockValues) is dim / 32 blocks of kQ4BlockBytes: an f16 scale d, then
// 16 bytes whose byte i holds value i in its low nibble and value i + 16 in
// its high one; value = (nibble - 8) * d. Quantisation as ggml's
// quantize_row_q4_0_ref: d = m / -8 where m is the block's value of largest
// |x| (its sign kept), nibble = min(15, int(x / d + 8.5)) (x * (1 / d) in
// f32), all nibbles 8 for an all-zero block.
#ifndef RELATTN_LIB_COMMON_Q4_H_
#define RELATTN_LIB_COMMON_Q4_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "lib/common/f16.h"

namespace relattn {

inline constexpr int64_t kQ4BlockValues = 32;
inline constexpr int64_t kQ4BlockBytes = 2 + kQ4BlockValues / 2;

// Bytes of a Q4 row of dim values (dim a multiple of kQ4BlockValues).
// |x| from which a block's f16 scale d = max / -8 rounds to infinity (f16's
// largest finite value is 65504; 65520 and above round to inf): a KV cache
// treats such a row as non-finite.
inline constexpr float kQ4MaxAbs = 8.0f * 65520.0f;
inline constexpr int64_t Q4RowBytes(int64_t dim) { return dim / kQ4BlockValues * kQ4BlockBytes; }

// The scale of the block at `block` (kQ4BlockBytes, any alignment) as f32.
inline float Q4BlockScale(const uint8_t* block) {
  uint16_t bits;
  std::memcpy(&bits, block, sizeof(bits));
  return F16ToF32(bits);
}

// Quantises the finite row x[0, dim) into its Q4 blocks at dst; returns the
// largest |value| the blocks hold (8 |d| over the blocks).
inline float QuantizeRowQ4(const float* x, int64_t dim, uint8_t* dst) {
  float max_abs = 0.0f;
  for (int64_t b = 0; b < dim / kQ4BlockValues; ++b, x += kQ4BlockValues, dst += kQ4BlockBytes) {
    float m = 0.0f;
    for (int64_t e = 0; e < kQ4BlockValues; ++e) {
      if (std::fabs(x[e]) > std::fabs(m)) m = x[e];
    }
    const float d = m / -8.0f;
    const float inv = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t d_bits = F32ToF16(d);
    std::memcpy(dst, &d_bits, sizeof(d_bits));
    for (int64_t i = 0; i < kQ4BlockValues / 2; ++i) {
      const float lo = x[i] * inv + 8.5f, hi = x[i + kQ4BlockValues / 2] * inv + 8.5f;
      const int n_lo = std::min(15, static_cast<int>(lo)),
                n_hi = std::min(15, static_cast<int>(hi));
      dst[2 + i] = static_cast<uint8_t>(n_lo | (n_hi << 4));
    }
    max_abs = std::max(max_abs, 8.0f * std::fabs(F16ToF32(d_bits)));
  }
  return max_abs;
}

}  // namespace relattn

#endif  // RELATTN_LIB_COMMON_Q4_H_
