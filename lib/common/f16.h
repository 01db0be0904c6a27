// Scalar IEEE binary16 <-> binary32 conversion, portable (no F16C / NEON fp16 needed). For
// single values (table entries, tests); kernels convert in bulk with Highway.
#ifndef RELATTN_LIB_COMMON_F16_H_
#define RELATTN_LIB_COMMON_F16_H_

#include <cstdint>
#include <cstring>

namespace relattn {

// Exact: every binary16 value (subnormals, +-0, +-inf) is a binary32 value; a NaN stays a NaN
// with its sign and payload shifted into the top of the f32 fraction.
inline float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1f;
  const uint32_t fraction = h & 0x3ff;
  if (exponent == 0) {  // zero or subnormal: fraction * 2^-24, exact in f32
    const float magnitude = static_cast<float>(fraction) * (1.0f / 16777216.0f);
    return sign ? -magnitude : magnitude;
  }
  const uint32_t bits = exponent == 0x1f ? sign | 0x7f800000u | (fraction << 13)
                                         : sign | ((exponent + 112) << 23) | (fraction << 13);
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

// Rounds to nearest, ties to even, as IEEE conversion does: |f| >= 65520 gives inf, |f| <= 2^-25
// gives +-0, subnormal halves are rounded like the rest, NaN gives a quiet NaN of the same sign.
inline uint16_t F32ToF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const uint32_t magnitude = bits & 0x7fffffff;
  if (magnitude > 0x7f800000u) {  // NaN: quiet, top of the payload kept
    return static_cast<uint16_t>(sign | 0x7e00 | ((magnitude >> 13) & 0x3ff));
  }
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00);  // >= 65520: inf
  uint32_t value, shift;           // the half's bits are round(value / 2^shift), exponent included
  if (magnitude >= 0x38800000u) {  // >= 2^-14, a normal half: rebias the exponent 127 -> 15
    value = magnitude - (112u << 23);
    shift = 13;
  } else {  // a subnormal half, counted in units of 2^-24
    const uint32_t exponent = magnitude >> 23;
    if (exponent < 102) return sign;  // < 2^-25 rounds to zero
    value = (magnitude & 0x7fffff) | 0x800000;
    shift = 126 - exponent;  // 14..24
  }
  uint32_t half = value >> shift;  // a carry out of the fraction correctly bumps the exponent
  const uint32_t rest = value & ((1u << shift) - 1);
  const uint32_t tie = 1u << (shift - 1);
  if (rest > tie || (rest == tie && (half & 1))) ++half;
  return static_cast<uint16_t>(sign | half);
}

}  // namespace relattn

#endif  // RELATTN_LIB_COMMON_F16_H_
