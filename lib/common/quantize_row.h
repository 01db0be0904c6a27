// Symmetric int8 quantisation of one row (relattn_quantize_i8, the KV cache's
// int8 K storage): scale = max|x| / 127 (0 for an all-zero row),
// q = round-half-away-from-zero(x / scale) clamped to [-127, 127].
#ifndef RELATTN_LIB_COMMON_QUANTIZE_ROW_H_
#define RELATTN_LIB_COMMON_QUANTIZE_ROW_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace relattn {

// Quantises the finite row x[0, n) into q[0, n); returns the scale.
inline float QuantizeRowI8(const float* x, int64_t n, int8_t* q) {
  float max_abs = 0.0f;
  for (int64_t e = 0; e < n; ++e) max_abs = std::max(max_abs, std::fabs(x[e]));
  const float scale = max_abs / 127;
  for (int64_t e = 0; e < n; ++e) {
    const float r = scale == 0.0f ? 0.0f : std::round(x[e] / scale);
    q[e] = static_cast<int8_t>(std::clamp(r, -127.0f, 127.0f));
  }
  return scale;
}

}  // namespace relattn

#endif  // RELATTN_LIB_COMMON_QUANTIZE_ROW_H_
