// Row conversion (f32 / f16 / int8 / q4_0 to f32), query packing into sub-tiles and
// the output store (per-target code).
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
#include "lib/common/bf16.h"
#include "lib/common/dtype.h"
#include "lib/common/f16.h"
#include "lib/common/store_row.h"
#include "lib/driver/plan.h"
#include "lib/driver/softmax_state.h"

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

// The Lanes(DF) bf16 values at src as f32 (exact: the bits moved up 16).
HWY_INLINE hn::Vec<DF> PromoteBF16(const hwy::bfloat16_t* HWY_RESTRICT src) {
  const DF df;
  const hn::Rebind<uint32_t, DF> du;
  const hn::Rebind<uint16_t, DF> d16;
  const auto bits = hn::LoadU(d16, reinterpret_cast<const uint16_t*>(src));
  return hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du, bits)));
}

// The Lanes(DF) int8 values at src as f32 (exact).
HWY_INLINE hn::Vec<DF> PromoteI8(const int8_t* HWY_RESTRICT src) {
  const DF df;
  const hn::Rebind<int32_t, DF> di;
  const hn::Rebind<int8_t, DF> d8;
  return hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, src)));
}

// The Lanes(DF) bytes at p (Lanes(DF) divides 16: within one Q4 block's
// nibble bytes) as int32 lanes.
HWY_INLINE hn::Vec<hn::Rebind<int32_t, DF>> Q4Bytes(const uint8_t* HWY_RESTRICT p) {
  const hn::Rebind<int32_t, DF> di;
  const hn::Rebind<uint32_t, DF> du;
  const hn::Rebind<uint8_t, DF> d8;
  return hn::BitCast(di, hn::PromoteTo(du, hn::LoadU(d8, p)));
}

// The low (values at..) or high (values 16 + at..) nibbles of Q4Bytes x as
// f32 nibble - 8.
HWY_INLINE hn::Vec<DF> Q4Low(hn::Vec<hn::Rebind<int32_t, DF>> x) {
  const hn::Rebind<int32_t, DF> di;
  return hn::ConvertTo(DF(), hn::Sub(hn::And(x, hn::Set(di, 15)), hn::Set(di, 8)));
}
HWY_INLINE hn::Vec<DF> Q4High(hn::Vec<hn::Rebind<int32_t, DF>> x) {
  const hn::Rebind<int32_t, DF> di;
  return hn::ConvertTo(DF(), hn::Sub(hn::ShiftRight<4>(x), hn::Set(di, 8)));
}

// Whether the Q4 kernels' vectors (Lanes(DF) values) divide a block's halves.
HWY_INLINE bool Q4LanesFit() { return (kQ4BlockValues / 2) % hn::Lanes(DF()) == 0; }

// dst[e] = mul * value e of the Q4 row at src, e < n (a multiple of 32).
HWY_INLINE void ConvertRowQ4(const uint8_t* HWY_RESTRICT src, int64_t n, float mul,
                             float* HWY_RESTRICT dst) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  constexpr int64_t kHalf = kQ4BlockValues / 2;
  for (int64_t b = 0; b < n / kQ4BlockValues; ++b, src += kQ4BlockBytes, dst += kQ4BlockValues) {
    const float d = Q4BlockScale(src) * mul;
    const uint8_t* bytes = src + 2;
    int64_t i = 0;
    for (; i + lanes <= kHalf; i += lanes) {
      const auto x = Q4Bytes(bytes + i);
      hn::StoreU(hn::Mul(Q4Low(x), hn::Set(df, d)), df, dst + i);
      hn::StoreU(hn::Mul(Q4High(x), hn::Set(df, d)), df, dst + kHalf + i);
    }
    for (; i < kHalf; ++i) {
      dst[i] = static_cast<float>((bytes[i] & 15) - 8) * d;
      dst[kHalf + i] = static_cast<float>((bytes[i] >> 4) - 8) * d;
    }
  }
}

// dst[e] = mul * row[e] for e < n; row = element `offset` of a tensor of dtype
// F32, F16, BF16, I8 (its int8 values, unscaled) or Q4 (byte `offset`, n a
// multiple of 32); validated before the call.
HWY_INLINE void ConvertRow(const void* data, relattn_dtype dtype, int64_t offset, int64_t n,
                           float mul, float* HWY_RESTRICT dst) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const auto vmul = hn::Set(df, mul);
  int64_t e = 0;
  if (dtype == RELATTN_Q4) {
    ConvertRowQ4(static_cast<const uint8_t*>(data) + offset, n, mul, dst);
  } else if (dtype == RELATTN_BF16) {
    const hwy::bfloat16_t* src = static_cast<const hwy::bfloat16_t*>(data) + offset;
    for (; e + lanes <= n; e += lanes) {
      hn::StoreU(hn::Mul(PromoteBF16(src + e), vmul), df, dst + e);
    }
    const uint16_t* bits = static_cast<const uint16_t*>(data) + offset;
    for (; e < n; ++e) dst[e] = mul * BF16ToF32(bits[e]);
  } else if (dtype == RELATTN_F16 && mul == 1.0f) {
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

// Prefetches the dim elements of rows j < n_rows of the next block (row j at
// rows + (kBlockKeys + j) * stride) into the outer caches: the kernels that
// stream a block in place call it a few rows at a time as they go.
template <typename T>
HWY_INLINE void PrefetchNextBlockRows(const T* HWY_RESTRICT rows, int64_t stride, int64_t n_rows,
                                      int64_t dim) {
  for (int64_t j = 0; j < n_rows; ++j) {
    const char* ahead = reinterpret_cast<const char*>(rows + (j + kBlockKeys) * stride);
    for (int64_t b = 0; b < dim * int64_t{sizeof(T)}; b += 64) PrefetchFar(ahead + b);
  }
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

// The finalize rule of the online-softmax state (softmax_state.h): writes
// o[0, dv) * final_scale (FinalScale: 1 / sum, with a sink, or 0 for a row
// that saw no key) to output element `offset`, NaN for a poisoned row (o is
// overwritten then).
HWY_INLINE void StoreFinalRow(const Plan& plan, float* HWY_RESTRICT o, float final_scale,
                              bool poisoned, int64_t offset) {
  if (poisoned) std::fill(o, o + plan.dv, NAN);
  StoreRow(o, plan.dv, final_scale, plan.o, plan.o_dtype, offset);
}

// Writes output rows [i0, i0 + rows) of head h from o_t[dv][width]
// (StoreFinalRow per lane, with the lanes' softmax state and, if not NULL,
// their sink logits sink[rows]). row: dv floats.
HWY_INLINE void StoreOutputTransposed(const Plan& plan, int32_t h, int64_t i0, int64_t rows,
                                      int64_t width, const float* HWY_RESTRICT o_t,
                                      const float* HWY_RESTRICT max, const float* HWY_RESTRICT sum,
                                      const float* HWY_RESTRICT poison,
                                      const float* HWY_RESTRICT sink, float* HWY_RESTRICT row) {
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t e = 0; e < plan.dv; ++e) row[e] = o_t[e * width + i];
    const int64_t offset = (i0 + i) * plan.o_token_stride + h * plan.o_head_stride;
    const float scale = sink ? FinalScale(sum[i], max[i], sink[i]) : FinalScale(sum[i]);
    StoreFinalRow(plan, row, scale, poison[i] != 0.0f, offset);
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_PACK_INL_H_
