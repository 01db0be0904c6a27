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

// Rows per register block of the micro-kernels (keys for the scores, output
// channels for P.V): x 2 query vectors of accumulators. 8 (16 accumulators)
// where the target has 32 vector registers, else 4 (8 of 16).
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
inline constexpr int64_t kBlockRows = 8;
#else
inline constexpr int64_t kBlockRows = 4;
#endif

// s[j][0, W) = sum_{e < d} k[j][e] * q_t[e][0, W) for keys j0 <= j < j0 +
// rows (rows <= kBlockRows, a compile-time count so that the accumulators
// stay in registers): per step of e, 2 vector loads of q_t and `rows`
// broadcasts of k feed 2 * rows FMAs.
template <int64_t kRows>
HWY_INLINE void ScoresBlock(const float* HWY_RESTRICT q_t, int64_t d, RowsF32 k, int64_t j0,
                            float* HWY_RESTRICT s) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const int64_t w = 2 * n;
  using V = decltype(hn::Zero(df));
  V a0[kRows], a1[kRows];
  const float* kr[kRows];
#pragma GCC unroll 16
  for (int64_t r = 0; r < kRows; ++r) {
    a0[r] = hn::Zero(df);
    a1[r] = hn::Zero(df);
    kr[r] = k.rows + (j0 + r) * k.stride;
  }
  for (int64_t e = 0; e < d; ++e) {
    const V q0 = hn::Load(df, q_t + e * w);
    const V q1 = hn::Load(df, q_t + e * w + n);
#pragma GCC unroll 16
    for (int64_t r = 0; r < kRows; ++r) {
      const V b = hn::Set(df, kr[r][e]);
      a0[r] = hn::MulAdd(b, q0, a0[r]);
      a1[r] = hn::MulAdd(b, q1, a1[r]);
    }
  }
#pragma GCC unroll 16
  for (int64_t r = 0; r < kRows; ++r) {
    hn::Store(a0[r], df, s + (j0 + r) * w);
    hn::Store(a1[r], df, s + (j0 + r) * w + n);
  }
}

// s[j][0, W) = sum_{e < d} k[j][e] * q_t[e][0, W) for j < n_keys, W = 2 lanes.
// q_t: [d][W], vector-aligned; k: rows of d floats; s: [n_keys][W], aligned.
// Blocks of kBlockRows keys (the FMA chains are 2 * kBlockRows deep, enough
// to cover FMA latency), then single keys.
HWY_INLINE void SubTileScores(const float* HWY_RESTRICT q_t, int64_t d, RowsF32 k, int64_t n_keys,
                              float* HWY_RESTRICT s) {
  int64_t j = 0;
  for (; j + kBlockRows <= n_keys; j += kBlockRows) ScoresBlock<kBlockRows>(q_t, d, k, j, s);
  for (; j < n_keys; ++j) ScoresBlock<1>(q_t, d, k, j, s);
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_SCORES_INL_H_
