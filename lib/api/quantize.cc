// relattn_quantize_i8: rows of an f32 / f16 tensor to int8 with per-row scales.
#include <cinttypes>
#include <cmath>

#include "lib/common/dtype.h"
#include "lib/common/error.h"
#include "lib/common/f16.h"
#include "lib/common/quantize_row.h"
#include "relattn/relattn.h"

namespace relattn {
namespace {

float ElementOf(const relattn_tensor& t, int64_t index) {
  return t.dtype == RELATTN_F16 ? F16ToF32(static_cast<const uint16_t*>(t.data)[index])
                                : static_cast<const float*>(t.data)[index];
}

}  // namespace
}  // namespace relattn

extern "C" relattn_status relattn_quantize_i8(const relattn_tensor* src, int64_t n_tokens,
                                              int32_t n_heads, int32_t dim, int8_t* out,
                                              float* out_scales, relattn_tensor* quantized) {
  using relattn::Fail;
  if (!src) return Fail(RELATTN_ERR_NULL_ARGUMENT, "src is NULL");
  if (!src->data) return Fail(RELATTN_ERR_NULL_ARGUMENT, "src->data is NULL");
  if (!out) return Fail(RELATTN_ERR_NULL_ARGUMENT, "out is NULL");
  if (!out_scales) return Fail(RELATTN_ERR_NULL_ARGUMENT, "out_scales is NULL");
  if (!quantized) return Fail(RELATTN_ERR_NULL_ARGUMENT, "quantized is NULL");
  if (src->dtype != RELATTN_F32 && src->dtype != RELATTN_F16) {
    return Fail(RELATTN_ERR_BAD_DTYPE, "src->dtype = %d: must be RELATTN_F32 or RELATTN_F16",
                static_cast<int>(src->dtype));
  }
  if (n_tokens < 1) {
    return Fail(RELATTN_ERR_BAD_DIMENSION, "n_tokens = %" PRId64 ": must be >= 1", n_tokens);
  }
  if (n_heads < 1 || n_heads > RELATTN_MAX_HEADS) {
    return Fail(RELATTN_ERR_BAD_DIMENSION, "n_heads = %d: must be in 1..%d", n_heads,
                RELATTN_MAX_HEADS);
  }
  if (dim < 1 || dim > RELATTN_MAX_HEAD_DIM) {
    return Fail(RELATTN_ERR_BAD_DIMENSION, "dim = %d: must be in 1..%d", dim, RELATTN_MAX_HEAD_DIM);
  }
  if (src->token_stride < 0 || src->head_stride < 0 || (n_tokens > 1 && src->token_stride == 0) ||
      (n_heads > 1 && src->head_stride == 0)) {
    return Fail(RELATTN_ERR_BAD_STRIDE,
                "src strides (%" PRId64 ", %" PRId64
                "): must be > 0 where there is more than "
                "one token / head",
                src->token_stride, src->head_stride);
  }
  const size_t elem_bytes = static_cast<size_t>(relattn::DtypeBytes(src->dtype));
  if (reinterpret_cast<uintptr_t>(src->data) % elem_bytes != 0) {
    return Fail(RELATTN_ERR_BAD_ALIGNMENT, "src->data = %p: must be aligned to %zu bytes",
                src->data, elem_bytes);
  }
  if (reinterpret_cast<uintptr_t>(out_scales) % sizeof(float) != 0) {
    return Fail(RELATTN_ERR_BAD_ALIGNMENT, "out_scales = %p: must be aligned to 4 bytes",
                static_cast<void*>(out_scales));
  }
  int64_t last, head_part;  // index of the last element read
  if (__builtin_mul_overflow(n_tokens - 1, src->token_stride, &last) ||
      __builtin_mul_overflow(int64_t{n_heads} - 1, src->head_stride, &head_part) ||
      __builtin_add_overflow(last, head_part, &last) ||
      __builtin_add_overflow(last, int64_t{dim} - 1, &last)) {
    return Fail(RELATTN_ERR_BAD_STRIDE, "src strides: the last element index overflows int64");
  }
  // Every element is checked before the first write.
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int32_t h = 0; h < n_heads; ++h) {
      const int64_t first = t * src->token_stride + h * src->head_stride;
      for (int32_t e = 0; e < dim; ++e) {
        const float x = relattn::ElementOf(*src, first + e);
        if (!std::isfinite(x)) {
          return Fail(RELATTN_ERR_NON_FINITE,
                      "src element (token %" PRId64 ", head %d, %d) = %g: must be finite", t, h, e,
                      static_cast<double>(x));
        }
      }
    }
  }
  float row[RELATTN_MAX_HEAD_DIM];
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int32_t h = 0; h < n_heads; ++h) {
      const int64_t first = t * src->token_stride + h * src->head_stride;
      for (int32_t e = 0; e < dim; ++e) row[e] = relattn::ElementOf(*src, first + e);
      const int64_t r = t * n_heads + h;
      out_scales[r] = relattn::QuantizeRowI8(row, dim, out + r * dim);
    }
  }
  *quantized = relattn_tensor{out, RELATTN_I8, int64_t{n_heads} * dim, dim, out_scales, n_heads, 1};
  return relattn::Succeed();
}
