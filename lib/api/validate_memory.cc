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

// Bytes [data, data + bytes), bytes >= 1 (clamped to the address space).
ByteRange BytesAt(const void* data, size_t bytes) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(data);
  return {first, bytes - 1 > UINTPTR_MAX - first ? UINTPTR_MAX : first + bytes - 1};
}

// RELATTN_ERR_OVERLAP: `a` shares bytes with `b`, with both spans (from the
// shapes and strides given) in the message.
relattn_status OverlapError(const char* a, const ByteRange& ra, const char* b,
                            const ByteRange& rb) {
  return Fail(RELATTN_ERR_OVERLAP,
              "%s overlaps %s: %s spans bytes [%p, %p] and %s [%p, %p] by their shapes and "
              "strides; they must not share memory",
              a, b, a, reinterpret_cast<void*>(ra.first), reinterpret_cast<void*>(ra.last), b,
              reinterpret_cast<void*>(rb.first), reinterpret_cast<void*>(rb.last));
}

// The first of ranges[0, n) that overlaps `r`, preferring one that starts
// where r starts (o == v names v even where k's span covers v); -1 if none.
int FirstOverlap(const ByteRange& r, const ByteRange* ranges, int n) {
  for (int i = 0; i < n; ++i) {
    if (ranges[i].first == r.first) return i;
  }
  for (int i = 0; i < n; ++i) {
    if (r.Overlaps(ranges[i])) return i;
  }
  return -1;
}

// The byte range of a tensor whose element offsets passed CheckStrides (the
// last index fits in int64); false if it does not fit in the address space
// (a 32-bit target).
bool RangeOf(const void* data, relattn_dtype dtype, int64_t n_tokens, int64_t token_stride,
             int32_t n_heads, int64_t head_stride, int64_t dim, ByteRange* range) {
  const uint64_t last_elem = static_cast<uint64_t>(
      (n_tokens - 1) * token_stride + (n_heads - 1) * head_stride + RowElements(dtype, dim) - 1);
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

// The outputs o, lse, then the tensors q, k, v.
constexpr int kOutputs = 2, kRanges = 5;
const char* const kRangeNames[kRanges] = {"o", "lse", "q", "k", "v"};

// The byte ranges of o, lse, q, k, v (in this order; lse NULL: an empty
// range): BAD_STRIDE for the first that does not fit in the address space.
relattn_status TensorRanges(const relattn_attention_desc& d, int32_t dv, ByteRange* ranges) {
  const Extent tensors[] = {
      {"o", d.o.data, d.o.dtype, d.n_q, d.o.token_stride, d.n_heads, d.o.head_stride, dv},
      {"lse", d.lse, RELATTN_F32, d.n_q, d.n_heads, d.n_heads, 1, 1},
      {"q", d.q.data, d.q.dtype, d.n_q, d.q.token_stride, d.n_heads, d.q.head_stride, d.head_dim},
      {"k", d.k.data, d.k.dtype, d.n_kv, d.k.token_stride, d.n_kv_heads, d.k.head_stride,
       d.head_dim},
      {"v", d.v.data, d.v.dtype, d.n_kv, d.v.token_stride, d.n_kv_heads, d.v.head_stride, dv},
  };
  for (int i = 0; i < kRanges; ++i) {
    const Extent& e = tensors[i];
    if (!e.data) {
      ranges[i] = {UINTPTR_MAX, 0};  // overlaps nothing
    } else if (!RangeOf(e.data, e.dtype, e.n_tokens, e.token_stride, e.n_heads, e.head_stride,
                        e.dim, &ranges[i])) {
      return Fail(RELATTN_ERR_BAD_STRIDE, "%s: its extent does not fit in the address space",
                  e.name);
    }
  }
  return RELATTN_OK;
}

// The other inputs the kernel reads while it writes the output `out` (o or
// lse): positions, int8 row scales, ALiBi slopes, T5 / Shaw tables, the Shaw
// vector table, the sinks (parameters out of their range are rejected later:
// such an input is skipped here, as is one whose extent does not fit in the
// address space).
relattn_status CheckOtherInputsApart(const relattn_attention_desc& d, const char* out_name,
                                     const ByteRange& o) {
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
      {"v.row_scales", d.v.dtype == RELATTN_I8 ? d.v.row_scales : nullptr, RELATTN_F32, d.n_kv,
       d.v.scale_token_stride, d.n_kv_heads, d.v.scale_head_stride, 1},
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
      {"sinks", d.sinks, RELATTN_F32, 1, 0, 1, 0, d.n_heads},
      // int32 ids: one float's worth each; uint64 words: two (validated to fit).
      {"mask.q_segments", d.mask.q_segments, RELATTN_F32, 1, 0, 1, 0, d.n_q},
      {"mask.k_segments", d.mask.k_segments, RELATTN_F32, 1, 0, 1, 0, d.n_kv},
      {"mask.allowed", d.mask.allowed, RELATTN_F32, 1, 0, 1, 0,
       2 * d.n_q * (d.mask.allowed ? d.mask.allowed_row_words : 0)},
  };
  for (const Extent& x : others) {
    ByteRange range;
    if (x.data && x.dim > 0 &&
        RangeOf(x.data, x.dtype, x.n_tokens, x.token_stride, x.n_heads, x.head_stride, x.dim,
                &range) &&
        o.Overlaps(range)) {
      return OverlapError(out_name, o, x.name, range);
    }
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
  if ((s = CheckAligned("o.data", d.o.data, DtypeBytes(d.o.dtype)))) return s;
  if (d.lse && (s = CheckAligned("lse", d.lse, sizeof(float)))) return s;
  ByteRange ranges[kRanges];
  if ((s = TensorRanges(d, dv, ranges))) return s;
  for (int out = 0; out < kOutputs; ++out) {
    if (out == 1 && !d.lse) break;
    // Each output apart from the ranges after it: o from lse and the inputs.
    const int i = FirstOverlap(ranges[out], ranges + out + 1, kRanges - out - 1) + out + 1;
    if (i > out) return OverlapError(kRangeNames[out], ranges[out], kRangeNames[i], ranges[i]);
    if ((s = CheckOtherInputsApart(d, kRangeNames[out], ranges[out]))) return s;
  }
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
  ByteRange ranges[kRanges];  // validated, they fit
  if (const relattn_status s = TensorRanges(d, d.v_head_dim ? d.v_head_dim : d.head_dim, ranges)) {
    return s;
  }
  const ByteRange region = BytesAt(data, bytes);
  const int i = FirstOverlap(region, ranges, output_only ? kOutputs : kRanges);
  return i < 0 ? RELATTN_OK : OverlapError(name, region, kRangeNames[i], ranges[i]);
}

relattn_status CheckBytesApart(const char* a, const void* a_data, size_t a_bytes, const char* b,
                               const void* b_data, size_t b_bytes) {
  if (a_bytes == 0 || b_bytes == 0) return RELATTN_OK;
  const ByteRange ra = BytesAt(a_data, a_bytes), rb = BytesAt(b_data, b_bytes);
  return ra.Overlaps(rb) ? OverlapError(a, ra, b, rb) : RELATTN_OK;
}

relattn_status CheckTensorApart(const char* name, const relattn_tensor& t, int64_t n_tokens,
                                int32_t n_heads, int64_t dim, const char* region_name,
                                const void* region, size_t bytes) {
  ByteRange tensor;
  if (!RangeOf(t.data, t.dtype, n_tokens, t.token_stride, n_heads, t.head_stride, dim, &tensor)) {
    return Fail(RELATTN_ERR_BAD_STRIDE, "%s: its extent does not fit in the address space", name);
  }
  const ByteRange r = BytesAt(region, bytes);
  return bytes && tensor.Overlaps(r) ? OverlapError(name, tensor, region_name, r) : RELATTN_OK;
}

}  // namespace relattn
