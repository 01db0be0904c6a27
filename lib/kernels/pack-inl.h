// Loads strided f32 / f16 rows into the kernel's f32 tiles and stores output
// rows (per-target code).
#if defined(RELATTN_LIB_KERNELS_PACK_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_PACK_INL_H_
#undef RELATTN_LIB_KERNELS_PACK_INL_H_
#else
#define RELATTN_LIB_KERNELS_PACK_INL_H_
#endif

#include <cstdint>
#include <cstring>

#include "hwy/highway.h"
#include "lib/bias/f16.h"
#include "lib/driver/plan.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Vectors of at most kMaxLanes floats: head dims are padded to kMaxLanes, and
// kBlockKeys is a multiple of 2 * kMaxLanes.
using DF = hn::CappedTag<float, kMaxLanes>;

// dst[e] = mul * row[e] for e < n; row = element `offset` of a tensor of dtype
// F32 or F16 (validated before the call).
HWY_INLINE void ConvertRow(const void* data, relattn_dtype dtype, int64_t offset, int64_t n,
                           float mul, float* HWY_RESTRICT dst) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const auto vmul = hn::Set(df, mul);
  int64_t e = 0;
  if (dtype == RELATTN_F16) {
    const hn::Rebind<hwy::float16_t, DF> dh;
    const hwy::float16_t* src = static_cast<const hwy::float16_t*>(data) + offset;
    for (; e + lanes <= n; e += lanes) {
      hn::StoreU(hn::Mul(hn::PromoteTo(df, hn::LoadU(dh, src + e)), vmul), df, dst + e);
    }
    const uint16_t* bits = static_cast<const uint16_t*>(data) + offset;
    for (; e < n; ++e) dst[e] = mul * F16ToF32(bits[e]);
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

// Query tile: rows [i0, i0 + rows) of head h, pre-multiplied by scale_log2,
// into q_tile[kBlockQueries][d_pad]; rows >= rows are zero.
HWY_INLINE void PackQueries(const Plan& plan, int32_t h, int64_t i0, int64_t rows,
                            float* HWY_RESTRICT q_tile) {
  std::memset(q_tile, 0, sizeof(float) * kBlockQueries * plan.d_pad);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t offset = (i0 + r) * plan.q.token_stride + h * plan.q.head_stride;
    ConvertRow(plan.q.data, plan.q.dtype, offset, plan.d, plan.scale_log2,
               q_tile + r * plan.d_pad);
  }
}

// Key tile, transposed: kt[e][j] = k(j0 + j, kv_head, e) for j < n_keys; columns
// j >= n_keys are zero. row_buf: d_pad floats of scratch.
HWY_INLINE void PackKeysTransposed(const Plan& plan, int32_t kv_head, int64_t j0, int64_t n_keys,
                                   float* HWY_RESTRICT row_buf, float* HWY_RESTRICT kt) {
  for (int64_t j = 0; j < kBlockKeys; ++j) {
    if (j < n_keys) {
      const int64_t offset = (j0 + j) * plan.k.token_stride + kv_head * plan.k.head_stride;
      ConvertRow(plan.k.data, plan.k.dtype, offset, plan.d, 1.0f, row_buf);
      for (int64_t e = 0; e < plan.d; ++e) kt[e * kBlockKeys + j] = row_buf[e];
    } else {
      for (int64_t e = 0; e < plan.d; ++e) kt[e * kBlockKeys + j] = 0.0f;
    }
  }
}

// Value tile: v_tile[j][e] = v(j0 + j, kv_head, e) for j < n_keys, e < dv; the
// padding columns e in [dv, dv_pad) are zero.
HWY_INLINE void PackValues(const Plan& plan, int32_t kv_head, int64_t j0, int64_t n_keys,
                           float* HWY_RESTRICT v_tile) {
  for (int64_t j = 0; j < n_keys; ++j) {
    float* row = v_tile + j * plan.dv_pad;
    const int64_t offset = (j0 + j) * plan.v.token_stride + kv_head * plan.v.head_stride;
    ConvertRow(plan.v.data, plan.v.dtype, offset, plan.dv, 1.0f, row);
    for (int64_t e = plan.dv; e < plan.dv_pad; ++e) row[e] = 0.0f;
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_PACK_INL_H_
