// Score micro-kernels with queries in lanes: S[j][lane] = k_j . q_lane, and
// the scaling of int8 products (per-target code; the integer kernels are in
// int_dot-inl.h's table).
#if defined(RELATTN_LIB_KERNELS_SCORES_QLANES_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_SCORES_QLANES_INL_H_
#undef RELATTN_LIB_KERNELS_SCORES_QLANES_INL_H_
#else
#define RELATTN_LIB_KERNELS_SCORES_QLANES_INL_H_
#endif

#include <cstdint>

#include "hwy/highway.h"
#include "lib/kernels/pack-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// s[j][0, W) = sum_{e < d} k[j][e] * q_t[e][0, W) for j < n_keys, W = 2 lanes.
// q_t: [d][W], vector-aligned; k: rows of d floats; s: [n_keys][W], aligned.
// Register block: 4 keys x 2 query vectors = 8 accumulators; per step of e,
// 2 vector loads of q_t and 4 broadcasts of k feed 8 FMAs, and the FMA chains
// are 8 deep, enough to cover FMA latency at 2 FMAs per cycle.
HWY_INLINE void ScoresQLanesF32(const float* HWY_RESTRICT q_t, int64_t d, RowsF32 k, int64_t n_keys,
                                float* HWY_RESTRICT s) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const int64_t w = 2 * n;
  int64_t j = 0;
  for (; j + 4 <= n_keys; j += 4) {
    const float* k0 = k.rows + j * k.stride;
    const float* k1 = k0 + k.stride;
    const float* k2 = k1 + k.stride;
    const float* k3 = k2 + k.stride;
    auto a00 = hn::Zero(df), a01 = hn::Zero(df), a10 = hn::Zero(df), a11 = hn::Zero(df);
    auto a20 = hn::Zero(df), a21 = hn::Zero(df), a30 = hn::Zero(df), a31 = hn::Zero(df);
    for (int64_t e = 0; e < d; ++e) {
      const auto q0 = hn::Load(df, q_t + e * w);
      const auto q1 = hn::Load(df, q_t + e * w + n);
      const auto b0 = hn::Set(df, k0[e]);
      a00 = hn::MulAdd(b0, q0, a00);
      a01 = hn::MulAdd(b0, q1, a01);
      const auto b1 = hn::Set(df, k1[e]);
      a10 = hn::MulAdd(b1, q0, a10);
      a11 = hn::MulAdd(b1, q1, a11);
      const auto b2 = hn::Set(df, k2[e]);
      a20 = hn::MulAdd(b2, q0, a20);
      a21 = hn::MulAdd(b2, q1, a21);
      const auto b3 = hn::Set(df, k3[e]);
      a30 = hn::MulAdd(b3, q0, a30);
      a31 = hn::MulAdd(b3, q1, a31);
    }
    float* s0 = s + j * w;
    hn::Store(a00, df, s0);
    hn::Store(a01, df, s0 + n);
    hn::Store(a10, df, s0 + w);
    hn::Store(a11, df, s0 + w + n);
    hn::Store(a20, df, s0 + 2 * w);
    hn::Store(a21, df, s0 + 2 * w + n);
    hn::Store(a30, df, s0 + 3 * w);
    hn::Store(a31, df, s0 + 3 * w + n);
  }
  for (; j < n_keys; ++j) {
    const float* kj = k.rows + j * k.stride;
    auto a0 = hn::Zero(df), a1 = hn::Zero(df);
    for (int64_t e = 0; e < d; ++e) {
      const auto b = hn::Set(df, kj[e]);
      a0 = hn::MulAdd(b, hn::Load(df, q_t + e * w), a0);
      a1 = hn::MulAdd(b, hn::Load(df, q_t + e * w + n), a1);
    }
    hn::Store(a0, df, s + j * w);
    hn::Store(a1, df, s + j * w + n);
  }
}

// s[j][lane] = float(s_int[j][lane]) * q_mul[lane] * k_scale[j]: the same
// operations ScaleQLanesI8 applies to the same integers held in f32.
HWY_INLINE void ScaleQLanesI32(const float* HWY_RESTRICT q_mul, const float* HWY_RESTRICT k_scale,
                               int64_t n_keys, float* HWY_RESTRICT s) {
  const DF df;
  const hn::RebindToSigned<DF> di;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const auto m0 = hn::Load(df, q_mul), m1 = hn::Load(df, q_mul + n);
  const int32_t* s_int = reinterpret_cast<const int32_t*>(s);
  for (int64_t j = 0; j < n_keys; ++j) {
    const auto ks = hn::Set(df, k_scale[j]);
    const auto x0 = hn::ConvertTo(df, hn::Load(di, s_int + j * 2 * n));
    const auto x1 = hn::ConvertTo(df, hn::Load(di, s_int + j * 2 * n + n));
    hn::Store(hn::Mul(x0, hn::Mul(m0, ks)), df, s + j * 2 * n);
    hn::Store(hn::Mul(x1, hn::Mul(m1, ks)), df, s + j * 2 * n + n);
  }
}

// Int8 keys: s[j][lane] *= q_mul[lane] * k_scale[j], turning the integer
// products (exact in f32) into scaled scores in log2 units.
HWY_INLINE void ScaleQLanesI8(const float* HWY_RESTRICT q_mul, const float* HWY_RESTRICT k_scale,
                              int64_t n_keys, float* HWY_RESTRICT s) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const auto m0 = hn::Load(df, q_mul), m1 = hn::Load(df, q_mul + n);
  for (int64_t j = 0; j < n_keys; ++j) {
    const auto ks = hn::Set(df, k_scale[j]);
    float* row = s + j * 2 * n;
    hn::Store(hn::Mul(hn::Load(df, row), hn::Mul(m0, ks)), df, row);
    hn::Store(hn::Mul(hn::Load(df, row + n), hn::Mul(m1, ks)), df, row + n);
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_SCORES_QLANES_INL_H_
