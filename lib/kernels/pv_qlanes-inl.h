// P.V micro-kernel for a sub-tile whose lanes are queries: o_t[e][lane] +=
// sum_j v_j[e] * p[j][lane] (per-target code).
#if defined(RELATTN_LIB_KERNELS_PV_QLANES_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_PV_QLANES_INL_H_
#undef RELATTN_LIB_KERNELS_PV_QLANES_INL_H_
#else
#define RELATTN_LIB_KERNELS_PV_QLANES_INL_H_
#endif

#include <cstdint>

#include "hwy/highway.h"
#include "lib/kernels/pack-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// o_t[e][0, W) += sum_{j < n_keys} v[j][e] * p[j][0, W) for e < dv.
// Register block: 4 output rows x 2 query vectors = 8 accumulators held
// across the key loop; per key, 2 loads of p and 4 broadcasts of v feed 8 FMAs.
HWY_INLINE void PVQLanesF32(const float* HWY_RESTRICT p, int64_t n_keys, RowsF32 v, int64_t dv,
                            float* HWY_RESTRICT o_t) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const int64_t w = 2 * n;
  int64_t e = 0;
  for (; e + 4 <= dv; e += 4) {
    float* o = o_t + e * w;
    auto a00 = hn::Load(df, o), a01 = hn::Load(df, o + n);
    auto a10 = hn::Load(df, o + w), a11 = hn::Load(df, o + w + n);
    auto a20 = hn::Load(df, o + 2 * w), a21 = hn::Load(df, o + 2 * w + n);
    auto a30 = hn::Load(df, o + 3 * w), a31 = hn::Load(df, o + 3 * w + n);
    for (int64_t j = 0; j < n_keys; ++j) {
      const auto p0 = hn::Load(df, p + j * w), p1 = hn::Load(df, p + j * w + n);
      const float* vj = v.rows + j * v.stride + e;
      const auto b0 = hn::Set(df, vj[0]);
      a00 = hn::MulAdd(b0, p0, a00);
      a01 = hn::MulAdd(b0, p1, a01);
      const auto b1 = hn::Set(df, vj[1]);
      a10 = hn::MulAdd(b1, p0, a10);
      a11 = hn::MulAdd(b1, p1, a11);
      const auto b2 = hn::Set(df, vj[2]);
      a20 = hn::MulAdd(b2, p0, a20);
      a21 = hn::MulAdd(b2, p1, a21);
      const auto b3 = hn::Set(df, vj[3]);
      a30 = hn::MulAdd(b3, p0, a30);
      a31 = hn::MulAdd(b3, p1, a31);
    }
    hn::Store(a00, df, o);
    hn::Store(a01, df, o + n);
    hn::Store(a10, df, o + w);
    hn::Store(a11, df, o + w + n);
    hn::Store(a20, df, o + 2 * w);
    hn::Store(a21, df, o + 2 * w + n);
    hn::Store(a30, df, o + 3 * w);
    hn::Store(a31, df, o + 3 * w + n);
  }
  for (; e < dv; ++e) {
    float* o = o_t + e * w;
    auto a0 = hn::Load(df, o), a1 = hn::Load(df, o + n);
    for (int64_t j = 0; j < n_keys; ++j) {
      const auto b = hn::Set(df, v.rows[j * v.stride + e]);
      a0 = hn::MulAdd(b, hn::Load(df, p + j * w), a0);
      a1 = hn::MulAdd(b, hn::Load(df, p + j * w + n), a1);
    }
    hn::Store(a0, df, o);
    hn::Store(a1, df, o + n);
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_PV_QLANES_INL_H_
