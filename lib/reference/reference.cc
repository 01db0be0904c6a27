#include "lib/reference/reference.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace relattn::reference {
namespace {

constexpr double kMasked = -std::numeric_limits<double>::infinity();

int64_t Position(const relattn_positions& p, int64_t t) {
  return p.positions != nullptr ? p.positions[t] : p.start + t;
}

// a - b; a valid desc guarantees it fits in int64.
int64_t Difference(int64_t a, int64_t b) {
  int64_t d;
  const bool overflow = __builtin_sub_overflow(a, b, &d);
  assert(!overflow);
  (void)overflow;
  return d;
}

double Element(const relattn_tensor& t, int64_t token, int64_t head, int64_t e) {
  const int64_t i = token * t.token_stride + head * t.head_stride + e;
  switch (t.dtype) {
    case RELATTN_F32: return static_cast<const float*>(t.data)[i];
    case RELATTN_F16: return F16ToDouble(static_cast<const uint16_t*>(t.data)[i]);
    case RELATTN_BF16: {  // the top half of an f32
      const uint32_t bits = uint32_t{static_cast<const uint16_t*>(t.data)[i]} << 16;
      float f;
      std::memcpy(&f, &bits, sizeof(f));
      return f;
    }
    case RELATTN_I8: {
      const double scale = t.row_scales[token * t.scale_token_stride + head * t.scale_head_stride];
      return scale * static_cast<const int8_t*>(t.data)[i];
    }
    default: break;  // out-of-range values: handled below
  }
  assert(false && "unknown dtype");
  return 0;
}

int32_t PowerOfTwoAtMost(int32_t n) { return 1 << static_cast<int>(std::floor(std::log2(n))); }

// ALiBi paper: get_slopes_power_of_2(n)[i] = start * ratio**i,
// start = ratio = 2**(-2**-(log2(n) - 3)).
double PaperSlopePowerOf2(int32_t n, int32_t i) {
  const double start = std::pow(2.0, -std::pow(2.0, -(std::log2(n) - 3)));
  return start * std::pow(start, i);
}

// ALiBi paper, get_slopes(n)[h]: get_slopes_power_of_2(P) for the closest power of two P <= n,
// then get_slopes(2 * P)[0::2] for the remaining heads.
double PaperSlope(int32_t n, int32_t h) {
  const int32_t p = PowerOfTwoAtMost(n);
  if (p == n || h < p) return PaperSlopePowerOf2(p, h);
  return PaperSlope(2 * p, 2 * (h - p));
}

// ggml (soft_max / flash_attn_ext): n_head_log2 = 2^floor(log2(n_head)),
// m0 = 2^(-max_bias / n_head_log2), m1 = 2^(-(max_bias / 2) / n_head_log2),
// slope = h < n_head_log2 ? m0^(h + 1) : m1^(2 * (h - n_head_log2) + 1).
double GgmlSlope(int32_t n_head, int32_t h, double max_bias) {
  const int32_t n_head_log2 = PowerOfTwoAtMost(n_head);
  const double m0 = std::pow(2.0, -max_bias / n_head_log2);
  const double m1 = std::pow(2.0, -(max_bias / 2) / n_head_log2);
  return h < n_head_log2 ? std::pow(m0, h + 1) : std::pow(m1, 2 * (h - n_head_log2) + 1);
}

double T5TableEntry(const relattn_t5& t5, int32_t head, int32_t bucket) {
  const int64_t i = int64_t{head} * t5.num_buckets + bucket;
  switch (t5.table_dtype) {
    case RELATTN_F32: return static_cast<const float*>(t5.table)[i];
    case RELATTN_F16: return F16ToDouble(static_cast<const uint16_t*>(t5.table)[i]);
    case RELATTN_I8: return double{t5.table_scales[head]} * static_cast<const int8_t*>(t5.table)[i];
    default: break;  // out-of-range values: handled below
  }
  assert(false && "unknown table dtype");
  return 0;
}

// ALiBi's slope of head h: the caller's, or the default of max_bias.
double HeadSlope(const relattn_alibi& alibi, int32_t n_heads, int32_t h) {
  return alibi.slopes != nullptr ? alibi.slopes[h] : AlibiSlope(h, n_heads, alibi.max_bias);
}

// ALiBi's distance: |p_q - p_k| (bidirectional) or p_q - p_k (causal form).
int64_t AlibiDistance(const relattn_alibi& alibi, int64_t pq, int64_t pk) {
  const int64_t r = Difference(pq, pk);
  return alibi.causal ? r : (r < 0 ? -r : r);
}

// b_h(p_q, p_k) of desc's scheme, less a constant of the query row that the
// softmax ignores: for ALiBi, -m * (distance - anchor) with anchor the row's
// smallest visible distance, so that double arithmetic stays exact where
// offsets exceed 2^53 (the int64 difference is exact; -m * distance alone
// would round the distances themselves).
double Bias(const relattn_attention_desc& desc, int32_t h, int64_t pq, int64_t pk, int64_t anchor) {
  const relattn_bias& bias = desc.bias;
  switch (bias.kind) {
    case RELATTN_BIAS_NONE: return 0;
    case RELATTN_BIAS_ALIBI: {
      const relattn_alibi& alibi = bias.alibi;
      const double m = HeadSlope(alibi, desc.n_heads, h);
      return -m * static_cast<double>(AlibiDistance(alibi, pq, pk) - anchor);
    }
    case RELATTN_BIAS_T5: {
      const relattn_t5& t5 = bias.t5;
      return T5TableEntry(
          t5, h,
          T5Bucket(Difference(pk, pq), t5.num_buckets, t5.max_distance, t5.bidirectional != 0));
    }
    case RELATTN_BIAS_SHAW: {
      const int64_t k = bias.shaw.k;
      const int64_t column = std::clamp(Difference(pk, pq), -k, k) + k;
      return bias.shaw.table[h * (2 * k + 1) + column];
    }
    case RELATTN_BIAS_SHAW_VECTOR: return 0;  // in the content product: see Attention
    default: break;                           // out-of-range values: handled below
  }
  assert(false && "unknown bias kind");
  return 0;
}

// What Bias() adds to every score of a row beyond the scheme's bias, given
// the row's anchor: m * anchor for ALiBi, else 0.
double AlibiDroppedConstant(const relattn_attention_desc& desc, int32_t h, int64_t anchor) {
  if (desc.bias.kind != RELATTN_BIAS_ALIBI) return 0;
  const relattn_alibi& alibi = desc.bias.alibi;
  const double m = HeadSlope(alibi, desc.n_heads, h);
  return m * static_cast<double>(anchor);
}

// Whether key j (at pk) is visible to query i (at pq).
bool Visible(const relattn_mask& mask, int64_t i, int64_t j, int64_t pq, int64_t pk) {
  if (mask.n_valid_kv > 0 && j >= mask.n_valid_kv) return false;  // 0, -1: all keys
  if (j < mask.first_valid_kv) return false;
  if (mask.q_segments && mask.q_segments[i] != mask.k_segments[j]) return false;
  if (mask.allowed && j >= mask.allowed_key_offset) {
    const uint64_t bit = uint64_t(j - mask.allowed_key_offset);
    const uint64_t word = mask.allowed[uint64_t(i) * uint64_t(mask.allowed_row_words) + bit / 64];
    if (((word >> (bit % 64)) & 1) == 0) return false;
  }
  if (mask.causal && pk > pq) return false;
  if (mask.window > 0) {
    const int64_t d = Difference(pq, pk);
    return mask.causal ? d < mask.window : (d < mask.window && d > -mask.window);
  }
  return true;
}

// out[0..dv) = sum_j softmax(scores)_j * v[j][kv_head][.]; zeros if every score is masked.
// sink: the row's sink logit in the scores' frame, or kMasked for none: it
// joins the denominator only (gpt-oss), and the row keeps zeros if it sees no
// key. Returns ln sum_j e^(scores_j), the keys' part of the denominator, in
// the scores' frame (kMasked if the row sees no key).
double SoftmaxTimesV(const relattn_attention_desc& desc, const double* scores, double sink,
                     int32_t kv_head, int32_t dv, double* out) {
  std::fill(out, out + dv, 0.0);
  const double seen = *std::max_element(scores, scores + desc.n_kv);
  if (seen == kMasked) return kMasked;
  const double max = std::max(seen, sink);
  double sum = sink == kMasked ? 0.0 : std::exp(sink - max), keys = 0.0;
  for (int64_t j = 0; j < desc.n_kv; ++j) {
    if (scores[j] == kMasked) continue;
    const double w = std::exp(scores[j] - max);
    sum += w;
    keys += std::exp(scores[j] - seen);
    for (int32_t e = 0; e < dv; ++e) out[e] += w * Element(desc.v, j, kv_head, e);
  }
  for (int32_t e = 0; e < dv; ++e) out[e] /= sum;
  return seen + std::log(keys);
}

// ln(e^a + e^b), -inf terms allowed.
double LogAddExp(double a, double b) {
  if (a == kMasked) return b;
  if (b == kMasked) return a;
  const double top = std::max(a, b);
  return top + std::log(std::exp(a - top) + std::exp(b - top));
}

// The header's zero values: n_valid_kv 0 (all keys), ALiBi max_bias 0 (8),
// T5 num_buckets 0 (32) and max_distance 0 (128).
relattn_attention_desc WithDefaults(relattn_attention_desc d) {
  if (d.bias.alibi.max_bias == 0) d.bias.alibi.max_bias = 8;
  if (d.bias.t5.num_buckets == 0) d.bias.t5.num_buckets = 32;
  if (d.bias.t5.max_distance == 0) d.bias.t5.max_distance = 128;
  return d;
}

// Rows (token, head) of t as doubles, [n_tokens][n_heads][dim], each rotated
// by rope (pairing NONE: as stored) at its token's position: pair i of
// rotary_dims (default head_dim) turns by p * theta_i (RopeThetas) and is
// scaled by the attention factor, the product and its sin / cos in long double.
std::vector<double> RotatedRows(const relattn_tensor& t, const relattn_positions& pos,
                                int64_t n_tokens, int32_t n_heads, int32_t dim,
                                const relattn_rope& rope) {
  std::vector<double> rows(static_cast<size_t>(n_tokens) * n_heads * dim);
  const int32_t rotary = rope.rotary_dims != 0 ? rope.rotary_dims : dim;
  double gain = 1.0;
  const std::vector<double> theta =
      rope.pairing == RELATTN_ROPE_NONE ? std::vector<double>() : RopeThetas(rope, dim, &gain);
  for (int64_t token = 0; token < n_tokens; ++token) {
    const long double p = static_cast<long double>(Position(pos, token));
    for (int32_t h = 0; h < n_heads; ++h) {
      double* x = &rows[(static_cast<size_t>(token) * n_heads + h) * dim];
      for (int32_t e = 0; e < dim; ++e) x[e] = Element(t, token, h, e);
      if (rope.pairing == RELATTN_ROPE_NONE) continue;
      const int32_t half = rotary / 2;
      for (int32_t i = 0; i < half; ++i) {
        const long double angle = p * static_cast<long double>(theta[i]);
        const long double c = gain * std::cos(angle), sn = gain * std::sin(angle);
        const bool interleaved = rope.pairing == RELATTN_ROPE_INTERLEAVED;
        double& x0 = interleaved ? x[2 * i] : x[i];
        double& x1 = interleaved ? x[2 * i + 1] : x[i + half];
        const long double a = x0, b = x1;
        x0 = static_cast<double>(a * c - b * sn);
        x1 = static_cast<double>(a * sn + b * c);
      }
    }
  }
  return rows;
}

constexpr double kPi = 3.14159265358979323846;

// Meta's apply_scaling (llama3 RoPE) on inv_freq, in place.
void Llama3Scaling(const relattn_rope_scaling& s, std::vector<double>& inv_freq) {
  const double old_context_len = static_cast<double>(s.original_max_position);
  const double low_freq_wavelen = old_context_len / s.low_freq_factor;
  const double high_freq_wavelen = old_context_len / s.high_freq_factor;
  for (double& freq : inv_freq) {
    const double wavelen = 2 * kPi / freq;
    if (wavelen < high_freq_wavelen) {
      // high frequency: kept
    } else if (wavelen > low_freq_wavelen) {
      freq = freq / s.factor;
    } else {
      const double smooth = (old_context_len / wavelen - s.low_freq_factor) /
                            (s.high_freq_factor - s.low_freq_factor);
      freq = (1 - smooth) * freq / s.factor + smooth * freq;
    }
  }
}

// YaRN (Peng et al.; HF _compute_yarn_parameters): the blend of the
// interpolated and extrapolated frequencies by the linear ramp mask.
void YarnScaling(const relattn_rope_scaling& s, int32_t dim, double base,
                 std::vector<double>& inv_freq) {
  const double max_pos = static_cast<double>(s.original_max_position);
  auto find_correction_dim = [&](double num_rotations) {
    return (dim * std::log(max_pos / (num_rotations * 2 * kPi))) / (2 * std::log(base));
  };
  double low = find_correction_dim(s.beta_fast != 0 ? s.beta_fast : 32.0);
  double high = find_correction_dim(s.beta_slow != 0 ? s.beta_slow : 1.0);
  if (s.no_truncate == 0) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, dim - 1.0);
  if (low == high) high += 0.001;
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    const double ramp = std::min(std::max((i - low) / (high - low), 0.0), 1.0);
    const double extrapolation_factor = 1 - ramp;
    const double interpolation = inv_freq[i] / s.factor, extrapolation = inv_freq[i];
    inv_freq[i] = interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor;
  }
}

}  // namespace

std::vector<double> RopeThetas(const relattn_rope& rope, int32_t head_dim, double* gain) {
  const relattn_rope_scaling& s = rope.scaling;
  const int32_t dim = rope.rotary_dims != 0 ? rope.rotary_dims : head_dim;
  double base = rope.base != 0 ? rope.base : 10000.0;
  const double linear_scale = rope.linear_scale != 0 ? rope.linear_scale : 1.0;
  if (s.type == RELATTN_ROPE_SCALING_NTK) base = base * std::pow(s.factor, dim / (dim - 2.0));
  std::vector<double> inv_freq(static_cast<size_t>(dim / 2));
  for (int32_t i = 0; i < dim / 2; ++i) inv_freq[i] = std::pow(base, -2.0 * i / dim);
  *gain = 1.0;
  switch (s.type) {
    case RELATTN_ROPE_SCALING_LINEAR:
      for (double& f : inv_freq) f = f / s.factor;
      break;
    case RELATTN_ROPE_SCALING_LLAMA3: Llama3Scaling(s, inv_freq); break;
    case RELATTN_ROPE_SCALING_YARN:
      YarnScaling(s, dim, base, inv_freq);
      *gain = s.factor <= 1 ? 1.0 : 0.1 * std::log(s.factor) + 1.0;
      break;
    case RELATTN_ROPE_SCALING_LONGROPE: {
      const double* ext =
          s.sequence_length > s.original_max_position ? s.long_factor : s.short_factor;
      for (size_t i = 0; i < inv_freq.size(); ++i) inv_freq[i] = inv_freq[i] / ext[i];
      const double factor =
          static_cast<double>(s.max_position) / static_cast<double>(s.original_max_position);
      *gain = factor <= 1.0
                  ? 1.0
                  : std::sqrt(1 + std::log(factor) /
                                      std::log(static_cast<double>(s.original_max_position)));
      break;
    }
    case RELATTN_ROPE_SCALING_INV_FREQ: inv_freq.assign(s.inv_freq, s.inv_freq + dim / 2); break;
    default: break;
  }
  if (s.attention_factor != 0) *gain = s.attention_factor;
  for (double& f : inv_freq) f = f / linear_scale;
  return inv_freq;
}

double F16ToDouble(uint16_t bits) {
  const double sign = (bits & 0x8000) != 0 ? -1.0 : 1.0;
  const int exponent = (bits >> 10) & 0x1f;
  const int fraction = bits & 0x3ff;
  if (exponent == 0x1f) {
    return fraction != 0 ? std::numeric_limits<double>::quiet_NaN()
                         : sign * std::numeric_limits<double>::infinity();
  }
  if (exponent == 0) return sign * std::ldexp(fraction, -24);  // 0.fraction * 2^-14
  return sign * std::ldexp(1024 + fraction, exponent - 25);    // 1.fraction * 2^(exponent - 15)
}

float AlibiSlope(int32_t head, int32_t n_heads, float max_bias) {
  const double slope =
      max_bias == 8 ? PaperSlope(n_heads, head) : GgmlSlope(n_heads, head, max_bias);
  return static_cast<float>(slope);
}

// HF transformers, T5Attention._relative_position_bucket, one element at a time; torch's float32
// tensor arithmetic becomes float arithmetic, math.log stays double.
int32_t T5Bucket(int64_t relative_position, int32_t num_buckets, int32_t max_distance,
                 bool bidirectional) {
  int32_t relative_buckets = 0;
  uint64_t n;  // relative_position made non-negative, exactly
  const uint64_t magnitude = relative_position < 0 ? 0 - static_cast<uint64_t>(relative_position)
                                                   : static_cast<uint64_t>(relative_position);
  if (bidirectional) {
    num_buckets /= 2;
    relative_buckets += relative_position > 0 ? num_buckets : 0;
    n = magnitude;
  } else {
    n = relative_position < 0 ? magnitude : 0;
  }
  const int32_t max_exact = num_buckets / 2;
  if (n < static_cast<uint64_t>(max_exact)) return relative_buckets + static_cast<int32_t>(n);
  const float log_ratio = std::log(static_cast<float>(n) / static_cast<float>(max_exact));
  const float log_max = static_cast<float>(std::log(static_cast<double>(max_distance) / max_exact));
  const float scaled = log_ratio / log_max * static_cast<float>(num_buckets - max_exact);
  const int64_t if_large = max_exact + static_cast<int64_t>(scaled);
  return relative_buckets + static_cast<int32_t>(std::min<int64_t>(if_large, num_buckets - 1));
}

void Attention(const relattn_attention_desc& given, double* out, double* lse) {
  const relattn_attention_desc desc = WithDefaults(given);
  assert(desc.n_q >= 1 && desc.n_kv >= 1 && desc.n_kv_heads >= 1);
  assert(desc.n_heads % desc.n_kv_heads == 0);
  const int32_t dv = desc.v_head_dim != 0 ? desc.v_head_dim : desc.head_dim;
  const double scale =
      desc.scale != 0 ? desc.scale : 1 / std::sqrt(static_cast<double>(desc.head_dim));
  const int32_t group = desc.n_heads / desc.n_kv_heads;
  const int32_t d = desc.head_dim;
  const std::vector<double> q =
      RotatedRows(desc.q, desc.q_pos, desc.n_q, desc.n_heads, d, desc.rope);
  const std::vector<double> k =
      RotatedRows(desc.k, desc.k_pos, desc.n_kv, desc.n_kv_heads, d, desc.rope);
  std::vector<double> scores(desc.n_q * desc.n_kv), sinks(desc.n_q), dropped(desc.n_q);
  for (int32_t h = 0; h < desc.n_heads; ++h) {
    const int32_t kv_head = h / group;
    for (int64_t i = 0; i < desc.n_q; ++i) {
      const int64_t pq = Position(desc.q_pos, i);
      int64_t anchor = INT64_MAX;  // the row's smallest visible ALiBi distance
      bool sees_a_key = false;     // (INT64_MAX is also a distance)
      for (int64_t j = 0; j < desc.n_kv; ++j) {
        const int64_t pk = Position(desc.k_pos, j);
        if (Visible(desc.mask, i, j, pq, pk)) {
          anchor = std::min(anchor, AlibiDistance(desc.bias.alibi, pq, pk));
          sees_a_key = true;
        }
      }
      for (int64_t j = 0; j < desc.n_kv; ++j) {
        const int64_t pk = Position(desc.k_pos, j);
        double& s = scores[i * desc.n_kv + j];
        if (!Visible(desc.mask, i, j, pq, pk)) {
          s = kMasked;
          continue;
        }
        const double* qi = &q[(static_cast<size_t>(i) * desc.n_heads + h) * d];
        const double* kj = &k[(static_cast<size_t>(j) * desc.n_kv_heads + kv_head) * d];
        double dot = 0;
        for (int32_t e = 0; e < d; ++e) dot += qi[e] * kj[e];
        if (desc.bias.kind == RELATTN_BIAS_SHAW_VECTOR) {  // Shaw et al.: q . (k + a[r])
          const relattn_shaw_vector& sv = desc.bias.shaw_vector;
          const int64_t k = sv.k;
          const int64_t r = std::clamp(Difference(pk, pq), -k, k) + k;
          const float* a = sv.table + ((sv.per_head ? h * (2 * k + 1) : 0) + r) * d;
          for (int32_t e = 0; e < d; ++e) dot += qi[e] * a[e];
        }
        const double content = scale * dot;
        s = (desc.softcap > 0 ? desc.softcap * std::tanh(content / desc.softcap) : content) +
            Bias(desc, h, pq, pk, anchor);
      }
      // Bias() drops -m * anchor from every ALiBi score of the row: so does the sink.
      dropped[i] = sees_a_key ? AlibiDroppedConstant(desc, h, anchor) : 0;
      sinks[i] = !desc.sinks ? kMasked : desc.sinks[h] + dropped[i];
    }
    for (int64_t i = 0; i < desc.n_q; ++i) {
      const double row_lse = SoftmaxTimesV(desc, &scores[i * desc.n_kv], sinks[i], kv_head, dv,
                                           out + (i * desc.n_heads + h) * dv);
      // The keys' part out of the frame Bias() used (the dropped ALiBi
      // constant back), then the sink in natural units: no precision lost to
      // a large frame shift.
      const double keys = row_lse == kMasked ? kMasked : row_lse - dropped[i];
      if (lse) lse[i * desc.n_heads + h] = LogAddExp(keys, desc.sinks ? desc.sinks[h] : kMasked);
    }
  }
}

}  // namespace relattn::reference
