// Sizes of the element types of the C API.
#ifndef RELATTN_LIB_COMMON_DTYPE_H_
#define RELATTN_LIB_COMMON_DTYPE_H_

#include <cstdint>

#include "relattn/relattn.h"

namespace relattn {

// Bytes of one element of `dtype` (validated: F32, F16 or I8).
inline constexpr int64_t DtypeBytes(relattn_dtype dtype) {
  return dtype == RELATTN_F16 ? 2 : dtype == RELATTN_I8 ? 1 : 4;
}

}  // namespace relattn

#endif  // RELATTN_LIB_COMMON_DTYPE_H_
