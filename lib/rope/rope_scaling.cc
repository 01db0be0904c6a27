#include "lib/rope/rope_scaling.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>

#include "lib/common/error.h"

namespace relattn {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Checks one field: `ok`, else RELATTN_ERR_BAD_ROPE "<prefix>scaling.<name> = <value>: <rule>".
relattn_status Need(bool ok, const char* prefix, const char* name, double value, const char* rule) {
  if (ok) return RELATTN_OK;
  return Fail(RELATTN_ERR_BAD_ROPE, "%sscaling.%s = %g: %s", prefix, name, value, rule);
}

bool Positive(double x) { return std::isfinite(x) && x > 0.0; }

// The fields a family does not read must be left zero (a value there is a
// mistake the caller should hear about).
relattn_status CheckUnused(const relattn_rope_scaling& s, const char* prefix) {
  const relattn_rope_scaling_type t = s.type;
  const bool llama3 = t == RELATTN_ROPE_SCALING_LLAMA3, yarn = t == RELATTN_ROPE_SCALING_YARN;
  const bool longrope = t == RELATTN_ROPE_SCALING_LONGROPE;
  const bool uses_factor =
      t == RELATTN_ROPE_SCALING_LINEAR || t == RELATTN_ROPE_SCALING_NTK || llama3 || yarn;
  struct Field {
    const char* name;
    bool used, set;
  } fields[] = {{"factor", uses_factor, s.factor != 0.0f},
                {"low_freq_factor", llama3, s.low_freq_factor != 0.0f},
                {"high_freq_factor", llama3, s.high_freq_factor != 0.0f},
                {"beta_fast", yarn, s.beta_fast != 0.0f},
                {"beta_slow", yarn, s.beta_slow != 0.0f},
                {"no_truncate", yarn, s.no_truncate != 0},
                {"original_max_position", llama3 || yarn || longrope, s.original_max_position != 0},
                {"max_position", longrope, s.max_position != 0},
                {"sequence_length", longrope, s.sequence_length != 0},
                {"short_factor", longrope, s.short_factor != nullptr},
                {"long_factor", longrope, s.long_factor != nullptr},
                {"inv_freq", t == RELATTN_ROPE_SCALING_INV_FREQ, s.inv_freq != nullptr}};
  for (const Field& f : fields) {
    if (!f.used && f.set) {
      return Fail(RELATTN_ERR_BAD_ROPE, "%sscaling.%s is set: scaling.type %d does not use it",
                  prefix, f.name, static_cast<int>(t));
    }
  }
  return RELATTN_OK;
}

relattn_status CheckPositionField(int64_t v, int64_t lo, const char* prefix, const char* name) {
  if (v >= lo && v <= RELATTN_MAX_TOKENS) return RELATTN_OK;
  return Fail(RELATTN_ERR_BAD_ROPE, "%sscaling.%s = %" PRId64 ": must be in %" PRId64 "..2^40",
              prefix, name, v, lo);
}

// A [n] table of finite positive doubles.
relattn_status CheckTable(const double* t, int32_t n, const char* prefix, const char* name) {
  if (!t) {
    return Fail(RELATTN_ERR_NULL_ARGUMENT, "%sscaling.%s is NULL: this scaling.type needs it",
                prefix, name);
  }
  for (int32_t i = 0; i < n; ++i) {
    if (!Positive(t[i])) {
      return Fail(RELATTN_ERR_BAD_ROPE, "%sscaling.%s[%d] = %g: must be finite and > 0", prefix,
                  name, i, t[i]);
    }
  }
  return RELATTN_OK;
}

// The family's own parameters (those CheckUnused lets through).
relattn_status CheckFamily(const relattn_rope_scaling& s, int32_t rotary_dims, const char* prefix) {
  const int32_t pairs = rotary_dims / 2;
  relattn_status st = RELATTN_OK;
  switch (s.type) {
    case RELATTN_ROPE_SCALING_NONE: return RELATTN_OK;
    case RELATTN_ROPE_SCALING_LINEAR:
      return Need(Positive(s.factor), prefix, "factor", s.factor, "must be finite and > 0");
    case RELATTN_ROPE_SCALING_NTK:
      if ((st = Need(Positive(s.factor), prefix, "factor", s.factor, "must be finite and > 0"))) {
        return st;
      }
      return Need(rotary_dims >= 4, prefix, "type", s.type,
                  "NTK needs rotary_dims >= 4 (base * factor^(d / (d - 2)))");
    case RELATTN_ROPE_SCALING_LLAMA3:
      if ((st = Need(Positive(s.factor), prefix, "factor", s.factor, "must be finite and > 0")) ||
          (st = Need(Positive(s.low_freq_factor), prefix, "low_freq_factor", s.low_freq_factor,
                     "must be finite and > 0")) ||
          (st = Need(std::isfinite(s.high_freq_factor) && s.high_freq_factor > s.low_freq_factor,
                     prefix, "high_freq_factor", s.high_freq_factor,
                     "must be finite and > low_freq_factor"))) {
        return st;
      }
      return CheckPositionField(s.original_max_position, 1, prefix, "original_max_position");
    case RELATTN_ROPE_SCALING_YARN:
      if ((st = Need(Positive(s.factor), prefix, "factor", s.factor, "must be finite and > 0")) ||
          (st = Need(s.beta_fast == 0.0f || Positive(s.beta_fast), prefix, "beta_fast", s.beta_fast,
                     "must be finite and > 0 (0 = 32)")) ||
          (st = Need(s.beta_slow == 0.0f || Positive(s.beta_slow), prefix, "beta_slow", s.beta_slow,
                     "must be finite and > 0 (0 = 1)"))) {
        return st;
      }
      return CheckPositionField(s.original_max_position, 1, prefix, "original_max_position");
    case RELATTN_ROPE_SCALING_LONGROPE:
      if ((st = CheckPositionField(s.original_max_position, 1, prefix, "original_max_position")) ||
          (st = CheckPositionField(s.max_position, 0, prefix, "max_position")) ||
          (st = CheckPositionField(s.sequence_length, 0, prefix, "sequence_length")) ||
          (st = CheckTable(s.short_factor, pairs, prefix, "short_factor"))) {
        return st;
      }
      return CheckTable(s.long_factor, pairs, prefix, "long_factor");
    case RELATTN_ROPE_SCALING_INV_FREQ: return CheckTable(s.inv_freq, pairs, prefix, "inv_freq");
    default: break;  // out-of-range values: below
  }
  return Fail(RELATTN_ERR_BAD_ROPE,
              "%sscaling.type = %d: must be NONE, LINEAR, NTK, LLAMA3, YARN, LONGROPE or INV_FREQ",
              prefix, static_cast<int>(s.type));
}

void Llama3Theta(const relattn_rope_scaling& s, int32_t pairs, double* theta) {
  const double low = s.low_freq_factor, high = s.high_freq_factor, factor = s.factor;
  const double context = static_cast<double>(s.original_max_position);
  for (int32_t i = 0; i < pairs; ++i) {
    const double wavelength = 2.0 * kPi / theta[i];
    if (wavelength < context / high) continue;
    if (wavelength > context / low) {
      theta[i] /= factor;
      continue;
    }
    const double smooth = (context / wavelength - low) / (high - low);
    theta[i] = (1.0 - smooth) * theta[i] / factor + smooth * theta[i];
  }
}

void YarnTheta(const relattn_rope_scaling& s, int32_t rotary_dims, double base, double* theta) {
  const double d = rotary_dims, context = static_cast<double>(s.original_max_position);
  const auto correction_dim = [&](double rotations) {
    return d * std::log(context / (rotations * 2.0 * kPi)) / (2.0 * std::log(base));
  };
  double lo = correction_dim(s.beta_fast != 0.0f ? s.beta_fast : 32.0);
  double hi = correction_dim(s.beta_slow != 0.0f ? s.beta_slow : 1.0);
  if (!s.no_truncate) {
    lo = std::floor(lo);
    hi = std::ceil(hi);
  }
  lo = std::max(lo, 0.0);
  hi = std::min(hi, d - 1.0);
  if (lo == hi) hi += 0.001;
  for (int32_t i = 0; i < rotary_dims / 2; ++i) {
    // HF's arithmetic: interpolation * (1 - extrapolation factor) + extrapolation * factor.
    const double extrapolation = 1.0 - std::clamp((i - lo) / (hi - lo), 0.0, 1.0);
    theta[i] = theta[i] / s.factor * (1.0 - extrapolation) + theta[i] * extrapolation;
  }
}

// The family's default attention factor.
double DefaultAttentionFactor(const relattn_rope_scaling& s) {
  if (s.type == RELATTN_ROPE_SCALING_YARN) {
    return s.factor <= 1.0f ? 1.0 : 0.1 * std::log(double{s.factor}) + 1.0;
  }
  if (s.type == RELATTN_ROPE_SCALING_LONGROPE) {
    const double ratio = static_cast<double>(s.max_position) / s.original_max_position;
    if (ratio <= 1.0) return 1.0;
    return std::sqrt(1.0 +
                     std::log(ratio) / std::log(static_cast<double>(s.original_max_position)));
  }
  return 1.0;
}

}  // namespace

relattn_status ResolveRopeScaling(const relattn_rope_scaling& s, int32_t rotary_dims, double base,
                                  const char* prefix, double* theta, double* attention_factor) {
  relattn_status st;
  if ((st = CheckFamily(s, rotary_dims, prefix)) || (st = CheckUnused(s, prefix)) ||
      (st = Need(s.attention_factor == 0.0f || Positive(s.attention_factor), prefix,
                 "attention_factor", s.attention_factor,
                 "must be finite and > 0 (0 = the family's default)"))) {
    return st;
  }
  const int32_t pairs = rotary_dims / 2;
  const double ntk_base = s.type == RELATTN_ROPE_SCALING_NTK
                              ? base * std::pow(double{s.factor}, rotary_dims / (rotary_dims - 2.0))
                              : base;
  for (int32_t i = 0; i < pairs; ++i) theta[i] = std::pow(ntk_base, -2.0 * i / rotary_dims);
  switch (s.type) {
    case RELATTN_ROPE_SCALING_LINEAR:
      for (int32_t i = 0; i < pairs; ++i) theta[i] /= s.factor;
      break;
    case RELATTN_ROPE_SCALING_LLAMA3: Llama3Theta(s, pairs, theta); break;
    case RELATTN_ROPE_SCALING_YARN: YarnTheta(s, rotary_dims, base, theta); break;
    case RELATTN_ROPE_SCALING_LONGROPE: {
      const bool long_ = s.sequence_length > s.original_max_position;
      const double* f = long_ ? s.long_factor : s.short_factor;
      for (int32_t i = 0; i < pairs; ++i) theta[i] /= f[i];
      break;
    }
    case RELATTN_ROPE_SCALING_INV_FREQ:
      for (int32_t i = 0; i < pairs; ++i) theta[i] = s.inv_freq[i];
      break;
    default: break;  // NONE, NTK: theta0 of their base
  }
  *attention_factor = s.attention_factor != 0.0f ? s.attention_factor : DefaultAttentionFactor(s);
  return RELATTN_OK;
}

}  // namespace relattn
