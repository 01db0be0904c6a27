// A deterministic test input: any token's K or V row can be made again.
#ifndef RELATTN_TESTS_TOKEN_VALUE_H_
#define RELATTN_TESTS_TOKEN_VALUE_H_

#include <cstdint>

namespace relattn_test {

// Element e of head h of token n's K (which = 0) or V (1): a fixed function of
// (n, h, e, which), in [-1, 1).
inline float TokenValue(int64_t n, int32_t h, int32_t e, int which) {
  uint64_t x = uint64_t(n) * 0x9E3779B97F4A7C15ull + uint64_t(h * 977 + e * 31 + which * 7919);
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 32;
  return float(int64_t(x % 2000) - 1000) / 1000.0f;
}

}  // namespace relattn_test

#endif  // RELATTN_TESTS_TOKEN_VALUE_H_
