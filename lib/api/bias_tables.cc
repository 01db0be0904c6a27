// The bias-table entry points: relattn_alibi_slopes (the ALiBi paper's slopes, lib/bias/alibi.h)
// and relattn_quantize_table_i8 (f32 bias tables to symmetric int8 with one scale per row, head).
// quantize_table_i8: |x - scale * q| <= scale / 2 (up to one f32 rounding) for every entry x,
// except in a row whose max|x| / 127 underflows to 0 or a subnormal (max|x| < 127 * 2^-126), which
// loses precision.

#include <algorithm>
#include <cmath>

#include "lib/bias/alibi.h"
#include "lib/bias/t5.h"
#include "lib/common/error.h"
#include "relattn/relattn.h"

extern "C" relattn_status relattn_quantize_table_i8(const float* table, int32_t n_heads,
                                                    int32_t num_buckets, int8_t* table_i8,
                                                    float* scales) {
  using relattn::Fail;
  if (table == nullptr) return Fail(RELATTN_ERR_NULL_ARGUMENT, "table = NULL: must not be NULL");
  if (table_i8 == nullptr) {
    return Fail(RELATTN_ERR_NULL_ARGUMENT, "table_i8 = NULL: must not be NULL");
  }
  if (scales == nullptr) return Fail(RELATTN_ERR_NULL_ARGUMENT, "scales = NULL: must not be NULL");
  if (n_heads < 1 || n_heads > RELATTN_MAX_HEADS) {
    return Fail(RELATTN_ERR_BAD_DIMENSION, "n_heads = %d: must be in 1..%d", n_heads,
                RELATTN_MAX_HEADS);
  }
  if (num_buckets < 2 || num_buckets > relattn::kT5MaxBuckets) {
    return Fail(RELATTN_ERR_BAD_DIMENSION, "num_buckets = %d: must be in 2..%d", num_buckets,
                relattn::kT5MaxBuckets);
  }
  const int64_t n = int64_t{n_heads} * num_buckets;
  for (int64_t i = 0; i < n; ++i) {  // all checks before the first write
    if (!std::isfinite(table[i])) {
      return Fail(RELATTN_ERR_BAD_BIAS_PARAMETER, "table[%d][%d] = %g: must be finite",
                  static_cast<int>(i / num_buckets), static_cast<int>(i % num_buckets),
                  static_cast<double>(table[i]));
    }
  }
  for (int32_t h = 0; h < n_heads; ++h) {
    const float* row = table + int64_t{h} * num_buckets;
    int8_t* out = table_i8 + int64_t{h} * num_buckets;
    float max_abs = 0;
    for (int32_t b = 0; b < num_buckets; ++b) max_abs = std::max(max_abs, std::fabs(row[b]));
    const float scale = max_abs / 127;
    scales[h] = scale;
    for (int32_t b = 0; b < num_buckets; ++b) {
      // Half away from zero; the clamp only catches x / scale rounding just past +-127.
      const float q = scale == 0 ? 0 : std::round(row[b] / scale);
      out[b] = static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
    }
  }
  return relattn::Succeed();
}

extern "C" relattn_status relattn_alibi_slopes(int32_t n_heads, float max_bias, float* slopes) {
  if (slopes == nullptr) {
    return relattn::Fail(RELATTN_ERR_NULL_ARGUMENT, "slopes = NULL: must point to n_heads floats");
  }
  if (n_heads < 1 || n_heads > RELATTN_MAX_HEADS) {
    return relattn::Fail(RELATTN_ERR_BAD_DIMENSION, "n_heads = %d: must be in 1..%d", n_heads,
                         RELATTN_MAX_HEADS);
  }
  const relattn_status status = relattn::CheckAlibiMaxBias(max_bias, "max_bias");
  if (status != RELATTN_OK) return status;
  for (int32_t h = 0; h < n_heads; ++h) slopes[h] = relattn::AlibiSlope(h, n_heads, max_bias);
  return relattn::Succeed();
}
