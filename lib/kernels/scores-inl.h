// Score micro-kernel: S = Q_tile x K_tile^T (per-target code).
#if defined(RELATTN_LIB_KERNELS_SCORES_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_SCORES_INL_H_
#undef RELATTN_LIB_KERNELS_SCORES_INL_H_
#else
#define RELATTN_LIB_KERNELS_SCORES_INL_H_
#endif

#include <cstdint>

#include "hwy/highway.h"
#include "lib/driver/plan.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// s[r][j] = sum_{e < d} q[r][e] * kt[e][j] for r < n_rows, j < kBlockKeys;
// n_rows <= kBlockQueries is a multiple of 4.
// q: [kBlockQueries][d_pad]; kt: [d][kBlockKeys]; s: [kBlockQueries][kBlockKeys].
// Register block: 4 query rows x 2 key vectors = 8 accumulators, so that each
// K load feeds 4 FMAs and each broadcast feeds 2 (fits 16 registers with the
// 2 K vectors and a broadcast on every target).
HWY_INLINE void TileScores(const float* HWY_RESTRICT q, int64_t d_pad, const float* HWY_RESTRICT kt,
                           int64_t d, int64_t n_rows, float* HWY_RESTRICT s) {
  using DF = hn::CappedTag<float, kMaxLanes>;
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  static_assert(kBlockQueries % 4 == 0 && kBlockKeys % (2 * kMaxLanes) == 0, "tile shape");
  for (int64_t r = 0; r < n_rows; r += 4) {
    const float* q0 = q + r * d_pad;
    for (int64_t j = 0; j < kBlockKeys; j += 2 * lanes) {
      auto a00 = hn::Zero(df), a01 = hn::Zero(df), a10 = hn::Zero(df), a11 = hn::Zero(df);
      auto a20 = hn::Zero(df), a21 = hn::Zero(df), a30 = hn::Zero(df), a31 = hn::Zero(df);
      for (int64_t e = 0; e < d; ++e) {
        const auto k0 = hn::LoadU(df, kt + e * kBlockKeys + j);
        const auto k1 = hn::LoadU(df, kt + e * kBlockKeys + j + lanes);
        const auto b0 = hn::Set(df, q0[e]);
        a00 = hn::MulAdd(b0, k0, a00);
        a01 = hn::MulAdd(b0, k1, a01);
        const auto b1 = hn::Set(df, q0[d_pad + e]);
        a10 = hn::MulAdd(b1, k0, a10);
        a11 = hn::MulAdd(b1, k1, a11);
        const auto b2 = hn::Set(df, q0[2 * d_pad + e]);
        a20 = hn::MulAdd(b2, k0, a20);
        a21 = hn::MulAdd(b2, k1, a21);
        const auto b3 = hn::Set(df, q0[3 * d_pad + e]);
        a30 = hn::MulAdd(b3, k0, a30);
        a31 = hn::MulAdd(b3, k1, a31);
      }
      float* s0 = s + r * kBlockKeys + j;
      hn::StoreU(a00, df, s0);
      hn::StoreU(a01, df, s0 + lanes);
      hn::StoreU(a10, df, s0 + kBlockKeys);
      hn::StoreU(a11, df, s0 + kBlockKeys + lanes);
      hn::StoreU(a20, df, s0 + 2 * kBlockKeys);
      hn::StoreU(a21, df, s0 + 2 * kBlockKeys + lanes);
      hn::StoreU(a30, df, s0 + 3 * kBlockKeys);
      hn::StoreU(a31, df, s0 + 3 * kBlockKeys + lanes);
    }
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_SCORES_INL_H_
