#include "lib/bias/alibi.h"

#include <cmath>

#include "lib/api/error.h"

namespace relattn {

float AlibiSlope(int32_t head, int32_t n_heads, float max_bias) {
  int32_t p = 1;
  while (p <= n_heads / 2) p *= 2;
  const double bias = max_bias;
  const double exponent =
      head < p ? -bias * (head + 1) / p : -bias * (2 * (head - p) + 1) / (2 * p);
  return static_cast<float>(std::exp2(exponent));
}

relattn_status CheckAlibiMaxBias(float max_bias, const char* name) {
  if (std::isfinite(max_bias) && max_bias > 0) return RELATTN_OK;
  return Fail(RELATTN_ERR_BAD_BIAS_PARAMETER, "%s = %g: must be finite and > 0", name,
              static_cast<double>(max_bias));
}

}  // namespace relattn

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
