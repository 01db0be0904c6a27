// relattn_merge: two partial attentions with their log-sum-exp combined into
// one (validation, then one pass over the rows in double).
#include <cinttypes>
#include <cmath>
#include <cstdint>

#include "lib/api/validate.h"
#include "lib/api/validate_memory.h"
#include "lib/api/validate_tensor.h"
#include "lib/common/dtype.h"
#include "lib/common/error.h"
#include "lib/common/f16.h"
#include "lib/common/float_element.h"
#include "lib/common/store_row.h"

namespace relattn {
namespace {

// An output described as a tensor, for the checks tensors get.
relattn_tensor AsTensor(const relattn_output& o) {
  return relattn_tensor{o.data, o.dtype, o.token_stride, o.head_stride, nullptr, 0, 0};
}

bool SameTensor(const relattn_tensor& x, const relattn_output& o) {
  return x.data == o.data && x.dtype == o.dtype && x.token_stride == o.token_stride &&
         x.head_stride == o.head_stride;
}

// Bytes from t.data to the end of its last element (t passed CheckTensor);
// SIZE_MAX where that does not fit (only the overlap test reads it).
size_t TensorBytes(const relattn_tensor& t, int64_t n_q, int32_t n_heads, int64_t dim) {
  const uint64_t elements =
      uint64_t((n_q - 1) * t.token_stride + (int64_t{n_heads} - 1) * t.head_stride + dim);
  uint64_t bytes;
  if (__builtin_mul_overflow(elements, uint64_t(DtypeBytes(t.dtype)), &bytes) || bytes > SIZE_MAX) {
    return SIZE_MAX;
  }
  return static_cast<size_t>(bytes);
}

relattn_status CheckLse(const char* name, const float* lse, int64_t n) {
  if (!lse) return Fail(RELATTN_ERR_NULL_ARGUMENT, "%s is NULL", name);
  if (const relattn_status s = CheckAligned(name, lse, sizeof(float))) return s;
  for (int64_t i = 0; i < n; ++i) {
    if (lse[i] == HUGE_VALF) {
      return Fail(RELATTN_ERR_VALUE_RANGE,
                  "%s[%" PRId64 "] = +inf: a log-sum-exp is finite, -inf (no key) or NaN", name, i);
    }
  }
  return RELATTN_OK;
}

relattn_status CheckShapeAndTensors(const relattn_merge_desc& d) {
  relattn_status s;
  const int64_t kMaxTokens = RELATTN_MAX_TOKENS;
  if (d.n_q < 1 || d.n_q > kMaxTokens) {
    return Fail(RELATTN_ERR_BAD_DIMENSION, "n_q = %" PRId64 ": must be in 1..2^40", d.n_q);
  }
  if (d.n_heads < 1 || d.n_heads > RELATTN_MAX_HEADS) {
    return Fail(RELATTN_ERR_BAD_DIMENSION, "n_heads = %d: must be in 1..%d", d.n_heads,
                RELATTN_MAX_HEADS);
  }
  if (d.v_head_dim < 1 || d.v_head_dim > RELATTN_MAX_HEAD_DIM) {
    return Fail(RELATTN_ERR_BAD_DIMENSION, "v_head_dim = %d: must be in 1..%d", d.v_head_dim,
                RELATTN_MAX_HEAD_DIM);
  }
  const char* no_i8 = "the parts are outputs of relattn_attention: F32, F16 or BF16";
  if ((s = CheckTensor("a", d.a, d.n_q, d.n_heads, d.v_head_dim, no_i8)) ||
      (s = CheckTensor("b", d.b, d.n_q, d.n_heads, d.v_head_dim, no_i8))) {
    return s;
  }
  if (d.o.dtype != RELATTN_F32 && d.o.dtype != RELATTN_F16 && d.o.dtype != RELATTN_BF16) {
    return Fail(RELATTN_ERR_BAD_DTYPE, "o.dtype = %d: must be F32 (0), F16 (1) or BF16 (4)",
                d.o.dtype);
  }
  if ((s = CheckTensor("o", AsTensor(d.o), d.n_q, d.n_heads, d.v_head_dim, no_i8))) return s;
  const int64_t n = d.n_q * d.n_heads;
  if ((s = CheckLse("lse_a", d.lse_a, n)) || (s = CheckLse("lse_b", d.lse_b, n)) ||
      (s = CheckSinks(d.sinks, d.n_heads))) {
    return s;
  }
  if (d.lse && (s = CheckAligned("lse", d.lse, sizeof(float)))) return s;
  return RELATTN_OK;
}

// o and lse apart from every input but the one they may be exactly.
relattn_status CheckApart(const relattn_merge_desc& d) {
  const size_t lse_bytes = size_t(d.n_q * d.n_heads) * sizeof(float);
  const relattn_tensor o = AsTensor(d.o);
  struct Input {
    const char* name;
    const void* data;
    size_t bytes;
    bool same_as_o, same_as_lse;
  } inputs[] = {
      {"a", d.a.data, TensorBytes(d.a, d.n_q, d.n_heads, d.v_head_dim), SameTensor(d.a, d.o),
       false},
      {"b", d.b.data, TensorBytes(d.b, d.n_q, d.n_heads, d.v_head_dim), SameTensor(d.b, d.o),
       false},
      {"lse_a", d.lse_a, lse_bytes, false, d.lse == d.lse_a},
      {"lse_b", d.lse_b, lse_bytes, false, d.lse == d.lse_b},
      {"sinks", d.sinks, d.sinks ? d.n_heads * sizeof(float) : 0, false, false},
  };
  const size_t o_bytes = TensorBytes(o, d.n_q, d.n_heads, d.v_head_dim);
  relattn_status s;
  for (const Input& in : inputs) {
    if ((!in.same_as_o && (s = CheckTensorApart("o", o, d.n_q, d.n_heads, d.v_head_dim, in.name,
                                                in.data, in.bytes))) ||
        (d.lse && !in.same_as_lse &&
         (s = CheckBytesApart("lse", d.lse, lse_bytes, in.name, in.data, in.bytes)))) {
      return s;
    }
  }
  if (d.lse && (s = CheckBytesApart("lse", d.lse, lse_bytes, "o", d.o.data, o_bytes))) return s;
  return RELATTN_OK;
}

float Element(const relattn_tensor& t, int64_t offset) {
  return FloatElement(t.data, t.dtype, offset);
}

// Row (i, h): both parts' rows read before o's is written (in place allowed).
void MergeRow(const relattn_merge_desc& d, int64_t i, int32_t h) {
  const int64_t at = i * d.n_heads + h;
  const double la = d.lse_a[at], lb = d.lse_b[at];
  const double sink = d.sinks ? double{d.sinks[h]} : -HUGE_VAL;
  const double top = std::fmax(std::fmax(la, lb), sink);  // NaN only if all are NaN
  float row[RELATTN_MAX_HEAD_DIM];
  const int64_t a_at = i * d.a.token_stride + h * d.a.head_stride;
  const int64_t b_at = i * d.b.token_stride + h * d.b.head_stride;
  float lse;
  if (std::isnan(la) || std::isnan(lb)) {
    for (int32_t e = 0; e < d.v_head_dim; ++e) row[e] = NAN;
    lse = NAN;
  } else if (top == -HUGE_VAL) {  // neither part saw a key, no sink
    for (int32_t e = 0; e < d.v_head_dim; ++e) row[e] = 0.0f;
    lse = -HUGE_VALF;
  } else {
    const double wa = std::exp(la - top), wb = std::exp(lb - top);
    const double ws = d.sinks ? std::exp(sink - top) : 0.0;
    const double total = wa + wb + ws;
    const double fa = wa / total, fb = wb / total;
    for (int32_t e = 0; e < d.v_head_dim; ++e) {
      // A part with weight 0 is not read: its row may be anything (zeros).
      const double xa = fa > 0 ? fa * Element(d.a, a_at + e) : 0.0;
      const double xb = fb > 0 ? fb * Element(d.b, b_at + e) : 0.0;
      row[e] = static_cast<float>(xa + xb);
    }
    lse = static_cast<float>(top + std::log(total));
  }
  StoreRow(row, d.v_head_dim, 1.0f, d.o.data, d.o.dtype,
           i * d.o.token_stride + h * d.o.head_stride);
  if (d.lse) d.lse[at] = lse;
}

}  // namespace
}  // namespace relattn

extern "C" relattn_status relattn_merge(const relattn_merge_desc* desc) {
  if (!desc) return relattn::Fail(RELATTN_ERR_NULL_ARGUMENT, "desc is NULL");
  const relattn_merge_desc& d = *desc;
  relattn_status s;
  if ((s = relattn::CheckShapeAndTensors(d)) || (s = relattn::CheckApart(d))) return s;
  for (int64_t i = 0; i < d.n_q; ++i) {
    for (int32_t h = 0; h < d.n_heads; ++h) relattn::MergeRow(d, i, h);
  }
  return relattn::Succeed();
}
