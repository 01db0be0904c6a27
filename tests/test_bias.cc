// ALiBi slopes, Shaw indices, scalar f16 conversion and int8 table quantisation, each checked
// against values computed by another route (tests/bias_tables.h, lib/reference, hand-worked).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "lib/bias/alibi.h"
#include "lib/bias/shaw.h"
#include "lib/common/f16.h"
#include "lib/reference/reference.h"
#include "relattn/relattn.h"
#include "tests/bias_tables.h"

namespace {

bool LastErrorHas(const char* text) {
  return std::string(relattn_last_error()).find(text) != std::string::npos;
}

TEST_CASE("relattn_alibi_slopes equals the correctly rounded slopes of tests/bias_tables.h") {
  for (const float max_bias : {8.0f, 4.0f}) {
    const float* expected = max_bias == 8 ? relattn::tables::kAlibiSlopesMaxBias8
                                          : relattn::tables::kAlibiSlopesMaxBias4;
    for (const int32_t n : relattn::tables::kAlibiHeads) {
      std::vector<float> slopes(n);
      REQUIRE(relattn_alibi_slopes(n, max_bias, slopes.data()) == RELATTN_OK);
      CHECK(std::string(relattn_last_error()).empty());
      for (int32_t h = 0; h < n; ++h) {
        CAPTURE(max_bias);
        CAPTURE(n);
        CAPTURE(h);
        CHECK(slopes[h] == expected[h]);
      }
      expected += n;
    }
  }
}

TEST_CASE("AlibiSlope agrees with the reference's paper and ggml routes") {
  std::vector<int32_t> counts = {1000, 2047, 2048, 4095, 4096};
  for (int32_t n = 1; n <= 130; ++n) counts.push_back(n);
  for (const float max_bias : {8.0f, 4.0f, 1.0f, 0.5f, 3.7f, 16.0f}) {
    for (const int32_t n : counts) {
      for (int32_t h = 0; h < n; ++h) {
        const float expected = relattn::reference::AlibiSlope(h, n, max_bias);
        if (relattn::AlibiSlope(h, n, max_bias) != expected) {
          FAIL_CHECK("max_bias " << max_bias << " n_heads " << n << " head " << h);
        }
      }
    }
  }
}

TEST_CASE("relattn_alibi_slopes rejects bad arguments and leaves slopes untouched") {
  float slopes[4] = {-1, -1, -1, -1};
  CHECK(relattn_alibi_slopes(4, 8, nullptr) == RELATTN_ERR_NULL_ARGUMENT);
  CHECK(LastErrorHas("slopes = NULL"));
  CHECK(relattn_alibi_slopes(0, 8, slopes) == RELATTN_ERR_BAD_DIMENSION);
  CHECK(std::string(relattn_last_error()) == "n_heads = 0: must be in 1..4096");
  CHECK(relattn_alibi_slopes(4097, 8, slopes) == RELATTN_ERR_BAD_DIMENSION);
  CHECK(LastErrorHas("n_heads = 4097"));
  for (const float bad : {0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::infinity()}) {
    CHECK(relattn_alibi_slopes(4, bad, slopes) == RELATTN_ERR_BAD_BIAS_PARAMETER);
    CHECK(LastErrorHas("max_bias = "));
    CHECK(LastErrorHas("must be finite and > 0"));
  }
  for (const float s : slopes) CHECK(s == -1);
}

TEST_CASE("ShawIndex clips key - query to [-k, k] and shifts by k") {
  CHECK(relattn::ShawIndex(-5, 3) == 0);
  CHECK(relattn::ShawIndex(-3, 3) == 0);
  CHECK(relattn::ShawIndex(-2, 3) == 1);
  CHECK(relattn::ShawIndex(0, 3) == 3);
  CHECK(relattn::ShawIndex(3, 3) == 6);
  CHECK(relattn::ShawIndex(4, 3) == 6);
  CHECK(relattn::ShawIndex(INT64_MIN, 16384) == 0);
  CHECK(relattn::ShawIndex(INT64_MAX, 16384) == 32768);
  CHECK(relattn::ShawIndex(INT64_MIN, 0) == 0);
  CHECK(relattn::ShawIndex(INT64_MAX, 0) == 0);
}

float FloatBits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

TEST_CASE("F16ToF32 decodes every pattern as the reference does; F32ToF16 round-trips it") {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const uint16_t bits = static_cast<uint16_t>(h);
    const float f = relattn::F16ToF32(bits);
    const double expected = relattn::reference::F16ToDouble(bits);
    if (std::isnan(expected)) {
      REQUIRE(std::isnan(f));
      REQUIRE((relattn::F32ToF16(f) & 0x7fff) > 0x7c00);  // still a NaN
      REQUIRE((relattn::F32ToF16(f) & 0x8000) == (bits & 0x8000));
      continue;
    }
    REQUIRE(f == expected);
    REQUIRE(std::signbit(f) == ((bits & 0x8000) != 0));
    REQUIRE(relattn::F32ToF16(f) == bits);
  }
}

TEST_CASE("F32ToF16 rounds to nearest, ties to even, with subnormals, overflow and underflow") {
  for (uint32_t h = 0; h < 0x7bff; ++h) {  // adjacent finite halves a = h, b = h + 1
    const uint16_t a = static_cast<uint16_t>(h), b = static_cast<uint16_t>(h + 1);
    const float mid = (relattn::F16ToF32(a) + relattn::F16ToF32(b)) / 2;  // exact in f32
    CAPTURE(h);
    REQUIRE(relattn::F32ToF16(mid) == ((a & 1) ? b : a));
    REQUIRE(relattn::F32ToF16(std::nextafter(mid, 0.0f)) == a);
    REQUIRE(relattn::F32ToF16(std::nextafter(mid, 1e9f)) == b);
    REQUIRE(relattn::F32ToF16(-mid) == (0x8000 | ((a & 1) ? b : a)));
  }
  CHECK(relattn::F32ToF16(65519.996f) == 0x7bff);
  CHECK(relattn::F32ToF16(65520.0f) == 0x7c00);  // the tie above 65504 goes to the even inf
  CHECK(relattn::F32ToF16(-1e30f) == 0xfc00);
  CHECK(relattn::F32ToF16(std::numeric_limits<float>::infinity()) == 0x7c00);
  CHECK(relattn::F32ToF16(std::ldexp(1.0f, -25)) == 0x0000);  // tie between 0 and 2^-24
  CHECK(relattn::F32ToF16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001);
  CHECK(relattn::F32ToF16(std::ldexp(3.0f, -26)) == 0x0001);
  CHECK(relattn::F32ToF16(FloatBits(1)) == 0x0000);  // the smallest f32 subnormal
  CHECK(relattn::F32ToF16(-0.0f) == 0x8000);
  CHECK(relattn::F32ToF16(FloatBits(0xffc00001u)) == 0xfe00);  // -NaN stays a quiet -NaN
}

TEST_CASE("relattn_quantize_table_i8 round-trips within scale / 2; a zero row gets scale 0") {
  const int32_t n_heads = 3, n_buckets = 33;
  std::vector<float> table(n_heads * n_buckets);
  for (int32_t b = 0; b < n_buckets; ++b) {
    table[b] = std::sin(0.7f * b) * 3.5f;
    table[n_buckets + b] = 0;
    table[2 * n_buckets + b] = std::ldexp(static_cast<float>(b - 16), -20);
  }
  std::vector<int8_t> q(table.size(), 99);
  std::vector<float> scales(n_heads, -1);
  REQUIRE(relattn_quantize_table_i8(table.data(), n_heads, n_buckets, q.data(), scales.data()) ==
          RELATTN_OK);
  CHECK(scales[1] == 0);
  for (int32_t h = 0; h < n_heads; ++h) {
    int max_q = 0;
    for (int32_t b = 0; b < n_buckets; ++b) {
      const float x = table[h * n_buckets + b];
      const int8_t v = q[h * n_buckets + b];
      CHECK(std::fabs(x - scales[h] * v) <= scales[h] * 0.5f * (1 + 1e-6f));
      max_q = std::max(max_q, std::abs(int{v}));
    }
    CHECK(max_q == (h == 1 ? 0 : 127));
  }
  CHECK(scales[2] == std::ldexp(16.0f, -20) / 127);
}

TEST_CASE("relattn_quantize_table_i8 rejects bad arguments and writes nothing") {
  std::vector<float> table(2 * 8, 1.0f);
  std::vector<int8_t> q(16, 99);
  float scales[2] = {-1, -1};
  CHECK(relattn_quantize_table_i8(nullptr, 2, 8, q.data(), scales) == RELATTN_ERR_NULL_ARGUMENT);
  CHECK(LastErrorHas("table = NULL"));
  CHECK(relattn_quantize_table_i8(table.data(), 2, 8, nullptr, scales) ==
        RELATTN_ERR_NULL_ARGUMENT);
  CHECK(LastErrorHas("table_i8 = NULL"));
  CHECK(relattn_quantize_table_i8(table.data(), 2, 8, q.data(), nullptr) ==
        RELATTN_ERR_NULL_ARGUMENT);
  CHECK(LastErrorHas("scales = NULL"));
  CHECK(relattn_quantize_table_i8(table.data(), 0, 8, q.data(), scales) ==
        RELATTN_ERR_BAD_DIMENSION);
  CHECK(std::string(relattn_last_error()) == "n_heads = 0: must be in 1..4096");
  CHECK(relattn_quantize_table_i8(table.data(), 2, 1, q.data(), scales) ==
        RELATTN_ERR_BAD_DIMENSION);
  CHECK(std::string(relattn_last_error()) == "num_buckets = 1: must be in 2..1024");
  table[1 * 8 + 5] = std::numeric_limits<float>::infinity();
  CHECK(relattn_quantize_table_i8(table.data(), 2, 8, q.data(), scales) ==
        RELATTN_ERR_BAD_BIAS_PARAMETER);
  CHECK(std::string(relattn_last_error()) == "table[1][5] = inf: must be finite");
  for (const int8_t v : q) CHECK(v == 99);
  CHECK(scales[0] == -1);
  CHECK(scales[1] == -1);
}

}  // namespace
