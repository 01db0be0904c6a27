// Validation of one strided tensor argument, shared by every entry point that
// takes one (relattn_attention, relattn_kv_cache_append).
#ifndef RELATTN_LIB_API_VALIDATE_TENSOR_H_
#define RELATTN_LIB_API_VALIDATE_TENSOR_H_

#include <cstdint>

#include "relattn/relattn.h"

namespace relattn {

// Rows (t, h) of `dim` elements at t * token_stride + h * head_stride, for t
// < n_tokens and h < n_heads, must not overlap: strides >= 0, the larger
// stride spans all rows of the smaller, and the last element's index fits in
// int64. RELATTN_ERR_BAD_STRIDE naming `name` otherwise.
relattn_status CheckStrides(const char* name, int64_t n_tokens, int64_t token_stride,
                            int32_t n_heads, int64_t head_stride, int64_t dim);

// t as a [n_tokens][n_heads][dim] tensor named `name`: data not NULL and
// aligned to its element size, a known dtype, strides as CheckStrides (Q4:
// dim a multiple of 32, rows of its blocks' bytes); I8 also needs row_scales
// (aligned, strides as CheckStrides with dim 1). no_i8: NULL where I8 and Q4
// are allowed, else why they are not (RELATTN_ERR_UNSUPPORTED).
relattn_status CheckTensor(const char* name, const relattn_tensor& t, int64_t n_tokens,
                           int32_t n_heads, int64_t dim, const char* no_i8);

}  // namespace relattn

#endif  // RELATTN_LIB_API_VALIDATE_TENSOR_H_
