#include "lib/api/validate_memory.h"

#include "lib/bias/shaw.h"
#include "lib/bias/t5.h"
#include "lib/common/dtype.h"
#include "lib/common/error.h"
#include "lib/driver/plan.h"

namespace relattn {
namespace {

// Byte range [first, last] of the elements of a strided [tokens][heads][dim] tensor.
struct ByteRange {
  uintptr_t first, last;
  bool Overlaps(const ByteRange& o) const { return first <= o.last && o.first <= last; }
};

// The byte range of a tensor whose element offsets passed CheckStrides (the
// last index fits in int64); false if it does not fit in the address space
// (a 32-bit target).
bool RangeOf(const void* data, relattn_dtype dtype, int64_t n_tokens, int64_t token_stride,
             int32_t n_heads, int64_t head_stride, int64_t dim, ByteRange* range) {
  const uint64_t last_elem =
      static_cast<uint64_t>((n_tokens - 1) * token_stride + (n_heads - 1) * head_stride + dim - 1);
  const uint64_t first = reinterpret_cast<uintptr_t>(data);
  uint64_t bytes, last;
  if (__builtin_mul_overflow(last_elem + 1, static_cast<uint64_t>(DtypeBytes(dtype)), &bytes) ||
      __builtin_add_overflow(first, bytes - 1, &last) || last > UINTPTR_MAX) {
    return false;
  }
  *range = {static_cast<uintptr_t>(first), static_cast<uintptr_t>(last)};
  return true;
}

// A strided [tokens][heads][dim] tensor's elements, for its byte range.
struct Extent {
  const char* name;
  const void* data;
  relattn_dtype dtype;
  int64_t n_tokens, token_stride;
  int32_t n_heads;
  int64_t head_stride, dim;
};

// The byte ranges of o, q, k, v (in this order): BAD_STRIDE for the first
// that does not fit in the address space.
relattn_status TensorRanges(const relattn_attention_desc& d, int32_t dv, ByteRange* ranges) {
  const Extent tensors[] = {
      {"o", d.o.data, d.o.dtype, d.n_q, d.o.token_stride, d.n_heads, d.o.head_stride, dv},
      {"q", d.q.data, d.q.dtype, d.n_q, d.q.token_stride, d.n_heads, d.q.head_stride, d.head_dim},
      {"k", d.k.data, d.k.dtype, d.n_kv, d.k.token_stride, d.n_kv_heads, d.k.head_stride,
       d.head_dim},
      {"v", d.v.data, d.v.dtype, d.n_kv, d.v.token_stride, d.n_kv_heads, d.v.head_stride, dv},
  };
  for (int i = 0; i < 4; ++i) {
    const Extent& e = tensors[i];
    if (!RangeOf(e.data, e.dtype, e.n_tokens, e.token_stride, e.n_heads, e.head_stride, e.dim,
                 &ranges[i])) {
      return Fail(RELATTN_ERR_BAD_STRIDE, "%s: its extent does not fit in the address space",
                  e.name);
    }
  }
  return RELATTN_OK;
}

// The other inputs the kernel reads while it writes o: positions, int8 row
// scales, ALiBi slopes, T5 / Shaw tables, the Shaw vector table (parameters
// out of their range are rejected later: such an input is skipped here, as
// is one whose extent does not fit in the address space).
relattn_status CheckOtherInputsApart(const relattn_attention_desc& d, const ByteRange& o) {
  const relattn_bias& b = d.bias;
  const relattn_shaw_vector& sv = b.shaw_vector;
  const bool shaw_vector =
      b.kind == RELATTN_BIAS_SHAW_VECTOR && sv.k >= 0 && sv.k <= kShawVectorMaxK;
  const bool t5 = b.kind == RELATTN_BIAS_T5 && b.t5.num_buckets >= 2 &&
                  b.t5.num_buckets <= kT5MaxBuckets &&
                  (b.t5.table_dtype == RELATTN_F32 || b.t5.table_dtype == RELATTN_F16 ||
                   b.t5.table_dtype == RELATTN_I8);
  const bool shaw = b.kind == RELATTN_BIAS_SHAW && b.shaw.k >= 0 && b.shaw.k <= kShawMaxK;
  const int64_t shaw_vector_floats =
      (sv.per_head ? int64_t{d.n_heads} : 1) * (2 * int64_t{sv.k} + 1) * d.head_dim;
  const Extent others[] = {
      // int64 positions: 2 floats' worth of bytes each.
      {"q_pos.positions", d.q_pos.positions, RELATTN_F32, 1, 0, 1, 0, 2 * d.n_q},
      {"k_pos.positions", d.k_pos.positions, RELATTN_F32, 1, 0, 1, 0, 2 * d.n_kv},
      {"q.row_scales", d.q.dtype == RELATTN_I8 ? d.q.row_scales : nullptr, RELATTN_F32, d.n_q,
       d.q.scale_token_stride, d.n_heads, d.q.scale_head_stride, 1},
      {"k.row_scales", d.k.dtype == RELATTN_I8 ? d.k.row_scales : nullptr, RELATTN_F32, d.n_kv,
       d.k.scale_token_stride, d.n_kv_heads, d.k.scale_head_stride, 1},
      {"bias.alibi.slopes", b.kind == RELATTN_BIAS_ALIBI ? b.alibi.slopes : nullptr, RELATTN_F32, 1,
       0, 1, 0, d.n_heads},
      {"bias.t5.table", t5 ? b.t5.table : nullptr, b.t5.table_dtype, 1, 0, 1, 0,
       int64_t{d.n_heads} * b.t5.num_buckets},
      {"bias.t5.table_scales", t5 && b.t5.table_dtype == RELATTN_I8 ? b.t5.table_scales : nullptr,
       RELATTN_F32, 1, 0, 1, 0, d.n_heads},
      {"bias.shaw.table", shaw ? b.shaw.table : nullptr, RELATTN_F32, 1, 0, 1, 0,
       int64_t{d.n_heads} * (2 * int64_t{b.shaw.k} + 1)},
      {"bias.shaw_vector.table", shaw_vector ? sv.table : nullptr, RELATTN_F32, 1, 0, 1, 0,
       shaw_vector_floats},
  };
  for (const Extent& x : others) {
    ByteRange range;
    if (x.data && x.dim > 0 &&
        RangeOf(x.data, x.dtype, x.n_tokens, x.token_stride, x.n_heads, x.head_stride, x.dim,
                &range) &&
        o.Overlaps(range)) {
      return Fail(RELATTN_ERR_OVERLAP, "o overlaps %s: the output must not share memory with it",
                  x.name);
    }
  }
  return RELATTN_OK;
}

relattn_status CheckAlignments(const relattn_attention_desc& d) {
  relattn_status s;
  if ((s = CheckAligned("q.data", d.q.data, DtypeBytes(d.q.dtype))) ||
      (s = CheckAligned("k.data", d.k.data, DtypeBytes(d.k.dtype))) ||
      (s = CheckAligned("v.data", d.v.data, DtypeBytes(d.v.dtype))) ||
      (s = CheckAligned("o.data", d.o.data, DtypeBytes(d.o.dtype)))) {
    return s;
  }
  return RELATTN_OK;
}

}  // namespace

relattn_status CheckAligned(const char* name, const void* data, size_t alignment) {
  if (reinterpret_cast<uintptr_t>(data) % alignment == 0) return RELATTN_OK;
  return Fail(RELATTN_ERR_BAD_ALIGNMENT, "%s = %p: must be aligned to %zu bytes", name, data,
              alignment);
}

relattn_status CheckMemory(const relattn_attention_desc& d, int32_t dv) {
  relattn_status s;
  if ((s = CheckAlignments(d))) return s;
  ByteRange ranges[4];  // o, q, k, v
  if ((s = TensorRanges(d, dv, ranges))) return s;
  const ByteRange& o = ranges[0];
  const char* const names[4] = {"o", "q", "k", "v"};
  for (int i = 1; i < 4; ++i) {
    if (o.Overlaps(ranges[i])) {
      return Fail(RELATTN_ERR_OVERLAP, "o overlaps %s: the output must not share memory with it",
                  names[i]);
    }
  }
  if ((s = CheckOtherInputsApart(d, o))) return s;
  for (const auto* pos : {&d.q_pos, &d.k_pos}) {
    if (pos->positions && (s = CheckAligned(pos == &d.q_pos ? "q_pos.positions" : "k_pos.positions",
                                            pos->positions, sizeof(int64_t)))) {
      return s;
    }
  }
  return RELATTN_OK;
}

relattn_status CheckRegionApart(const relattn_attention_desc& d, const char* name, const void* data,
                                size_t bytes, bool output_only) {
  if (bytes == 0) return RELATTN_OK;
  ByteRange ranges[4];  // o, q, k, v: validated, they fit
  if (const relattn_status s = TensorRanges(d, d.v_head_dim ? d.v_head_dim : d.head_dim, ranges)) {
    return s;
  }
  const uintptr_t first = reinterpret_cast<uintptr_t>(data);
  const ByteRange region{first, bytes - 1 > UINTPTR_MAX - first ? UINTPTR_MAX : first + bytes - 1};
  const char* const names[4] = {"o", "q", "k", "v"};
  for (int i = 0; i < (output_only ? 1 : 4); ++i) {
    if (region.Overlaps(ranges[i])) {
      return Fail(RELATTN_ERR_OVERLAP, "%s overlaps %s: they must not share memory", name,
                  names[i]);
    }
  }
  return RELATTN_OK;
}

}  // namespace relattn
