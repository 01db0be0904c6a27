// Decode micro-kernels over Q4 rows read in place (ggml's q4_0 blocks,
// lib/common/q4.h): scores of query rows against Q4 keys and P.V with Q4
// values, each block's nibbles dequantised in registers once for up to 4
// rows (per-target code). Rows hold d (dv) values, a multiple of 32, a whole
// stride of bytes apart; Lanes(DF) divides 16 (Q4LanesFit).
#if defined(RELATTN_LIB_KERNELS_Q4_ROWS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_Q4_ROWS_INL_H_
#undef RELATTN_LIB_KERNELS_Q4_ROWS_INL_H_
#else
#define RELATTN_LIB_KERNELS_Q4_ROWS_INL_H_
#endif

#include <algorithm>
#include <cstdint>

#include "hwy/highway.h"
#include "lib/common/q4.h"
#include "lib/driver/plan.h"
#include "lib/kernels/pack-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// s[r * kBlockKeys] = q_r . key for kRows (1 or 4) query rows q_stride
// floats apart.
template <int kRows>
HWY_INLINE void ScoresQ4Key(const float* HWY_RESTRICT q, int64_t q_stride,
                            const uint8_t* HWY_RESTRICT key, int32_t d, float* HWY_RESTRICT s) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  constexpr int64_t kHalf = kQ4BlockValues / 2;
  auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  for (int64_t b = 0; b < d / kQ4BlockValues; ++b) {
    const uint8_t* block = key + b * kQ4BlockBytes;
    const auto scale = hn::Set(df, Q4BlockScale(block));
    for (int64_t i = 0; i < kHalf; i += n) {
      const auto x = Q4Bytes(block + 2 + i);
      const auto lo = hn::Mul(Q4Low(x), scale), hi = hn::Mul(Q4High(x), scale);
      const float* qe = q + b * kQ4BlockValues + i;
      a0 = hn::MulAdd(hn::Load(df, qe + kHalf), hi, hn::MulAdd(hn::Load(df, qe), lo, a0));
      if constexpr (kRows == 4) {
        qe += q_stride;
        a1 = hn::MulAdd(hn::Load(df, qe + kHalf), hi, hn::MulAdd(hn::Load(df, qe), lo, a1));
        qe += q_stride;
        a2 = hn::MulAdd(hn::Load(df, qe + kHalf), hi, hn::MulAdd(hn::Load(df, qe), lo, a2));
        qe += q_stride;
        a3 = hn::MulAdd(hn::Load(df, qe + kHalf), hi, hn::MulAdd(hn::Load(df, qe), lo, a3));
      }
    }
  }
  s[0] = hn::GetLane(hn::SumOfLanes(df, a0));
  if constexpr (kRows == 4) {
    s[kBlockKeys] = hn::GetLane(hn::SumOfLanes(df, a1));
    s[2 * kBlockKeys] = hn::GetLane(hn::SumOfLanes(df, a2));
    s[3 * kBlockKeys] = hn::GetLane(hn::SumOfLanes(df, a3));
  }
}

// s[r][j] = q_r . k_j for rows r < n_rows (q_rows [n_rows][d_pad], s_rows
// [n_rows][kBlockKeys]) and Q4 keys j < n_keys at k + j * k_stride bytes.
HWY_INLINE void ScoresRowsQ4(const float* HWY_RESTRICT q_rows, int64_t n_rows, int64_t d_pad,
                             const uint8_t* HWY_RESTRICT k, int64_t k_stride, int64_t n_keys,
                             int32_t d, float* HWY_RESTRICT s_rows) {
  PrefetchNextBlockRows(k, k_stride, n_keys, Q4RowBytes(d));
  int64_t r = 0;
  for (; r + 4 <= n_rows; r += 4) {
    for (int64_t j = 0; j < n_keys; ++j) {
      ScoresQ4Key<4>(q_rows + r * d_pad, d_pad, k + j * k_stride, d, s_rows + r * kBlockKeys + j);
    }
  }
  for (; r < n_rows; ++r) {
    for (int64_t j = 0; j < n_keys; ++j) {
      ScoresQ4Key<1>(q_rows + r * d_pad, d_pad, k + j * k_stride, d, s_rows + r * kBlockKeys + j);
    }
  }
}

// o_r[e0 + e], o_r[e0 + 16 + e] (e < Lanes) += sum_j pd_r[j] * (nibble - 8)
// of block-relative byte `at` of each key's block (at v + j * v_stride) for
// kRows rows: pd rows kBlockKeys floats apart, o rows o_stride apart.
template <int kRows>
HWY_INLINE void PVQ4Vectors(const float* HWY_RESTRICT pd, const uint8_t* HWY_RESTRICT v,
                            int64_t v_stride, int64_t n_keys, float* HWY_RESTRICT o,
                            int64_t o_stride) {
  const DF df;
  constexpr int64_t kHalf = kQ4BlockValues / 2;
  auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  auto c0 = hn::Zero(df), c1 = hn::Zero(df), c2 = hn::Zero(df), c3 = hn::Zero(df);
  for (int64_t j = 0; j < n_keys; ++j) {
    const auto x = Q4Bytes(v + j * v_stride);
    const auto lo = Q4Low(x), hi = Q4High(x);
    const auto p0 = hn::Set(df, pd[j]);
    a0 = hn::MulAdd(p0, lo, a0);
    c0 = hn::MulAdd(p0, hi, c0);
    if constexpr (kRows == 4) {
      const auto p1 = hn::Set(df, pd[kBlockKeys + j]), p2 = hn::Set(df, pd[2 * kBlockKeys + j]);
      const auto p3 = hn::Set(df, pd[3 * kBlockKeys + j]);
      a1 = hn::MulAdd(p1, lo, a1);
      c1 = hn::MulAdd(p1, hi, c1);
      a2 = hn::MulAdd(p2, lo, a2);
      c2 = hn::MulAdd(p2, hi, c2);
      a3 = hn::MulAdd(p3, lo, a3);
      c3 = hn::MulAdd(p3, hi, c3);
    }
  }
  const auto add = [&](float* at, hn::Vec<DF> x) {
    hn::Store(hn::Add(hn::Load(df, at), x), df, at);
  };
  add(o, a0);
  add(o + kHalf, c0);
  if constexpr (kRows == 4) {
    add(o + o_stride, a1);
    add(o + o_stride + kHalf, c1);
    add(o + 2 * o_stride, a2);
    add(o + 2 * o_stride + kHalf, c2);
    add(o + 3 * o_stride, a3);
    add(o + 3 * o_stride + kHalf, c3);
  }
}

// o[r] += sum_{j < n_keys} p[r][j] * v_j for rows r < n_rows (p [rows]
// [kBlockKeys], o [rows][dv_pad]) and Q4 values v_j at v + j * v_stride
// bytes. pd: scratch of 4 x kBlockKeys floats (p times each key's block
// scale).
HWY_INLINE void PVRowsQ4(const float* HWY_RESTRICT p, int64_t n_rows, const uint8_t* HWY_RESTRICT v,
                         int64_t v_stride, int64_t n_keys, int32_t dv, int64_t dv_pad,
                         float* HWY_RESTRICT o, float* HWY_RESTRICT pd) {
  const int64_t n = static_cast<int64_t>(hn::Lanes(DF()));
  PrefetchNextBlockRows(v, v_stride, n_keys, Q4RowBytes(dv));
  for (int64_t r = 0; r < n_rows; r += 4) {
    const int64_t rows = std::min<int64_t>(4, n_rows - r);
    for (int64_t b = 0; b < dv / kQ4BlockValues; ++b) {
      const uint8_t* block = v + b * kQ4BlockBytes;
      for (int64_t j = 0; j < n_keys; ++j) {
        const float scale = Q4BlockScale(block + j * v_stride);
        for (int64_t rr = 0; rr < rows; ++rr) {
          pd[rr * kBlockKeys + j] = p[(r + rr) * kBlockKeys + j] * scale;
        }
      }
      float* ob = o + r * dv_pad + b * kQ4BlockValues;
      for (int64_t i = 0; i < kQ4BlockValues / 2; i += n) {
        if (rows == 4) {
          PVQ4Vectors<4>(pd, block + 2 + i, v_stride, n_keys, ob + i, dv_pad);
        } else {
          for (int64_t rr = 0; rr < rows; ++rr) {
            PVQ4Vectors<1>(pd + rr * kBlockKeys, block + 2 + i, v_stride, n_keys,
                           ob + rr * dv_pad + i, dv_pad);
          }
        }
      }
    }
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_Q4_ROWS_INL_H_
