#include "lib/api/validate.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>

#include "lib/api/validate_memory.h"
#include "lib/api/validate_tensor.h"
#include "lib/bias/t5.h"
#include "lib/common/dtype.h"
#include "lib/common/error.h"
#include "lib/rope/rope.h"

namespace relattn {
namespace {

const char* DtypeName(relattn_dtype dtype) {
  switch (dtype) {
    case RELATTN_F32: return "F32";
    case RELATTN_F16: return "F16";
    case RELATTN_BF16: return "BF16";
    case RELATTN_I8: return "I8";
    case RELATTN_Q4: return "Q4";
    default: break;  // out-of-range values: handled below
  }
  return "unknown";
}

relattn_status CheckRange(const char* name, int64_t value, int64_t lo, int64_t hi,
                          relattn_status status) {
  if (value >= lo && value <= hi) return RELATTN_OK;
  return Fail(status, "%s = %" PRId64 ": must be in %" PRId64 "..%" PRId64, name, value, lo, hi);
}

// Range [min, max] of the positions of n tokens; fails if start + n - 1 overflows.
relattn_status PositionRange(const char* name, const relattn_positions& pos, int64_t n,
                             int64_t* min, int64_t* max) {
  if (!pos.positions) {
    if (__builtin_add_overflow(pos.start, n - 1, max)) {
      return Fail(RELATTN_ERR_POSITION_OVERFLOW,
                  "%s.start = %" PRId64 ": start + %" PRId64 " overflows int64", name, pos.start,
                  n - 1);
    }
    *min = pos.start;
    return RELATTN_OK;
  }
  *min = *max = pos.positions[0];
  for (int64_t t = 1; t < n; ++t) {
    if (pos.positions[t] < *min) *min = pos.positions[t];
    if (pos.positions[t] > *max) *max = pos.positions[t];
  }
  return RELATTN_OK;
}

// Every difference of two positions (query or key) must fit in int64.
// Stores the range of key positions in [*k_min, *k_max].
relattn_status CheckPositions(const relattn_attention_desc& d, int64_t* k_min_out,
                              int64_t* k_max_out) {
  int64_t q_min = 0, q_max = 0, k_min = 0, k_max = 0;
  relattn_status s = PositionRange("q_pos", d.q_pos, d.n_q, &q_min, &q_max);
  if (s == RELATTN_OK) s = PositionRange("k_pos", d.k_pos, d.n_kv, &k_min, &k_max);
  if (s != RELATTN_OK) return s;
  int64_t q_minus_k, k_minus_q, key_span, query_span;
  if (__builtin_sub_overflow(q_max, k_min, &q_minus_k) ||
      __builtin_sub_overflow(k_max, q_min, &k_minus_q) ||
      __builtin_sub_overflow(k_max, k_min, &key_span) ||
      __builtin_sub_overflow(q_max, q_min, &query_span)) {
    return Fail(RELATTN_ERR_POSITION_OVERFLOW,
                "positions: query [%" PRId64 ", %" PRId64 "] and key [%" PRId64 ", %" PRId64
                "] differ by more than INT64_MAX",
                q_min, q_max, k_min, k_max);
  }
  *k_min_out = k_min;
  *k_max_out = k_max;
  return RELATTN_OK;
}

// Scores and biases are kept in log2 units in f32: a value v becomes
// v * log2(e), finite for |v| <= 2^127 (a product of a table scale and an
// int8 entry included).
inline constexpr float kMaxBiasMagnitude = 0x1p127f;

// values[0, n) finite and |values[i]| * per_unit <= 2^127.
relattn_status CheckBiasValues(const char* name, const float* values, int64_t n,
                               float per_unit = 1.0f) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(values[i]) || std::fabs(values[i]) * per_unit > kMaxBiasMagnitude) {
      return Fail(RELATTN_ERR_BAD_BIAS_PARAMETER,
                  "%s[%" PRId64 "] = %g: must be finite%s, |x| <= 2^127 (kept in log2 units)", name,
                  i, (double)values[i], per_unit != 1.0f ? " and, times 127," : " and");
    }
  }
  return RELATTN_OK;
}

relattn_status CheckAlibi(const relattn_alibi& a, int32_t n_heads) {
  if (a.slopes) {
    if (const relattn_status s = CheckAligned("bias.alibi.slopes", a.slopes, sizeof(float))) {
      return s;
    }
    return CheckBiasValues("bias.alibi.slopes", a.slopes, n_heads);
  }
  if (!(std::isfinite(a.max_bias) && a.max_bias > 0.0f)) {
    return Fail(RELATTN_ERR_BAD_BIAS_PARAMETER,
                "bias.alibi.max_bias = %g: must be finite and > 0 (0: 8) when slopes is NULL",
                (double)a.max_bias);
  }
  return RELATTN_OK;
}

relattn_status CheckT5(const relattn_t5& t, int32_t n_heads) {
  if (!t.table) {
    return Fail(RELATTN_ERR_NULL_ARGUMENT, "bias.kind = T5 needs bias.t5.table: it is NULL");
  }
  if (const relattn_status s =
          CheckT5Params(t.num_buckets, t.max_distance, t.bidirectional != 0, "bias.t5.")) {
    return s;
  }
  const int64_t n = (int64_t)n_heads * t.num_buckets;
  if (const relattn_status s = CheckAligned("bias.t5.table", t.table, DtypeBytes(t.table_dtype))) {
    return s;
  }
  switch (t.table_dtype) {
    case RELATTN_F32: return CheckBiasValues("bias.t5.table", (const float*)t.table, n);
    case RELATTN_F16: {
      const uint16_t* bits = (const uint16_t*)t.table;
      for (int64_t i = 0; i < n; ++i) {
        if ((bits[i] & 0x7c00) == 0x7c00) {
          return Fail(RELATTN_ERR_BAD_BIAS_PARAMETER,
                      "bias.t5.table[%" PRId64 "]: f16 inf or nan, must be finite", i);
        }
      }
      return RELATTN_OK;
    }
    case RELATTN_I8:
      if (!t.table_scales) {
        return Fail(RELATTN_ERR_NULL_ARGUMENT,
                    "bias.t5.table_scales is NULL: required for an I8 table");
      }
      return CheckBiasValues("bias.t5.table_scales", t.table_scales, n_heads, 127.0f);
    default: break;  // out-of-range values: handled below
  }
  return Fail(RELATTN_ERR_BAD_DTYPE, "bias.t5.table_dtype = %d: must be F32, F16 or I8",
              (int)t.table_dtype);
}

relattn_status CheckShaw(const relattn_shaw& sh, int32_t n_heads) {
  if (!sh.table) {
    return Fail(RELATTN_ERR_NULL_ARGUMENT, "bias.kind = SHAW needs bias.shaw.table: it is NULL");
  }
  relattn_status s = CheckRange("bias.shaw.k", sh.k, 0, 16384, RELATTN_ERR_BAD_BIAS_PARAMETER);
  if (s == RELATTN_OK) s = CheckAligned("bias.shaw.table", sh.table, sizeof(float));
  if (s != RELATTN_OK) return s;
  return CheckBiasValues("bias.shaw.table", sh.table, (int64_t)n_heads * (2 * sh.k + 1));
}

relattn_status CheckShawVector(const relattn_shaw_vector& sv, int32_t n_heads, int32_t head_dim) {
  if (!sv.table) {
    return Fail(RELATTN_ERR_NULL_ARGUMENT,
                "bias.kind = SHAW_VECTOR needs bias.shaw_vector.table: it is NULL");
  }
  relattn_status s =
      CheckRange("bias.shaw_vector.k", sv.k, 0, kShawVectorMaxK, RELATTN_ERR_BAD_BIAS_PARAMETER);
  if (s == RELATTN_OK) s = CheckAligned("bias.shaw_vector.table", sv.table, sizeof(float));
  if (s != RELATTN_OK) return s;
  const int64_t tables = sv.per_head ? n_heads : 1;
  return CheckBiasValues("bias.shaw_vector.table", sv.table, tables * (2 * sv.k + 1) * head_dim);
}

relattn_status CheckBias(const relattn_bias& b, int32_t n_heads, int32_t head_dim) {
  switch (b.kind) {
    case RELATTN_BIAS_NONE: return RELATTN_OK;
    case RELATTN_BIAS_ALIBI: return CheckAlibi(b.alibi, n_heads);
    case RELATTN_BIAS_T5: return CheckT5(b.t5, n_heads);
    case RELATTN_BIAS_SHAW: return CheckShaw(b.shaw, n_heads);
    case RELATTN_BIAS_SHAW_VECTOR: return CheckShawVector(b.shaw_vector, n_heads, head_dim);
    default: break;  // out-of-range values: handled below
  }
  return Fail(RELATTN_ERR_BAD_BIAS_KIND,
              "bias.kind = %d: must be NONE, ALIBI, T5, SHAW or SHAW_VECTOR", (int)b.kind);
}

relattn_status CheckShape(const relattn_attention_desc& d) {
  relattn_status s = RELATTN_OK;
  if ((s = CheckRange("n_q", d.n_q, 1, RELATTN_MAX_TOKENS, RELATTN_ERR_BAD_DIMENSION)) ||
      (s = CheckRange("n_kv", d.n_kv, 1, RELATTN_MAX_TOKENS, RELATTN_ERR_BAD_DIMENSION)) ||
      (s = CheckRange("n_heads", d.n_heads, 1, RELATTN_MAX_HEADS, RELATTN_ERR_BAD_DIMENSION)) ||
      (s = CheckRange("n_kv_heads", d.n_kv_heads, 1, d.n_heads, RELATTN_ERR_BAD_DIMENSION)) ||
      (s = CheckRange("head_dim", d.head_dim, 1, RELATTN_MAX_HEAD_DIM,
                      RELATTN_ERR_BAD_DIMENSION)) ||
      (s = CheckRange("v_head_dim", d.v_head_dim, 0, RELATTN_MAX_HEAD_DIM,
                      RELATTN_ERR_BAD_DIMENSION))) {
    return s;
  }
  if (d.n_heads % d.n_kv_heads != 0) {
    return Fail(RELATTN_ERR_BAD_GQA_RATIO, "n_heads = %d: must be a multiple of n_kv_heads = %d",
                d.n_heads, d.n_kv_heads);
  }
  return RELATTN_OK;
}

relattn_status CheckIo(const relattn_attention_desc& d, int32_t dv) {
  relattn_status s;
  if (d.q.dtype == RELATTN_Q4) {
    return Fail(RELATTN_ERR_UNSUPPORTED, "q.dtype = Q4: only k and v may be Q4 (q: F32, F16, I8)");
  }
  if ((s = CheckTensor("q", d.q, d.n_q, d.n_heads, d.head_dim, nullptr)) ||
      (s = CheckTensor("k", d.k, d.n_kv, d.n_kv_heads, d.head_dim, nullptr)) ||
      (s = CheckTensor("v", d.v, d.n_kv, d.n_kv_heads, dv, nullptr))) {
    return s;
  }
  if (d.q.dtype == RELATTN_I8 && d.k.dtype != RELATTN_I8) {
    return Fail(RELATTN_ERR_UNSUPPORTED, "q.dtype = I8 with k.dtype = %s: int8 q needs int8 k",
                DtypeName(d.k.dtype));
  }
  if (!d.o.data) return Fail(RELATTN_ERR_NULL_ARGUMENT, "o.data is NULL");
  if (d.o.dtype != RELATTN_F32 && d.o.dtype != RELATTN_F16 && d.o.dtype != RELATTN_BF16) {
    return Fail(RELATTN_ERR_BAD_DTYPE,
                "o.dtype = %s (%d): must be RELATTN_F32, RELATTN_F16 or RELATTN_BF16",
                DtypeName(d.o.dtype), static_cast<int>(d.o.dtype));
  }
  if ((s = CheckStrides("o", d.n_q, d.o.token_stride, d.n_heads, d.o.head_stride, dv))) return s;
  return CheckMemory(d, dv);
}

// With RoPE, every position is within +-kRopeMaxPosition (exact in double).
relattn_status CheckRopePositions(const relattn_attention_desc& d, int64_t k_min, int64_t k_max) {
  int64_t q_min = 0, q_max = 0;
  PositionRange("q_pos", d.q_pos, d.n_q, &q_min, &q_max);  // cannot fail: checked before
  const char* name = k_min < -kRopeMaxPosition || k_max > kRopeMaxPosition ? "k_pos" : "q_pos";
  const int64_t lo = name[0] == 'k' ? k_min : q_min, hi = name[0] == 'k' ? k_max : q_max;
  if (lo >= -kRopeMaxPosition && hi <= kRopeMaxPosition) return RELATTN_OK;
  return Fail(RELATTN_ERR_POSITION_OVERFLOW,
              "%s: positions %" PRId64 "..%" PRId64
              " with rope: must be within +-2^53 (exact "
              "in double)",
              name, lo, hi);
}

relattn_status CheckMask(const relattn_mask& m, int64_t n_kv) {
  if (m.window < 0) {
    return Fail(RELATTN_ERR_BAD_MASK, "mask.window = %" PRId64 ": must be >= 0 (0 = no window)",
                m.window);
  }
  if (m.n_valid_kv < -1 || m.n_valid_kv > n_kv) {
    return Fail(RELATTN_ERR_BAD_MASK,
                "mask.n_valid_kv = %" PRId64 ": must be in 1..n_kv = %" PRId64
                ", or 0 or -1 (all keys)",
                m.n_valid_kv, n_kv);
  }
  if (m.first_valid_kv < 0 || m.first_valid_kv > n_kv) {
    return Fail(RELATTN_ERR_BAD_MASK,
                "mask.first_valid_kv = %" PRId64 ": must be in 0..n_kv = %" PRId64
                " (0: no left padding)",
                m.first_valid_kv, n_kv);
  }
  return RELATTN_OK;
}

// Segment ids (both arrays or neither, aligned) and the allowed bits
// (aligned, offset in 0..n_kv, rows wide enough for the keys after it, the
// matrix within the address space).
relattn_status CheckIndexMask(const relattn_mask& m, int64_t n_q, int64_t n_kv) {
  relattn_status s;
  if (!m.q_segments != !m.k_segments) {
    return Fail(RELATTN_ERR_NULL_ARGUMENT,
                "mask.%s is NULL: q_segments and k_segments are given together or not at all",
                m.q_segments ? "k_segments" : "q_segments");
  }
  if (m.q_segments && ((s = CheckAligned("mask.q_segments", m.q_segments, sizeof(int32_t))) ||
                       (s = CheckAligned("mask.k_segments", m.k_segments, sizeof(int32_t))))) {
    return s;
  }
  if (!m.allowed) return RELATTN_OK;
  if ((s = CheckAligned("mask.allowed", m.allowed, sizeof(uint64_t)))) return s;
  if (m.allowed_key_offset < 0 || m.allowed_key_offset > n_kv) {
    return Fail(RELATTN_ERR_BAD_MASK,
                "mask.allowed_key_offset = %" PRId64 ": must be in 0..n_kv = %" PRId64,
                m.allowed_key_offset, n_kv);
  }
  const int64_t words = (n_kv - m.allowed_key_offset + 63) / 64;
  int64_t bytes;
  if (m.allowed_row_words < words || __builtin_mul_overflow(n_q, m.allowed_row_words, &bytes) ||
      __builtin_mul_overflow(bytes, int64_t{8}, &bytes) || uint64_t(bytes) > SIZE_MAX) {
    return Fail(RELATTN_ERR_BAD_MASK,
                "mask.allowed_row_words = %" PRId64 ": must be >= %" PRId64
                " (one bit per key from allowed_key_offset = %" PRId64
                " to n_kv), and n_q rows of it must fit in memory",
                m.allowed_row_words, words, m.allowed_key_offset);
  }
  return RELATTN_OK;
}

// The header's zero values made explicit: n_valid_kv 0 (all keys), ALiBi
// max_bias 0 (8), T5 num_buckets 0 (32) and max_distance 0 (128).
relattn_attention_desc WithZeroDefaults(const relattn_attention_desc& d) {
  relattn_attention_desc r = d;
  if (r.mask.n_valid_kv <= 0) r.mask.n_valid_kv = d.n_kv;
  if (r.bias.alibi.max_bias == 0.0f) r.bias.alibi.max_bias = 8.0f;
  if (r.bias.t5.num_buckets == 0) r.bias.t5.num_buckets = 32;
  if (r.bias.t5.max_distance == 0) r.bias.t5.max_distance = 128;
  return r;
}

// softcap: 0 (off), or finite in [1e-6, 1e30] (its log2-unit form and
// inverse stay normal floats).
relattn_status CheckSoftcap(float softcap) {
  if (softcap == 0.0f || (softcap >= 1e-6f && softcap <= 1e30f)) return RELATTN_OK;
  return Fail(RELATTN_ERR_BAD_SOFTCAP, "softcap = %g: must be 0 (off) or finite in 1e-6..1e30",
              (double)softcap);
}

}  // namespace

// sinks: NULL, or n_heads aligned logits, finite with |x| <= 2^126 (times
// log2(e), they stay below 2^127 in log2 units).
relattn_status CheckSinks(const float* sinks, int32_t n_heads) {
  if (!sinks) return RELATTN_OK;
  if (reinterpret_cast<uintptr_t>(sinks) % alignof(float) != 0) {
    return Fail(RELATTN_ERR_BAD_SINK, "sinks = %p: must be aligned to %zu bytes",
                static_cast<const void*>(sinks), alignof(float));
  }
  for (int32_t h = 0; h < n_heads; ++h) {
    if (!std::isfinite(sinks[h]) || std::fabs(sinks[h]) > 0x1p126f) {
      return Fail(RELATTN_ERR_BAD_SINK, "sinks[%d] = %g: must be finite, |x| <= 2^126", h,
                  (double)sinks[h]);
    }
  }
  return RELATTN_OK;
}

relattn_status BuildPlan(const relattn_attention_desc* desc, Plan* plan) {
  if (!desc) return Fail(RELATTN_ERR_NULL_ARGUMENT, "desc is NULL");
  relattn_status s;
  if ((s = CheckShape(*desc)) || (s = CheckMask(desc->mask, desc->n_kv)) ||
      (s = CheckIndexMask(desc->mask, desc->n_q, desc->n_kv))) {
    return s;
  }
  const relattn_attention_desc d = WithZeroDefaults(*desc);
  if ((s = CheckIo(d, d.v_head_dim ? d.v_head_dim : d.head_dim))) return s;
  if (!std::isfinite(d.scale) || std::fabs(d.scale) > kMaxBiasMagnitude) {
    return Fail(RELATTN_ERR_BAD_SCALE,
                "scale = %g: must be finite, |scale| <= 2^127 (scores are kept in log2 units; 0 = "
                "1/sqrt(head_dim))",
                (double)d.scale);
  }
  if ((s = CheckSoftcap(d.softcap)) || (s = CheckSinks(d.sinks, d.n_heads))) return s;
  if (d.precision != RELATTN_PRECISION_EXACT && d.precision != RELATTN_PRECISION_FAST) {
    return Fail(RELATTN_ERR_UNSUPPORTED,
                "precision = %d: must be RELATTN_PRECISION_EXACT (0) or RELATTN_PRECISION_FAST (1)",
                static_cast<int>(d.precision));
  }
  int64_t k_min = 0, k_max = 0;
  RopeParams rope;
  if ((s = CheckPositions(d, &k_min, &k_max)) || (s = CheckBias(d.bias, d.n_heads, d.head_dim)) ||
      (s = ResolveRope(d.rope, d.head_dim, "rope.", &rope)) ||
      (rope.on && (s = CheckRopePositions(d, k_min, k_max)))) {
    return s;
  }
  // The ALiBi anchors need the range of the keys that can be seen: the valid
  // ones, [first_valid_kv, n_valid_kv) (none: the range stays, unused).
  const int64_t first = d.mask.first_valid_kv, n_valid = d.mask.n_valid_kv - first;
  if (n_valid > 0 && n_valid < d.n_kv) {
    // (start is ignored beside an array, and may be anything then.)
    const relattn_positions valid = d.k_pos.positions
                                        ? relattn_positions{d.k_pos.positions + first, 0}
                                        : relattn_positions{nullptr, d.k_pos.start + first};
    PositionRange("k_pos", valid, n_valid, &k_min, &k_max);  // cannot fail: inside the keys
  }
  ResolvePlan(d, rope, k_min, k_max, plan);
  return RELATTN_OK;
}

}  // namespace relattn
