// relattn_quantize_i8: rows of an f32 / f16 tensor to int8 with per-row scales.
#include <cinttypes>
#include <cmath>

#include "lib/api/validate_memory.h"
#include "lib/api/validate_tensor.h"
#include "lib/common/error.h"
#include "lib/common/f16.h"
#include "lib/common/float_element.h"
#include "lib/common/quantize_row.h"
#include "relattn/relattn.h"

namespace relattn {
namespace {

float ElementOf(const relattn_tensor& t, int64_t index) {
  return FloatElement(t.data, t.dtype, index);
}

relattn_status CheckArguments(const relattn_tensor* src, int64_t n_tokens, int32_t n_heads,
                              int32_t dim, const int8_t* out, const float* out_scales,
                              const relattn_tensor* quantized) {
  if (!src) return Fail(RELATTN_ERR_NULL_ARGUMENT, "src is NULL");
  if (!out) return Fail(RELATTN_ERR_NULL_ARGUMENT, "out is NULL");
  if (!out_scales) return Fail(RELATTN_ERR_NULL_ARGUMENT, "out_scales is NULL");
  if (!quantized) return Fail(RELATTN_ERR_NULL_ARGUMENT, "quantized is NULL");
  if (n_tokens < 1 || n_tokens > RELATTN_MAX_TOKENS) {
    return Fail(RELATTN_ERR_BAD_DIMENSION, "n_tokens = %" PRId64 ": must be in 1..2^40", n_tokens);
  }
  if (n_heads < 1 || n_heads > RELATTN_MAX_HEADS) {
    return Fail(RELATTN_ERR_BAD_DIMENSION, "n_heads = %d: must be in 1..%d", n_heads,
                RELATTN_MAX_HEADS);
  }
  if (dim < 1 || dim > RELATTN_MAX_HEAD_DIM) {
    return Fail(RELATTN_ERR_BAD_DIMENSION, "dim = %d: must be in 1..%d", dim, RELATTN_MAX_HEAD_DIM);
  }
  relattn_status s = CheckTensor("src", *src, n_tokens, n_heads, dim, "it is quantised already");
  if (s == RELATTN_OK) s = CheckAligned("out_scales", out_scales, sizeof(float));
  return s;
}

// Every element of src finite (checked before the first write).
relattn_status CheckFiniteRows(const relattn_tensor& src, int64_t n_tokens, int32_t n_heads,
                               int32_t dim) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int32_t h = 0; h < n_heads; ++h) {
      const int64_t first = t * src.token_stride + h * src.head_stride;
      for (int32_t e = 0; e < dim; ++e) {
        const float x = ElementOf(src, first + e);
        if (!std::isfinite(x)) {
          return Fail(RELATTN_ERR_NON_FINITE,
                      "src element (token %" PRId64 ", head %d, %d) = %g: must be finite", t, h, e,
                      static_cast<double>(x));
        }
      }
    }
  }
  return RELATTN_OK;
}

}  // namespace
}  // namespace relattn

extern "C" relattn_status relattn_quantize_i8(const relattn_tensor* src, int64_t n_tokens,
                                              int32_t n_heads, int32_t dim, int8_t* out,
                                              float* out_scales, relattn_tensor* quantized) {
  relattn_status s;
  if ((s = relattn::CheckArguments(src, n_tokens, n_heads, dim, out, out_scales, quantized)) ||
      (s = relattn::CheckFiniteRows(*src, n_tokens, n_heads, dim))) {
    return s;
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
