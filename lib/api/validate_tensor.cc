#include "lib/api/validate_tensor.h"

#include <cinttypes>
#include <cstdio>

#include "lib/api/validate_memory.h"
#include "lib/common/dtype.h"
#include "lib/common/error.h"

namespace relattn {

relattn_status CheckStrides(const char* name, int64_t n_tokens, int64_t token_stride,
                            int32_t n_heads, int64_t head_stride, int64_t dim) {
  if (token_stride < 0 || head_stride < 0) {
    return Fail(RELATTN_ERR_BAD_STRIDE,
                "%s strides (token %" PRId64 ", head %" PRId64 "): must be >= 0", name,
                token_stride, head_stride);
  }
  struct Axis {
    int64_t count, stride;
    const char* name;
  };
  Axis inner{n_tokens, token_stride, "token_stride"}, outer{n_heads, head_stride, "head_stride"};
  if (inner.count == 1 || (outer.count > 1 && outer.stride < inner.stride)) {
    const Axis t = inner;
    inner = outer;
    outer = t;
  }
  if (inner.count > 1 && inner.stride < dim) {
    return Fail(RELATTN_ERR_BAD_STRIDE, "%s.%s = %" PRId64 ": rows overlap, must be >= %" PRId64,
                name, inner.name, inner.stride, dim);
  }
  // Overflow checks by builtins: no 128-bit integers on 32-bit targets.
  int64_t inner_span = dim;
  const bool span_overflows =
      inner.count > 1 && __builtin_mul_overflow(inner.stride, inner.count, &inner_span);
  if (outer.count > 1 && (span_overflows || outer.stride < inner_span)) {
    return Fail(RELATTN_ERR_BAD_STRIDE,
                "%s.%s = %" PRId64 ": rows overlap, must be >= %s.%s * %" PRId64, name, outer.name,
                outer.stride, name, inner.name, inner.count);
  }
  // The last element's index must fit in int64.
  int64_t token_part, head_part, last;
  if (__builtin_mul_overflow(n_tokens - 1, token_stride, &token_part) ||
      __builtin_mul_overflow(int64_t{n_heads} - 1, head_stride, &head_part) ||
      __builtin_add_overflow(token_part, head_part, &last) ||
      __builtin_add_overflow(last, dim - 1, &last)) {
    return Fail(RELATTN_ERR_BAD_STRIDE, "%s strides: last element index overflows int64", name);
  }
  return RELATTN_OK;
}

relattn_status CheckTensor(const char* name, const relattn_tensor& t, int64_t n_tokens,
                           int32_t n_heads, int64_t dim, const char* no_i8) {
  if (!t.data) return Fail(RELATTN_ERR_NULL_ARGUMENT, "%s.data is NULL", name);
  if ((t.dtype == RELATTN_I8 || t.dtype == RELATTN_Q4) && no_i8) {
    return Fail(RELATTN_ERR_UNSUPPORTED, "%s.dtype = %s: %s", name,
                t.dtype == RELATTN_I8 ? "I8" : "Q4", no_i8);
  }
  if (t.dtype != RELATTN_F32 && t.dtype != RELATTN_F16 && t.dtype != RELATTN_BF16 &&
      t.dtype != RELATTN_I8 && t.dtype != RELATTN_Q4) {
    return Fail(RELATTN_ERR_BAD_DTYPE, "%s.dtype = %d: must be RELATTN_F32, RELATTN_F16%s", name,
                (int)t.dtype,
                no_i8 ? " or RELATTN_BF16" : ", RELATTN_BF16, RELATTN_I8 or RELATTN_Q4");
  }
  if (t.dtype == RELATTN_Q4 && dim % kQ4BlockValues != 0) {
    return Fail(RELATTN_ERR_BAD_DIMENSION,
                "%s.dtype = Q4 with dim %" PRId64
                ": Q4 rows hold blocks of 32 values, the dim "
                "must be a multiple of 32",
                name, dim);
  }
  char field[40];
  std::snprintf(field, sizeof(field), "%s.data", name);
  relattn_status s = CheckAligned(field, t.data, DtypeBytes(t.dtype));
  if (s == RELATTN_OK) {
    s = CheckStrides(name, n_tokens, t.token_stride, n_heads, t.head_stride,
                     RowElements(t.dtype, dim));
  }
  if (s != RELATTN_OK || t.dtype != RELATTN_I8) return s;
  std::snprintf(field, sizeof(field), "%s.row_scales", name);
  if (!t.row_scales) {
    return Fail(RELATTN_ERR_NULL_ARGUMENT, "%s is NULL: required for I8", field);
  }
  s = CheckStrides(field, n_tokens, t.scale_token_stride, n_heads, t.scale_head_stride, 1);
  if (s == RELATTN_OK) s = CheckAligned(field, t.row_scales, sizeof(float));
  return s;
}

}  // namespace relattn
