// Scalar bfloat16 <-> binary32 conversion (bf16: the top 16 bits of an f32).
#ifndef RELATTN_LIB_COMMON_BF16_H_
#define RELATTN_LIB_COMMON_BF16_H_

#include <cstdint>
#include <cstring>

namespace relattn {

// Exact: every bf16 value is the f32 of its bits followed by 16 zeros.
inline float BF16ToF32(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

// Rounds to nearest, ties to even (beyond the largest finite bf16: inf); a
// NaN gives a quiet NaN of the same sign and top payload.
inline uint16_t F32ToBF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

}  // namespace relattn

#endif  // RELATTN_LIB_COMMON_BF16_H_
