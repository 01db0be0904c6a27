#include "lib/bias/alibi.h"

#include <cmath>

#include "lib/common/error.h"

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
