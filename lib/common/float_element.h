// One element of an F32, F16 or BF16 array as f32, and back (scalar: for
// argument checks, the cache's append and attach, the merge).
#ifndef RELATTN_LIB_COMMON_FLOAT_ELEMENT_H_
#define RELATTN_LIB_COMMON_FLOAT_ELEMENT_H_

#include <cstdint>

#include "lib/common/bf16.h"
#include "lib/common/f16.h"
#include "relattn/relattn.h"

namespace relattn {

// Element i of data (dtype F32, F16 or BF16) as f32 (exact).
inline float FloatElement(const void* data, relattn_dtype dtype, int64_t i) {
  if (dtype == RELATTN_F16) return F16ToF32(static_cast<const uint16_t*>(data)[i]);
  if (dtype == RELATTN_BF16) return BF16ToF32(static_cast<const uint16_t*>(data)[i]);
  return static_cast<const float*>(data)[i];
}

// Stores x as element i of data (F32, or F16 / BF16 rounded to nearest even).
inline void StoreFloatElement(float x, void* data, relattn_dtype dtype, int64_t i) {
  if (dtype == RELATTN_F16) {
    static_cast<uint16_t*>(data)[i] = F32ToF16(x);
  } else if (dtype == RELATTN_BF16) {
    static_cast<uint16_t*>(data)[i] = F32ToBF16(x);
  } else {
    static_cast<float*>(data)[i] = x;
  }
}

// x rounded as dtype stores it (F16, BF16; others: x).
inline float RoundedAs(float x, relattn_dtype dtype) {
  if (dtype == RELATTN_F16) return F16ToF32(F32ToF16(x));
  if (dtype == RELATTN_BF16) return BF16ToF32(F32ToBF16(x));
  return x;
}

}  // namespace relattn

#endif  // RELATTN_LIB_COMMON_FLOAT_ELEMENT_H_
