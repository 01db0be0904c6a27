// Writes a row of the output, in the output's dtype.
#ifndef RELATTN_LIB_COMMON_STORE_ROW_H_
#define RELATTN_LIB_COMMON_STORE_ROW_H_

#include <cstdint>

#include "lib/common/bf16.h"
#include "lib/common/f16.h"
#include "relattn/relattn.h"

namespace relattn {

// Writes mul * src[0, n) to element `offset` of data as F32, F16 or BF16
// (both rounded to nearest even). F16 is
// rounded to nearest even (F32ToF16) on every target: Highway 1.0.3 emulates
// DemoteTo(f16) by truncation below AVX2, and one row per query and head is
// not worth a vector path.
inline void StoreRow(const float* src, int64_t n, float mul, void* data, relattn_dtype dtype,
                     int64_t offset) {
  if (dtype == RELATTN_F16) {
    uint16_t* bits = static_cast<uint16_t*>(data) + offset;
    for (int64_t e = 0; e < n; ++e) bits[e] = F32ToF16(mul * src[e]);
    return;
  }
  if (dtype == RELATTN_BF16) {
    uint16_t* bits = static_cast<uint16_t*>(data) + offset;
    for (int64_t e = 0; e < n; ++e) bits[e] = F32ToBF16(mul * src[e]);
    return;
  }
  float* dst = static_cast<float*>(data) + offset;
  for (int64_t e = 0; e < n; ++e) dst[e] = mul * src[e];
}

}  // namespace relattn

#endif  // RELATTN_LIB_COMMON_STORE_ROW_H_
