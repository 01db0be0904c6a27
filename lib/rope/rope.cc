#include "lib/rope/rope.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>

#include "lib/common/error.h"
#include "lib/rope/rope_scaling.h"

namespace relattn {
namespace {

struct Resolved {
  relattn_rope_pairing pairing;
  int32_t rotary_dims;
  double base, linear_scale;
};

Resolved Defaults(const relattn_rope& r, int32_t head_dim) {
  return {r.pairing, r.rotary_dims ? r.rotary_dims : head_dim, r.base != 0.0f ? r.base : 10000.0,
          r.linear_scale != 0.0f ? r.linear_scale : 1.0};
}

relattn_status CheckResolved(const Resolved& r, const relattn_rope& rope, int32_t head_dim,
                             const char* prefix) {
  if (r.rotary_dims < 2 || r.rotary_dims > head_dim || r.rotary_dims % 2 != 0) {
    return Fail(RELATTN_ERR_BAD_ROPE,
                "%srotary_dims = %d: must be even and in 2..head_dim = %d (0 = head_dim, "
                "which must then be even)",
                prefix, r.rotary_dims, head_dim);
  }
  if (!(r.base > 1.0) || !std::isfinite(r.base)) {
    return Fail(RELATTN_ERR_BAD_ROPE, "%sbase = %g: must be finite and > 1 (0 = 10000)", prefix,
                (double)rope.base);
  }
  if (!(r.linear_scale >= 1e-6) || !std::isfinite(r.linear_scale)) {
    return Fail(RELATTN_ERR_BAD_ROPE, "%slinear_scale = %g: must be finite and >= 1e-6 (0 = 1)",
                prefix, (double)rope.linear_scale);
  }
  return RELATTN_OK;
}

// 2 pi as a sum of two doubles (hi + lo to about 2^-107 relative).
constexpr double kTwoPiHi = 6.283185307179586232;
constexpr double kTwoPiLo = 2.4492935982947064e-16;

}  // namespace

relattn_status ResolveRope(const relattn_rope& rope, int32_t head_dim, const char* prefix,
                           RopeParams* out) {
  out->on = false;
  if (rope.pairing == RELATTN_ROPE_NONE) return RELATTN_OK;
  if (rope.pairing != RELATTN_ROPE_INTERLEAVED && rope.pairing != RELATTN_ROPE_HALVES) {
    return Fail(RELATTN_ERR_BAD_ROPE,
                "%spairing = %d: must be RELATTN_ROPE_NONE, _INTERLEAVED or _HALVES", prefix,
                static_cast<int>(rope.pairing));
  }
  const Resolved r = Defaults(rope, head_dim);
  double theta[kRopeMaxPairs], attention_factor;
  relattn_status s;
  if ((s = CheckResolved(r, rope, head_dim, prefix)) ||
      (s = ResolveRopeScaling(rope.scaling, r.rotary_dims, r.base, prefix, theta,
                              &attention_factor))) {
    return s;
  }
  out->on = true;
  out->interleaved = r.pairing == RELATTN_ROPE_INTERLEAVED;
  out->pairs = r.rotary_dims / 2;
  out->attention_factor = attention_factor;
  for (int32_t i = 0; i < out->pairs; ++i) out->theta[i] = theta[i] / r.linear_scale;
  return RELATTN_OK;
}

bool SameRope(const RopeParams& a, const RopeParams& b) {
  if (!a.on || !b.on) return a.on == b.on;
  if (a.interleaved != b.interleaved || a.pairs != b.pairs ||
      a.attention_factor != b.attention_factor) {
    return false;
  }
  return std::equal(a.theta, a.theta + a.pairs, b.theta);
}

bool PlausibleRope(const RopeParams& p, int32_t head_dim) {
  if (!p.on) return true;
  if (p.pairs < 1 || 2 * p.pairs > head_dim || !(p.attention_factor > 0.0) ||
      !std::isfinite(p.attention_factor)) {
    return false;
  }
  return std::all_of(p.theta, p.theta + p.pairs,
                     [](double t) { return t > 0.0 && std::isfinite(t); });
}

void RopeSinCos(double x, double theta, double* sin_out, double* cos_out) {
  // x * theta = prod + err exactly (x is an integer below 2^53).
  const double prod = x * theta;
  const double err = std::fma(x, theta, -prod);
  const double k = std::nearbyint(prod * (1.0 / kTwoPiHi));
  // prod - k * hi is exact (both are multiples of ulp(hi) and the difference
  // is below 8), so the fma rounds nothing away.
  double r = std::fma(-k, kTwoPiHi, prod);
  r = std::fma(-k, kTwoPiLo, r) + err;
  *sin_out = std::sin(r);
  *cos_out = std::cos(r);
}

void RopeAnglesAt(const RopeParams& rope, int64_t p, RopeAngles* out) {
  for (int32_t i = 0; i < rope.pairs; ++i) {
    RopeSinCos(static_cast<double>(p), rope.theta[i], &out->sin[i], &out->cos[i]);
    out->sin[i] *= rope.attention_factor;
    out->cos[i] *= rope.attention_factor;
  }
}

void RotateRowScalar(const RopeParams& rope, const RopeAngles& angles, float* row) {
  const int32_t half = rope.pairs;
  for (int32_t i = 0; i < half; ++i) {
    const double s = angles.sin[i], c = angles.cos[i];
    float* x0 = rope.interleaved ? row + 2 * i : row + i;
    float* x1 = rope.interleaved ? row + 2 * i + 1 : row + i + half;
    const double a = *x0, b = *x1;
    *x0 = static_cast<float>(a * c - b * s);
    *x1 = static_cast<float>(a * s + b * c);
  }
}

int64_t RopeTableFloats(int32_t pairs) { return kRopeLowSteps * pairs * (2 + 4); }

void FillRopeTables(const RopeParams& rope, float* tables) {
  const int32_t n = rope.pairs;
  float* low_cos = tables;
  float* low_sin = low_cos + kRopeLowSteps * n;
  double* mid_cos = reinterpret_cast<double*>(low_sin + kRopeLowSteps * n);
  double* mid_sin = mid_cos + kRopeLowSteps * n;
  for (int32_t i = 0; i < n; ++i) {
    // Powers of e^(i theta) and of e^(i 64 theta) by complex products in
    // double: 63 steps add far less than an f32 ulp of rounding.
    double step_s, step_c, big_s, big_c;
    RopeSinCos(1.0, rope.theta[i], &step_s, &step_c);
    RopeSinCos(static_cast<double>(kRopeLowSteps), rope.theta[i], &big_s, &big_c);
    double c = 1.0, s = 0.0, mc = 1.0, ms = 0.0;
    for (int64_t t = 0; t < kRopeLowSteps; ++t) {
      low_cos[t * n + i] = static_cast<float>(c * rope.attention_factor);
      low_sin[t * n + i] = static_cast<float>(s * rope.attention_factor);
      mid_cos[t * n + i] = mc;
      mid_sin[t * n + i] = ms;
      const double c2 = c * step_c - s * step_s, s2 = s * step_c + c * step_s;
      c = c2;
      s = s2;
      const double mc2 = mc * big_c - ms * big_s, ms2 = ms * big_c + mc * big_s;
      mc = mc2;
      ms = ms2;
    }
  }
}

}  // namespace relattn
