// Score micro-kernel with one query row at a time against keys as rows: dot
// products along the head dim (decode over tensors; per-target code).
#if defined(RELATTN_LIB_KERNELS_SCORES_ROWS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_SCORES_ROWS_INL_H_
#undef RELATTN_LIB_KERNELS_SCORES_ROWS_INL_H_
#else
#define RELATTN_LIB_KERNELS_SCORES_ROWS_INL_H_
#endif

#include <cstdint>

#include "hwy/highway.h"
#include "lib/driver/plan.h"
#include "lib/kernels/pack-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// s[r][j] = q_r . k_j for rows r < n_rows and keys j < n_keys, keys as rows:
// q_rows [n_rows][d_pad] and k_block [n_keys][d_pad] zero-padded, s_rows
// [n_rows][kBlockKeys]. 4 keys per step share each load of q_r, one
// horizontal sum per score.
HWY_INLINE void ScoresRowsF32(const float* HWY_RESTRICT q_rows, int64_t n_rows, int64_t d_pad,
                              const float* HWY_RESTRICT k_block, int64_t n_keys,
                              float* HWY_RESTRICT s_rows) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* q = q_rows + r * d_pad;
    float* s = s_rows + r * kBlockKeys;
    int64_t j = 0;
    for (; j + 4 <= n_keys; j += 4) {
      const float* k0 = k_block + j * d_pad;
      auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
      for (int64_t e = 0; e < d_pad; e += n) {
        const auto qe = hn::Load(df, q + e);
        a0 = hn::MulAdd(qe, hn::Load(df, k0 + e), a0);
        a1 = hn::MulAdd(qe, hn::Load(df, k0 + d_pad + e), a1);
        a2 = hn::MulAdd(qe, hn::Load(df, k0 + 2 * d_pad + e), a2);
        a3 = hn::MulAdd(qe, hn::Load(df, k0 + 3 * d_pad + e), a3);
      }
      s[j] = hn::GetLane(hn::SumOfLanes(df, a0));
      s[j + 1] = hn::GetLane(hn::SumOfLanes(df, a1));
      s[j + 2] = hn::GetLane(hn::SumOfLanes(df, a2));
      s[j + 3] = hn::GetLane(hn::SumOfLanes(df, a3));
    }
    for (; j < n_keys; ++j) {
      auto a0 = hn::Zero(df);
      for (int64_t e = 0; e < d_pad; e += n) {
        a0 = hn::MulAdd(hn::Load(df, q + e), hn::Load(df, k_block + j * d_pad + e), a0);
      }
      s[j] = hn::GetLane(hn::SumOfLanes(df, a0));
    }
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_SCORES_ROWS_INL_H_
