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
#include "lib/kernels/scores_klanes-inl.h"

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

// One query row against keys j0 .. j0 + 3 read in place: 4 chains share each
// load of q.
template <typename T>
HWY_INLINE void ScoresRowx4InPlace(const float* HWY_RESTRICT q, const T* HWY_RESTRICT k,
                                   int64_t k_stride, int64_t whole, int32_t d,
                                   float* HWY_RESTRICT s) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const T *k0 = k, *k1 = k + k_stride, *k2 = k1 + k_stride, *k3 = k2 + k_stride;
  auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  for (int64_t e = 0; e < whole; e += n) {
    const auto qe = hn::Load(df, q + e);
    a0 = hn::MulAdd(qe, LoadF32(k0 + e), a0);
    a1 = hn::MulAdd(qe, LoadF32(k1 + e), a1);
    a2 = hn::MulAdd(qe, LoadF32(k2 + e), a2);
    a3 = hn::MulAdd(qe, LoadF32(k3 + e), a3);
  }
  if (whole < d) {
    const auto qe = hn::Load(df, q + whole);
    a0 = hn::MulAdd(qe, LoadF32Partial(k0 + whole, d - whole), a0);
    a1 = hn::MulAdd(qe, LoadF32Partial(k1 + whole, d - whole), a1);
    a2 = hn::MulAdd(qe, LoadF32Partial(k2 + whole, d - whole), a2);
    a3 = hn::MulAdd(qe, LoadF32Partial(k3 + whole, d - whole), a3);
  }
  s[0] = hn::GetLane(hn::SumOfLanes(df, a0));
  s[1] = hn::GetLane(hn::SumOfLanes(df, a1));
  s[2] = hn::GetLane(hn::SumOfLanes(df, a2));
  s[3] = hn::GetLane(hn::SumOfLanes(df, a3));
}

// Four query rows (q_stride apart) against keys j0, j0 + 1 read in place:
// each key vector is converted once for the four rows.
template <typename T>
HWY_INLINE void ScoresRows4x2InPlace(const float* HWY_RESTRICT q, int64_t q_stride,
                                     const T* HWY_RESTRICT k, int64_t k_stride, int64_t whole,
                                     int32_t d, float* HWY_RESTRICT s) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const float *q0 = q, *q1 = q + q_stride, *q2 = q1 + q_stride, *q3 = q2 + q_stride;
  const T *k0 = k, *k1 = k + k_stride;
  auto a00 = hn::Zero(df), a01 = hn::Zero(df), a10 = hn::Zero(df), a11 = hn::Zero(df);
  auto a20 = hn::Zero(df), a21 = hn::Zero(df), a30 = hn::Zero(df), a31 = hn::Zero(df);
  for (int64_t e = 0; e < d; e += n) {  // the last vector zero past d (LoadF32Partial)
    const auto x0 = e < whole ? LoadF32(k0 + e) : LoadF32Partial(k0 + e, d - e);
    const auto x1 = e < whole ? LoadF32(k1 + e) : LoadF32Partial(k1 + e, d - e);
    const auto b0 = hn::Load(df, q0 + e), b1 = hn::Load(df, q1 + e);
    const auto b2 = hn::Load(df, q2 + e), b3 = hn::Load(df, q3 + e);
    a00 = hn::MulAdd(b0, x0, a00);
    a01 = hn::MulAdd(b0, x1, a01);
    a10 = hn::MulAdd(b1, x0, a10);
    a11 = hn::MulAdd(b1, x1, a11);
    a20 = hn::MulAdd(b2, x0, a20);
    a21 = hn::MulAdd(b2, x1, a21);
    a30 = hn::MulAdd(b3, x0, a30);
    a31 = hn::MulAdd(b3, x1, a31);
  }
  s[0] = hn::GetLane(hn::SumOfLanes(df, a00));
  s[1] = hn::GetLane(hn::SumOfLanes(df, a01));
  s[kBlockKeys] = hn::GetLane(hn::SumOfLanes(df, a10));
  s[kBlockKeys + 1] = hn::GetLane(hn::SumOfLanes(df, a11));
  s[2 * kBlockKeys] = hn::GetLane(hn::SumOfLanes(df, a20));
  s[2 * kBlockKeys + 1] = hn::GetLane(hn::SumOfLanes(df, a21));
  s[3 * kBlockKeys] = hn::GetLane(hn::SumOfLanes(df, a30));
  s[3 * kBlockKeys + 1] = hn::GetLane(hn::SumOfLanes(df, a31));
}

// One query row against key j read in place.
template <typename T>
HWY_INLINE float ScoreRowInPlace(const float* HWY_RESTRICT q, const T* HWY_RESTRICT k,
                                 int64_t whole, int32_t d) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  auto a = hn::Zero(df);
  for (int64_t e = 0; e < whole; e += n) a = hn::MulAdd(hn::Load(df, q + e), LoadF32(k + e), a);
  if (whole < d) a = hn::MulAdd(hn::Load(df, q + whole), LoadF32Partial(k + whole, d - whole), a);
  return hn::GetLane(hn::SumOfLanes(df, a));
}

// s[r][j] = q_r . k_j as ScoresRowsF32, with key j read where it lies (at
// k + j * k_stride, d elements of T, converted as loaded: no copy of the
// block). Blocks of 4 rows x 2 keys, then 1 row x 4 keys for the rows left.
template <typename T>
HWY_INLINE void ScoresRowsInPlace(const float* HWY_RESTRICT q_rows, int64_t n_rows, int64_t d_pad,
                                  const T* HWY_RESTRICT k, int64_t k_stride, int64_t n_keys,
                                  int32_t d, float* HWY_RESTRICT s_rows) {
  const int64_t n = static_cast<int64_t>(hn::Lanes(DF()));
  const int64_t whole = d / n * n;
  int64_t r = 0;
  for (; r + 4 <= n_rows; r += 4) {
    const float* q = q_rows + r * d_pad;
    float* s = s_rows + r * kBlockKeys;
    int64_t j = 0;
    for (; j + 2 <= n_keys; j += 2) {
      if (r == 0) PrefetchNextBlockRows(k + j * k_stride, k_stride, 2, d);
      ScoresRows4x2InPlace(q, d_pad, k + j * k_stride, k_stride, whole, d, s + j);
    }
    for (; j < n_keys; ++j) {
      for (int64_t rr = 0; rr < 4; ++rr) {
        s[rr * kBlockKeys + j] = ScoreRowInPlace(q + rr * d_pad, k + j * k_stride, whole, d);
      }
    }
  }
  if (n_rows < 4) PrefetchNextBlockRows(k, k_stride, n_keys, d);
  for (; r < n_rows; ++r) {
    const float* q = q_rows + r * d_pad;
    float* s = s_rows + r * kBlockKeys;
    int64_t j = 0;
    for (; j + 4 <= n_keys; j += 4)
      ScoresRowx4InPlace(q, k + j * k_stride, k_stride, whole, d, s + j);
    for (; j < n_keys; ++j) s[j] = ScoreRowInPlace(q, k + j * k_stride, whole, d);
  }
}

// ScoresRowsInPlace over keys [j0, j0 + n_keys) of kv_head of the f16 / bf16 / f32
// tensor plan.k.
HWY_INLINE void ScoresRowsTensor(const Plan& plan, const float* HWY_RESTRICT q_rows, int64_t n_rows,
                                 int32_t kv_head, int64_t j0, int64_t n_keys,
                                 float* HWY_RESTRICT s_rows) {
  const int64_t offset = j0 * plan.k.token_stride + kv_head * plan.k.head_stride;
  if (plan.k.dtype == RELATTN_F16) {
    ScoresRowsInPlace(q_rows, n_rows, plan.d_pad,
                      static_cast<const hwy::float16_t*>(plan.k.data) + offset, plan.k.token_stride,
                      n_keys, plan.d, s_rows);
  } else if (plan.k.dtype == RELATTN_BF16) {
    ScoresRowsInPlace(q_rows, n_rows, plan.d_pad,
                      static_cast<const hwy::bfloat16_t*>(plan.k.data) + offset,
                      plan.k.token_stride, n_keys, plan.d, s_rows);
  } else {
    ScoresRowsInPlace(q_rows, n_rows, plan.d_pad, static_cast<const float*>(plan.k.data) + offset,
                      plan.k.token_stride, n_keys, plan.d, s_rows);
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_SCORES_ROWS_INL_H_
