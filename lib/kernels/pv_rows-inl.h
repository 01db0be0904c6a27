// P.V micro-kernels for query rows (decode): o[r] += sum_j p[r][j] * v_j,
// values converted in a block or read in place (per-target code).
#if defined(RELATTN_LIB_KERNELS_PV_ROWS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_PV_ROWS_INL_H_
#undef RELATTN_LIB_KERNELS_PV_ROWS_INL_H_
#else
#define RELATTN_LIB_KERNELS_PV_ROWS_INL_H_
#endif

#include <cstddef>
#include <cstdint>

#include "hwy/highway.h"
#include "lib/driver/plan.h"
#include "lib/kernels/pack-inl.h"
#include "lib/kernels/scores_klanes-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// One row of PVRowsInPlace for columns [e0, dv): a vector at a time with two
// accumulators (even and odd keys), the columns past the last whole vector
// as one vector zero beyond dv (LoadF32Partial; o rows are dv_pad wide).
template <typename T>
HWY_INLINE void PVRowInPlace(const float* HWY_RESTRICT p, const T* HWY_RESTRICT v, int64_t v_stride,
                             int64_t n_keys, int64_t e0, int32_t dv, float* HWY_RESTRICT o) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const int64_t whole = dv / n * n;
  for (int64_t e = e0; e < dv; e += n) {
    const auto load = [&](int64_t j) {
      return e < whole ? LoadF32(v + j * v_stride + e)
                       : LoadF32Partial(v + j * v_stride + e, dv - e);
    };
    auto a0 = hn::Load(df, o + e), a1 = hn::Zero(df);
    int64_t j = 0;
    for (; j + 2 <= n_keys; j += 2) {
      a0 = hn::MulAdd(hn::Set(df, p[j]), load(j), a0);
      a1 = hn::MulAdd(hn::Set(df, p[j + 1]), load(j + 1), a1);
    }
    if (j < n_keys) a0 = hn::MulAdd(hn::Set(df, p[j]), load(j), a0);
    hn::Store(hn::Add(a0, a1), df, o + e);
  }
}

// o[r][e] += sum_{j < n_keys} p[r][j] * v_j[e] with the value rows read in
// place (v_j at v + j * v_stride, converted as loaded), for e < dv. 4 rows x
// 4 vectors of e = 16 accumulators per pass over the keys; the rest one
// vector (or, past the last whole vector of dv, one element) at a time.
template <typename T>
HWY_INLINE void PVRowsInPlace(const float* HWY_RESTRICT p, const T* HWY_RESTRICT v,
                              int64_t v_stride, int64_t n_keys, int64_t n_rows, int32_t dv,
                              int64_t dv_pad, float* HWY_RESTRICT o) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const int64_t whole = dv / n * n;  // columns in whole vectors
  int64_t r = 0;
  for (; r + 4 <= n_rows; r += 4) {
    const float *p0 = p + r * kBlockKeys, *p1 = p0 + kBlockKeys, *p2 = p1 + kBlockKeys,
                *p3 = p2 + kBlockKeys;
    float *o0 = o + r * dv_pad, *o1 = o0 + dv_pad, *o2 = o1 + dv_pad, *o3 = o2 + dv_pad;
    int64_t e = 0;
    for (; e + 4 * n <= whole; e += 4 * n) {
      auto a00 = hn::Load(df, o0 + e), a01 = hn::Load(df, o0 + e + n);
      auto a02 = hn::Load(df, o0 + e + 2 * n), a03 = hn::Load(df, o0 + e + 3 * n);
      auto a10 = hn::Load(df, o1 + e), a11 = hn::Load(df, o1 + e + n);
      auto a12 = hn::Load(df, o1 + e + 2 * n), a13 = hn::Load(df, o1 + e + 3 * n);
      auto a20 = hn::Load(df, o2 + e), a21 = hn::Load(df, o2 + e + n);
      auto a22 = hn::Load(df, o2 + e + 2 * n), a23 = hn::Load(df, o2 + e + 3 * n);
      auto a30 = hn::Load(df, o3 + e), a31 = hn::Load(df, o3 + e + n);
      auto a32 = hn::Load(df, o3 + e + 2 * n), a33 = hn::Load(df, o3 + e + 3 * n);
      for (int64_t j = 0; j < n_keys; ++j) {
        const T* vj = v + j * v_stride + e;
        if (r == 0) {  // the same values of the next block
          const char* ahead = reinterpret_cast<const char*>(vj + kBlockKeys * v_stride);
          for (size_t b = 0; b < 4 * n * sizeof(T); b += 64) PrefetchFar(ahead + b);
        }
        const auto x0 = LoadF32(vj), x1 = LoadF32(vj + n);
        const auto x2 = LoadF32(vj + 2 * n), x3 = LoadF32(vj + 3 * n);
        const auto b0 = hn::Set(df, p0[j]);
        a00 = hn::MulAdd(b0, x0, a00);
        a01 = hn::MulAdd(b0, x1, a01);
        a02 = hn::MulAdd(b0, x2, a02);
        a03 = hn::MulAdd(b0, x3, a03);
        const auto b1 = hn::Set(df, p1[j]);
        a10 = hn::MulAdd(b1, x0, a10);
        a11 = hn::MulAdd(b1, x1, a11);
        a12 = hn::MulAdd(b1, x2, a12);
        a13 = hn::MulAdd(b1, x3, a13);
        const auto b2 = hn::Set(df, p2[j]);
        a20 = hn::MulAdd(b2, x0, a20);
        a21 = hn::MulAdd(b2, x1, a21);
        a22 = hn::MulAdd(b2, x2, a22);
        a23 = hn::MulAdd(b2, x3, a23);
        const auto b3 = hn::Set(df, p3[j]);
        a30 = hn::MulAdd(b3, x0, a30);
        a31 = hn::MulAdd(b3, x1, a31);
        a32 = hn::MulAdd(b3, x2, a32);
        a33 = hn::MulAdd(b3, x3, a33);
      }
      hn::Store(a00, df, o0 + e);
      hn::Store(a01, df, o0 + e + n);
      hn::Store(a02, df, o0 + e + 2 * n);
      hn::Store(a03, df, o0 + e + 3 * n);
      hn::Store(a10, df, o1 + e);
      hn::Store(a11, df, o1 + e + n);
      hn::Store(a12, df, o1 + e + 2 * n);
      hn::Store(a13, df, o1 + e + 3 * n);
      hn::Store(a20, df, o2 + e);
      hn::Store(a21, df, o2 + e + n);
      hn::Store(a22, df, o2 + e + 2 * n);
      hn::Store(a23, df, o2 + e + 3 * n);
      hn::Store(a30, df, o3 + e);
      hn::Store(a31, df, o3 + e + n);
      hn::Store(a32, df, o3 + e + 2 * n);
      hn::Store(a33, df, o3 + e + 3 * n);
    }
    for (int64_t rr = r; rr < r + 4; ++rr) {
      PVRowInPlace(p + rr * kBlockKeys, v, v_stride, n_keys, e, dv, o + rr * dv_pad);
    }
  }
  if (n_rows < 4) PrefetchNextBlockRows(v, v_stride, n_keys, dv);
  for (; r < n_rows; ++r) {
    PVRowInPlace(p + r * kBlockKeys, v, v_stride, n_keys, 0, dv, o + r * dv_pad);
  }
}

// p[r][j] *= scales[j] for rows r < n_rows, keys j < n_keys: int8 values'
// row scales folded into the probabilities (p: [rows][kBlockKeys]).
HWY_INLINE void ScaleProbabilities(const float* HWY_RESTRICT scales, int64_t n_keys, int64_t n_rows,
                                   float* HWY_RESTRICT p) {
  for (int64_t r = 0; r < n_rows; ++r) {
    float* row = p + r * kBlockKeys;
    for (int64_t j = 0; j < n_keys; ++j) row[j] *= scales[j];
  }
}

// P.V of the rows with values [j0, j0 + n_keys) of kv_head read in place
// from plan.v: a KV cache's value rows (int8: p_rows already carry the row
// scales, ScaleProbabilities) or an f16 / f32 tensor's.
HWY_INLINE void PVRowsInPlaceV(const Plan& plan, const float* HWY_RESTRICT p_rows, int64_t n_rows,
                               int32_t kv_head, int64_t j0, int64_t n_keys,
                               float* HWY_RESTRICT o_rows) {
  const int64_t offset = j0 * plan.v.token_stride + kv_head * plan.v.head_stride;
  if (plan.v.dtype == RELATTN_I8) {
    PVRowsInPlace(p_rows, static_cast<const int8_t*>(plan.v.data) + offset, plan.v.token_stride,
                  n_keys, n_rows, plan.dv, plan.dv_pad, o_rows);
  } else if (plan.v.dtype == RELATTN_F16) {
    PVRowsInPlace(p_rows, static_cast<const hwy::float16_t*>(plan.v.data) + offset,
                  plan.v.token_stride, n_keys, n_rows, plan.dv, plan.dv_pad, o_rows);
  } else if (plan.v.dtype == RELATTN_BF16) {
    PVRowsInPlace(p_rows, static_cast<const hwy::bfloat16_t*>(plan.v.data) + offset,
                  plan.v.token_stride, n_keys, n_rows, plan.dv, plan.dv_pad, o_rows);
  } else {
    PVRowsInPlace(p_rows, static_cast<const float*>(plan.v.data) + offset, plan.v.token_stride,
                  n_keys, n_rows, plan.dv, plan.dv_pad, o_rows);
  }
}

// o[r] += sum_{j < n_keys} p[r][j] * v_block[j] for every row r, as a small
// GEMM: blocks of 4 rows x 2 output vectors (8 accumulators) are held in
// registers across the keys, so each loaded value vector feeds 4 independent
// FMA chains. p: [rows][kBlockKeys]; o: [rows][dv_pad]. (Named accumulators,
// not arrays: SVE vectors are sizeless.)
HWY_INLINE void PVRowsF32x4(const float* HWY_RESTRICT p, const float* HWY_RESTRICT v_block,
                            int64_t n_keys, int64_t dv_pad, float* HWY_RESTRICT o) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const float *p0 = p, *p1 = p + kBlockKeys, *p2 = p + 2 * kBlockKeys, *p3 = p + 3 * kBlockKeys;
  float *o0 = o, *o1 = o + dv_pad, *o2 = o + 2 * dv_pad, *o3 = o + 3 * dv_pad;
  int64_t e = 0;
  for (; e + 2 * n <= dv_pad; e += 2 * n) {
    auto a00 = hn::Load(df, o0 + e), a01 = hn::Load(df, o0 + e + n);
    auto a10 = hn::Load(df, o1 + e), a11 = hn::Load(df, o1 + e + n);
    auto a20 = hn::Load(df, o2 + e), a21 = hn::Load(df, o2 + e + n);
    auto a30 = hn::Load(df, o3 + e), a31 = hn::Load(df, o3 + e + n);
    for (int64_t j = 0; j < n_keys; ++j) {
      const float* v = v_block + j * dv_pad + e;
      const auto v0 = hn::Load(df, v), v1 = hn::Load(df, v + n);
      const auto b0 = hn::Set(df, p0[j]);
      a00 = hn::MulAdd(b0, v0, a00);
      a01 = hn::MulAdd(b0, v1, a01);
      const auto b1 = hn::Set(df, p1[j]);
      a10 = hn::MulAdd(b1, v0, a10);
      a11 = hn::MulAdd(b1, v1, a11);
      const auto b2 = hn::Set(df, p2[j]);
      a20 = hn::MulAdd(b2, v0, a20);
      a21 = hn::MulAdd(b2, v1, a21);
      const auto b3 = hn::Set(df, p3[j]);
      a30 = hn::MulAdd(b3, v0, a30);
      a31 = hn::MulAdd(b3, v1, a31);
    }
    hn::Store(a00, df, o0 + e);
    hn::Store(a01, df, o0 + e + n);
    hn::Store(a10, df, o1 + e);
    hn::Store(a11, df, o1 + e + n);
    hn::Store(a20, df, o2 + e);
    hn::Store(a21, df, o2 + e + n);
    hn::Store(a30, df, o3 + e);
    hn::Store(a31, df, o3 + e + n);
  }
  for (; e < dv_pad; e += n) {
    auto a0 = hn::Load(df, o0 + e), a1 = hn::Load(df, o1 + e);
    auto a2 = hn::Load(df, o2 + e), a3 = hn::Load(df, o3 + e);
    for (int64_t j = 0; j < n_keys; ++j) {
      const auto v = hn::Load(df, v_block + j * dv_pad + e);
      a0 = hn::MulAdd(hn::Set(df, p0[j]), v, a0);
      a1 = hn::MulAdd(hn::Set(df, p1[j]), v, a1);
      a2 = hn::MulAdd(hn::Set(df, p2[j]), v, a2);
      a3 = hn::MulAdd(hn::Set(df, p3[j]), v, a3);
    }
    hn::Store(a0, df, o0 + e);
    hn::Store(a1, df, o1 + e);
    hn::Store(a2, df, o2 + e);
    hn::Store(a3, df, o3 + e);
  }
}

// One row: 4 output vectors at a time, two keys per step into separate
// accumulators so that the FMA chains are 8 deep.
HWY_INLINE void PVRowF32(const float* HWY_RESTRICT p, const float* HWY_RESTRICT v_block,
                         int64_t n_keys, int64_t dv_pad, float* HWY_RESTRICT o) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t e = 0; e < dv_pad; e += n) {
    auto a0 = hn::Load(df, o + e), a1 = hn::Zero(df);
    int64_t j = 0;
    for (; j + 2 <= n_keys; j += 2) {
      a0 = hn::MulAdd(hn::Set(df, p[j]), hn::Load(df, v_block + j * dv_pad + e), a0);
      a1 = hn::MulAdd(hn::Set(df, p[j + 1]), hn::Load(df, v_block + (j + 1) * dv_pad + e), a1);
    }
    if (j < n_keys) a0 = hn::MulAdd(hn::Set(df, p[j]), hn::Load(df, v_block + j * dv_pad + e), a0);
    hn::Store(hn::Add(a0, a1), df, o + e);
  }
}

// o[r] += p[r] . v_block for rows r < n_rows (PVRowsF32x4, then PVRowF32).
HWY_INLINE void PVRowsF32(const float* HWY_RESTRICT p, const float* HWY_RESTRICT v_block,
                          int64_t n_keys, int64_t rows, int64_t dv_pad, float* HWY_RESTRICT o) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    PVRowsF32x4(p + r * kBlockKeys, v_block, n_keys, dv_pad, o + r * dv_pad);
  }
  for (; r < rows; ++r) PVRowF32(p + r * kBlockKeys, v_block, n_keys, dv_pad, o + r * dv_pad);
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_PV_ROWS_INL_H_
