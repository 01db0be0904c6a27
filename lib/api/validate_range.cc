#include "lib/api/validate_range.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lib/api/kv_cache.h"
#include "lib/common/bf16.h"
#include "lib/common/error.h"
#include "lib/common/f16.h"
#include "lib/common/q4.h"

namespace relattn {
namespace {

inline constexpr float kF16Max = 65504.0f;

// Largest finite |x| of row[0, n) as bits: |x| orders as its bit pattern
// with the sign cleared; infinities and NaN (exponent all ones) count as 0.
// Signed integers so that the loops vectorise with SSE2's compares and
// pmaxsw (the scan reads every K and V value of a bf16 or f32 call).
uint32_t MaxAbsBitsF32(const float* row, int64_t n) {
  int32_t m = 0;
  for (int64_t e = 0; e < n; ++e) {
    int32_t bits;
    std::memcpy(&bits, row + e, sizeof(bits));
    bits &= 0x7fffffff;
    m = std::max(m, bits < 0x7f800000 ? bits : 0);
  }
  return static_cast<uint32_t>(m);
}

// The same for 16-bit floats (f16, bf16) whose infinity has the bits `inf`.
uint16_t MaxAbsBits16(const uint16_t* row, int64_t n, int16_t inf) {
  int16_t m = 0;
  for (int64_t e = 0; e < n; ++e) {
    const int16_t bits = static_cast<int16_t>(row[e] & 0x7fff);
    m = std::max(m, bits < inf ? bits : int16_t{0});
  }
  return static_cast<uint16_t>(m);
}

float MaxAbsScales(const relattn_tensor& t, int64_t n_tokens, int32_t n_heads) {
  float m = 0.0f;
  for (int64_t i = 0; i < n_tokens; ++i) {
    for (int32_t h = 0; h < n_heads; ++h) {
      const float s = t.row_scales[i * t.scale_token_stride + h * t.scale_head_stride];
      if (std::isfinite(s)) m = std::max(m, std::fabs(s));
    }
  }
  return m * 127.0f;
}

// The K (or V) maximum of d for the bound `limit`: f16 tensors are scanned
// only when kF16Max exceeds it.
float MaxAbsOrF16Max(const relattn_tensor& t, int64_t n_tokens, int32_t n_heads, int64_t dim,
                     double limit) {
  if (t.dtype == RELATTN_F16 && kF16Max <= limit) return kF16Max;
  return MaxAbsFinite(t, n_tokens, n_heads, dim);
}

float MaxAbsShawVector(const relattn_attention_desc& d) {
  const relattn_shaw_vector& sv = d.bias.shaw_vector;
  if (d.bias.kind != RELATTN_BIAS_SHAW_VECTOR) return 0.0f;
  const int64_t rows = (sv.per_head ? d.n_heads : 1) * (2 * int64_t{sv.k} + 1);
  uint32_t bits = MaxAbsBitsF32(sv.table, rows * d.head_dim);
  float m;
  std::memcpy(&m, &bits, sizeof(m));
  return m;
}

relattn_status RangeFail(const char* term, double value, double q, double k) {
  return Fail(RELATTN_ERR_VALUE_RANGE,
              "%s = %g (max|q| = %g, max|k| = %g): must be <= 2^125 so that scores and sums stay "
              "finite in f32",
              term, value, q, k);
}

// 8 x the largest finite |d| of a Q4 tensor's blocks.
float MaxAbsQ4(const relattn_tensor& t, int64_t n_tokens, int32_t n_heads, int64_t dim) {
  float m = 0.0f;
  for (int64_t i = 0; i < n_tokens; ++i) {
    for (int32_t h = 0; h < n_heads; ++h) {
      const uint8_t* row =
          static_cast<const uint8_t*>(t.data) + i * t.token_stride + h * t.head_stride;
      for (int64_t b = 0; b < dim / kQ4BlockValues; ++b) {
        const float d = Q4BlockScale(row + b * kQ4BlockBytes);
        if (std::isfinite(d)) m = std::max(m, std::fabs(d));
      }
    }
  }
  return 8.0f * m;
}

}  // namespace

float MaxAbsFinite(const relattn_tensor& t, int64_t n_tokens, int32_t n_heads, int64_t dim) {
  if (t.dtype == RELATTN_I8) return MaxAbsScales(t, n_tokens, n_heads);
  if (t.dtype == RELATTN_Q4) return MaxAbsQ4(t, n_tokens, n_heads, dim);
  uint32_t m32 = 0;
  uint16_t m16 = 0;
  for (int64_t i = 0; i < n_tokens; ++i) {
    for (int32_t h = 0; h < n_heads; ++h) {
      const int64_t at = i * t.token_stride + h * t.head_stride;
      if (t.dtype == RELATTN_F16) {
        m16 = std::max(m16, MaxAbsBits16(static_cast<const uint16_t*>(t.data) + at, dim, 0x7c00));
      } else if (t.dtype == RELATTN_BF16) {
        m16 = std::max(m16, MaxAbsBits16(static_cast<const uint16_t*>(t.data) + at, dim, 0x7f80));
      } else {
        m32 = std::max(m32, MaxAbsBitsF32(static_cast<const float*>(t.data) + at, dim));
      }
    }
  }
  if (t.dtype == RELATTN_F16) return F16ToF32(m16);
  if (t.dtype == RELATTN_BF16) return BF16ToF32(m16);
  float m;
  std::memcpy(&m, &m32, sizeof(m));
  return m;
}

relattn_status CheckValueRange(const relattn_attention_desc& d, double rope_factor,
                               const relattn_kv_cache* cache) {
  const int32_t dv = d.v_head_dim ? d.v_head_dim : d.head_dim;
  const double scale = d.scale != 0.0f ? std::fabs(double{d.scale}) : 1.0 / std::sqrt(d.head_dim);
  const double g = std::max(rope_factor, 1.0);
  const double q = g * MaxAbsFinite(d.q, d.n_q, d.n_heads, d.head_dim);
  const double a = MaxAbsShawVector(d);
  // The largest max|k| the first bound allows (a sum with max|a|).
  const double k_limit =
      std::min(kMaxContentScore / (scale * d.head_dim * q) - a, kMaxContentScore);
  const double k = cache ? cache->k_max_abs
                         : g * MaxAbsOrF16Max(d.k, d.n_kv, d.n_kv_heads, d.head_dim, k_limit / g);
  const double v = cache ? cache->v_max_abs
                         : MaxAbsOrF16Max(d.v, d.n_kv, d.n_kv_heads, dv,
                                          kMaxContentScore / static_cast<double>(d.n_kv));
  if (q > kMaxContentScore || k > kMaxContentScore) {
    return RangeFail(q > k ? "max|q|" : "max|k|", std::max(q, k), q, k);
  }
  const double content = scale * d.head_dim * q * (k + a);
  if (content > kMaxContentScore) {
    return RangeFail(a > 0 ? "|scale| * head_dim * max|q| * (max|k| + max|a|)"
                           : "|scale| * head_dim * max|q| * max|k|",
                     content, q, k);
  }
  if (static_cast<double>(d.n_kv) * v > kMaxContentScore) {
    return Fail(RELATTN_ERR_VALUE_RANGE,
                "n_kv * max|v| = %g (max|v| = %g): must be <= 2^125 so that the P.V sums stay "
                "finite in f32",
                static_cast<double>(d.n_kv) * v, v);
  }
  return RELATTN_OK;
}

}  // namespace relattn
