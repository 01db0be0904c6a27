// Score micro-kernel with queries in lanes: S[j][lane] = k_j . q_lane
// (per-target code).
#if defined(RELATTN_LIB_KERNELS_SCORES_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_SCORES_INL_H_
#undef RELATTN_LIB_KERNELS_SCORES_INL_H_
#else
#define RELATTN_LIB_KERNELS_SCORES_INL_H_
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
HWY_INLINE void SubTileScores(const float* HWY_RESTRICT q_t, int64_t d, RowsF32 k, int64_t n_keys,
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

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_SCORES_INL_H_
