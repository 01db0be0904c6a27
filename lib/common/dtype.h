// Sizes of the element types of the C API.
#ifndef RELATTN_LIB_COMMON_DTYPE_H_
#define RELATTN_LIB_COMMON_DTYPE_H_

#include <cstdint>

#include "lib/common/q4.h"
#include "relattn/relattn.h"

namespace relattn {

// Bytes of one element of `dtype` (validated: F32, F16, BF16, I8 or Q4, whose
// element is a byte of its blocks).
inline constexpr int64_t DtypeBytes(relattn_dtype dtype) {
  return dtype == RELATTN_F16 || dtype == RELATTN_BF16 ? 2
         : dtype == RELATTN_I8 || dtype == RELATTN_Q4  ? 1
                                                       : 4;
}

// Elements a row of dim values takes (Q4: the bytes of its blocks).
inline constexpr int64_t RowElements(relattn_dtype dtype, int64_t dim) {
  return dtype == RELATTN_Q4 ? Q4RowBytes(dim) : dim;
}

}  // namespace relattn

#endif  // RELATTN_LIB_COMMON_DTYPE_H_
