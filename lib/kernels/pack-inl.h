// Loads strided f32 / f16 rows into the kernel's f32 tiles and stores output
// rows (per-target code).
#if defined(RELATTN_LIB_KERNELS_PACK_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_PACK_INL_H_
#undef RELATTN_LIB_KERNELS_PACK_INL_H_
#else
#define RELATTN_LIB_KERNELS_PACK_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "hwy/highway.h"
#include "lib/common/dtype.h"
#include "lib/common/f16.h"
#include "lib/driver/plan.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Vectors of at most kMaxLanes floats: head dims are padded to kMaxLanes, and
// kBlockKeys is a multiple of 2 * kMaxLanes.
using DF = hn::CappedTag<float, kMaxLanes>;

// Highway 1.0.3 converts f16 by emulation on x86 below AVX2 and on the scalar
// target, and that emulation turns inf and NaN (exponent 31) into finite
// values in [65536, 131072): no correct f16 converts to |x| >= 65536 (the
// largest finite is 65504), so vectors holding such values are redone exactly.
#undef RELATTN_F16_PROMOTE_EMULATED
#if (HWY_ARCH_X86 && HWY_TARGET >= HWY_SSE4) || HWY_TARGET == HWY_SCALAR || HWY_TARGET == HWY_EMU128
#define RELATTN_F16_PROMOTE_EMULATED 1
#else
#define RELATTN_F16_PROMOTE_EMULATED 0
#endif

// The Lanes(DF) f16 values at src as f32, exact for every value.
HWY_INLINE hn::Vec<DF> PromoteF16(const hwy::float16_t* HWY_RESTRICT src) {
  const DF df;
  const hn::Rebind<hwy::float16_t, DF> dh;
  auto v = hn::PromoteTo(df, hn::LoadU(dh, src));
#if RELATTN_F16_PROMOTE_EMULATED
  if (!hn::AllFalse(df, hn::Ge(hn::Abs(v), hn::Set(df, 65536.0f)))) {
    HWY_ALIGN float exact[kMaxLanes];
    const uint16_t* bits = reinterpret_cast<const uint16_t*>(src);
    for (size_t i = 0; i < hn::Lanes(df); ++i) exact[i] = F16ToF32(bits[i]);
    v = hn::Load(df, exact);
  }
#endif
  return v;
}

// The Lanes(DF) int8 values at src as f32 (exact).
HWY_INLINE hn::Vec<DF> PromoteI8(const int8_t* HWY_RESTRICT src) {
  const DF df;
  const hn::Rebind<int32_t, DF> di;
  const hn::Rebind<int8_t, DF> d8;
  return hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, src)));
}

// dst[e] = mul * row[e] for e < n; row = element `offset` of a tensor of dtype
// F32, F16 or I8 (its int8 values, unscaled; validated before the call).
HWY_INLINE void ConvertRow(const void* data, relattn_dtype dtype, int64_t offset, int64_t n,
                           float mul, float* HWY_RESTRICT dst) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const auto vmul = hn::Set(df, mul);
  int64_t e = 0;
  if (dtype == RELATTN_F16 && mul == 1.0f) {
    const hwy::float16_t* src = static_cast<const hwy::float16_t*>(data) + offset;
    for (; e + lanes <= n; e += lanes) hn::StoreU(PromoteF16(src + e), df, dst + e);
    const uint16_t* bits = static_cast<const uint16_t*>(data) + offset;
    for (; e < n; ++e) dst[e] = F16ToF32(bits[e]);
  } else if (dtype == RELATTN_F16) {
    const hwy::float16_t* src = static_cast<const hwy::float16_t*>(data) + offset;
    for (; e + lanes <= n; e += lanes) {
      hn::StoreU(hn::Mul(PromoteF16(src + e), vmul), df, dst + e);
    }
    const uint16_t* bits = static_cast<const uint16_t*>(data) + offset;
    for (; e < n; ++e) dst[e] = mul * F16ToF32(bits[e]);
  } else if (dtype == RELATTN_I8) {
    const int8_t* src = static_cast<const int8_t*>(data) + offset;
    for (; e + lanes <= n; e += lanes) hn::StoreU(hn::Mul(PromoteI8(src + e), vmul), df, dst + e);
    for (; e < n; ++e) dst[e] = mul * static_cast<float>(src[e]);
  } else {
    const float* src = static_cast<const float*>(data) + offset;
    for (; e + lanes <= n; e += lanes) {
      hn::StoreU(hn::Mul(hn::LoadU(df, src + e), vmul), df, dst + e);
    }
    for (; e < n; ++e) dst[e] = mul * src[e];
  }
}

// Writes mul * src[0, n) to element `offset` of the output, as F32 or F16.
// F16 is rounded to nearest even by the scalar F32ToF16 on every target:
// Highway 1.0.3 emulates DemoteTo(f16) by truncation below AVX2 (and without
// overflow to inf), and one row per query and head is not worth a vector path.
HWY_INLINE void StoreRow(const float* HWY_RESTRICT src, int64_t n, float mul, void* data,
                         relattn_dtype dtype, int64_t offset) {
  if (dtype == RELATTN_F16) {
    uint16_t* bits = static_cast<uint16_t*>(data) + offset;
    for (int64_t e = 0; e < n; ++e) bits[e] = F32ToF16(mul * src[e]);
    return;
  }
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const auto vmul = hn::Set(df, mul);
  float* dst = static_cast<float*>(data) + offset;
  int64_t e = 0;
  for (; e + lanes <= n; e += lanes) {
    hn::StoreU(hn::Mul(hn::LoadU(df, src + e), vmul), df, dst + e);
  }
  for (; e < n; ++e) dst[e] = mul * src[e];
}

// A block of rows in f32: row j at rows + j * stride (elements).
struct RowsF32 {
  const float* rows;
  int64_t stride;
};

// True if row[0, n) holds no NaN or infinity.
HWY_INLINE bool RowFinite(const float* HWY_RESTRICT row, int64_t n) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  auto all = hn::Eq(hn::Zero(df), hn::Zero(df));
  int64_t e = 0;
  for (; e + lanes <= n; e += lanes) all = hn::And(all, hn::IsFinite(hn::LoadU(df, row + e)));
  bool finite = hn::AllTrue(df, all);
  for (; e < n; ++e) finite = finite && std::isfinite(row[e]);
  return finite;
}

// Bit j set where row j (< n_rows <= 64) of `rows` holds a NaN or infinity.
HWY_INLINE uint64_t NonFiniteRows(RowsF32 rows, int64_t n_rows, int64_t dim) {
  uint64_t bad = 0;
  for (int64_t j = 0; j < n_rows; ++j) {
    if (!RowFinite(rows.rows + j * rows.stride, dim)) bad |= uint64_t{1} << j;
  }
  return bad;
}

// The rows with the `bad` ones replaced by zeros, in scratch ([n_rows][dim],
// copied there first unless rows already live in it).
HWY_INLINE RowsF32 ZeroBadRows(RowsF32 rows, int64_t n_rows, int64_t dim, uint64_t bad,
                               float* HWY_RESTRICT scratch) {
  for (int64_t j = 0; j < n_rows; ++j) {
    float* dst = scratch + j * dim;
    if ((bad >> j) & 1) {
      std::fill(dst, dst + dim, 0.0f);
    } else if (rows.rows != scratch) {
      std::copy(rows.rows + j * rows.stride, rows.rows + j * rows.stride + dim, dst);
    }
  }
  return {scratch, dim};
}

// Prefetches the cache line at p into the outer caches (a streamed block
// ahead: the L1's few miss buffers would cap a core's bandwidth far below
// DRAM's; the L2 tracks many more misses).
HWY_INLINE void PrefetchFar(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 0, 1);
#else
  (void)p;
#endif
}

// Prefetches rows [t0, t0 + n) of head `head` of tensor t (dim elements
// each) into the outer caches. Prefill reads a head's rows a whole stride
// apart ([tokens][heads][dim]) in short bursts, which hardware prefetchers
// miss: without this, converting each key block waited on L3.
HWY_INLINE void PrefetchRows(const TensorRef& t, int32_t head, int64_t t0, int64_t n, int64_t dim) {
  const int64_t elem_bytes = DtypeBytes(t.dtype);
  const char* base = static_cast<const char*>(t.data);
  for (int64_t j = t0; j < t0 + n; ++j) {
    const char* row = base + (j * t.token_stride + head * t.head_stride) * elem_bytes;
    for (int64_t b = 0; b < dim * elem_bytes; b += 64) PrefetchFar(row + b);
  }
}

// Rows [t0, t0 + n) of head `head` of tensor t as contiguous f32 rows: the
// tensor itself when it is f32 with rows back to back, else converted or
// copied into `scratch` ([n][dim]). (Rows of one head a power-of-two stride
// apart, as in [tokens][heads][dim], would share L1 sets and evict each
// other in the micro-kernels.)
HWY_INLINE RowsF32 RowsAsF32(const TensorRef& t, int32_t head, int64_t t0, int64_t n, int64_t dim,
                             float* HWY_RESTRICT scratch) {
  const int64_t first = t0 * t.token_stride + head * t.head_stride;
  if (t.dtype == RELATTN_F32 && t.token_stride == dim) {
    return {static_cast<const float*>(t.data) + first, dim};
  }
  for (int64_t j = 0; j < n; ++j) {
    ConvertRow(t.data, t.dtype, first + j * t.token_stride, dim, 1.0f, scratch + j * dim);
  }
  return {scratch, dim};
}

// Keys [j0, j0 + n) of a KV cache's head (key groups, kv_cache.h) as f32
// rows of d floats in scratch.
HWY_INLINE RowsF32 CacheKeyRows(const Plan& plan, int32_t head, int64_t j0, int64_t n,
                                float* HWY_RESTRICT scratch) {
  for (int64_t j = 0; j < n; ++j) {
    const int64_t slot = j0 + j;
    const int64_t first = plan.cache.KeyGroupOffset(head, slot, plan.d) + slot % kKeyGroup;
    float* row = scratch + j * plan.d;
    if (plan.k.dtype == RELATTN_F16) {
      const uint16_t* bits = static_cast<const uint16_t*>(plan.k.data) + first;
      for (int32_t c = 0; c < plan.d; ++c) row[c] = F16ToF32(bits[c * kKeyGroup]);
    } else if (plan.k.dtype == RELATTN_I8) {
      const int8_t* src = static_cast<const int8_t*>(plan.k.data) + first;
      for (int32_t c = 0; c < plan.d; ++c) row[c] = static_cast<float>(src[c * kKeyGroup]);
    } else {
      const float* src = static_cast<const float*>(plan.k.data) + first;
      for (int32_t c = 0; c < plan.d; ++c) row[c] = src[c * kKeyGroup];
    }
  }
  return {scratch, plan.d};
}

// Row scales of the int8 keys [j0, j0 + n) of kv_head (a tensor's or a KV
// cache's) into scales[0, n), zeros up to kBlockKeys; returns the keys whose scale is not finite as
// bits (their scale is set to 0: their rows are zeroed and poison instead).
HWY_INLINE uint64_t KeyScales(const Plan& plan, int32_t kv_head, int64_t j0, int64_t n,
                              float* HWY_RESTRICT scales) {
  uint64_t bad = 0;
  for (int64_t j = 0; j < n; ++j) {
    const float scale = plan.k.RowScale(j0 + j, kv_head);
    const bool finite = std::isfinite(scale);
    scales[j] = finite ? scale : 0.0f;
    if (!finite) bad |= uint64_t{1} << j;
  }
  std::fill(scales + n, scales + kBlockKeys, 0.0f);  // read by whole vectors past n
  return bad;
}

// Transposes `rows` queries (starting at token i0, head h) into q_t[d][width],
// passed through rotate(token, row) (RoPE); lanes [rows, width) are zero.
// Float queries are multiplied by scale_log2 and q_mul[i] = 1; int8 queries
// stay integers (exact products with int8 keys) and q_mul[i] = their row
// scale * scale_log2, for the scores to apply. poison[i] = 1 where the query
// holds a NaN or infinity (a non-finite row scale included), else 0. row: d
// floats.
template <class Rotate>
HWY_INLINE void PackQueriesTransposed(const Plan& plan, int32_t h, int64_t i0, int64_t rows,
                                      int64_t width, float* HWY_RESTRICT row,
                                      float* HWY_RESTRICT q_t, float* HWY_RESTRICT q_mul,
                                      float* HWY_RESTRICT poison, const Rotate& rotate) {
  std::memset(q_t, 0, sizeof(float) * plan.d * width);
  std::fill(poison, poison + width, 0.0f);
  std::fill(q_mul, q_mul + width, 1.0f);
  const bool int8 = plan.q.dtype == RELATTN_I8;
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t offset = (i0 + i) * plan.q.token_stride + h * plan.q.head_stride;
    ConvertRow(plan.q.data, plan.q.dtype, offset, plan.d, int8 ? 1.0f : plan.scale_log2, row);
    rotate(i0 + i, row);
    if (int8) {
      const float scale = plan.q.RowScale(i0 + i, h);
      q_mul[i] = std::isfinite(scale) ? scale * plan.scale_log2 : 0.0f;
      if (!std::isfinite(scale)) poison[i] = 1.0f;
    }
    if (!RowFinite(row, plan.d)) poison[i] = 1.0f;
    for (int64_t e = 0; e < plan.d; ++e) q_t[e * width + i] = row[e];
  }
}

// Writes output rows [i0, i0 + rows) of head h from o_t[dv][width], each lane
// divided by its softmax sum (0 for a row that saw no key); a poisoned lane
// (it saw a non-finite value) writes NaN. row: dv floats.
HWY_INLINE void StoreOutputTransposed(const Plan& plan, int32_t h, int64_t i0, int64_t rows,
                                      int64_t width, const float* HWY_RESTRICT o_t,
                                      const float* HWY_RESTRICT sum,
                                      const float* HWY_RESTRICT poison, float* HWY_RESTRICT row) {
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t e = 0; e < plan.dv; ++e) row[e] = poison[i] != 0.0f ? NAN : o_t[e * width + i];
    const float inv_sum = sum[i] > 0.0f ? 1.0f / sum[i] : 0.0f;
    const int64_t offset = (i0 + i) * plan.o_token_stride + h * plan.o_head_stride;
    StoreRow(row, plan.dv, inv_sum, plan.o, plan.o_dtype, offset);
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_PACK_INL_H_
