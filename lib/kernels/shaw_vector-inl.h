// The Shaw vector form (relattn_shaw_vector) per target: the 2k+1 products
// q . a[r] of each query are computed once per work item (the scores
// micro-kernel with the table rows as keys), then read per key like a scalar
// Shaw table.
//
// Prefill (queries in lanes): per sub-tile of W lanes, the skewed table
// S[y][i] = T[clip(y - k - i, -k, k) + k][i], y < 2k + W, T[r][i] = the
// product of lane i with a[r]. For consecutive queries, key p_k gives lane i
// the offset x - i, x = p_k - p_first: one contiguous row S[clamp(x, -k,
// k + W - 1) + k] holds every lane's term. For others, T[r][i] = S[r + i][i].
#if defined(RELATTN_LIB_KERNELS_SHAW_VECTOR_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_SHAW_VECTOR_INL_H_
#undef RELATTN_LIB_KERNELS_SHAW_VECTOR_INL_H_
#else
#define RELATTN_LIB_KERNELS_SHAW_VECTOR_INL_H_
#endif

#include <algorithm>
#include <cstdint>

#include "hwy/highway.h"
#include "lib/driver/plan.h"
#include "lib/kernels/bias_qlanes-inl.h"
#include "lib/kernels/pack-inl.h"
#include "lib/kernels/scores_qlanes-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// The 2k+1 rows a[r] of head h.
HWY_INLINE RowsF32 ShawVectorRows(const Plan& plan, int32_t head) {
  const int64_t n_r = 2 * int64_t{plan.bias.shaw_vector_k} + 1;
  const int64_t first = plan.bias.shaw_vector_per_head ? head * n_r * plan.d : 0;
  return {plan.bias.shaw_vector + first, plan.d};
}

// Fills a sub-tile's skewed table (w lanes, [2k + w][w]) from its packed
// queries q_t ([d][w], log2 units; int8 queries: integers, times q_mul).
// products: (2k + 1) x w floats of scratch.
HWY_INLINE void FillShawSkewed(const Plan& plan, int32_t head, const float* HWY_RESTRICT q_t,
                               const float* HWY_RESTRICT q_mul, int64_t w,
                               float* HWY_RESTRICT products, float* HWY_RESTRICT skewed) {
  const int64_t k = plan.bias.shaw_vector_k, n_r = 2 * k + 1;
  ScoresQLanesF32(q_t, plan.d, ShawVectorRows(plan, head), n_r, products);
  if (plan.q.dtype == RELATTN_I8) {
    for (int64_t r = 0; r < n_r; ++r) {
      for (int64_t i = 0; i < w; ++i) products[r * w + i] *= q_mul[i];
    }
  }
  for (int64_t y = 0; y < 2 * k + w; ++y) {
    for (int64_t i = 0; i < w; ++i) {
      const int64_t r = std::clamp(y - k - i, -k, k) + k;
      skewed[y * w + i] = products[r * w + i];
    }
  }
}

// Adds each lane's term to the scores s ([n_keys][w]) of keys [j0, j0 +
// n_keys) for the sub-tile's queries q.
HWY_INLINE void AddShawVector(const Plan& plan, const SubTileQueries& q,
                              const float* HWY_RESTRICT skewed, int64_t j0, int64_t n_keys,
                              float* HWY_RESTRICT s) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const int64_t w = 2 * n, k = plan.bias.shaw_vector_k;
  for (int64_t j = 0; j < n_keys; ++j) {
    const int64_t p_k = plan.k_pos.At(j0 + j);
    float* row = s + j * w;
    if (q.span.contiguous) {
      const int64_t x = p_k - q.span.first;  // fits: positions were checked
      const float* terms = skewed + (std::clamp(x, -k, k + w - 1) + k) * w;
      hn::Store(hn::Add(hn::Load(df, row), hn::Load(df, terms)), df, row);
      hn::Store(hn::Add(hn::Load(df, row + n), hn::Load(df, terms + n)), df, row + n);
    } else {
      for (int64_t i = 0; i < q.rows; ++i) {
        const int64_t r = std::clamp(p_k - plan.q_pos.At(q.i0 + i), -k, k) + k;
        row[i] += skewed[(r + i) * w + i];
      }
    }
  }
}

// Decode: the padded reversed table (the layout of Plan::table_radius) of
// one query row q ([d_pad], times mul in log2 units) of head h, and its
// HeadBias. products: 2k + 1 floats of scratch.
HWY_INLINE HeadBias ShawVectorRowBias(const Plan& plan, int32_t head, const float* HWY_RESTRICT q,
                                      float mul, float* HWY_RESTRICT products,
                                      float* HWY_RESTRICT table) {
  const int64_t k = plan.bias.shaw_vector_k, n_r = 2 * k + 1;
  const RowsF32 a = ShawVectorRows(plan, head);
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t r = 0; r < n_r; ++r) {
    const float* ar = a.rows + r * a.stride;
    auto acc = hn::Zero(df);
    int64_t e = 0;
    for (; e + lanes <= plan.d; e += lanes) {
      acc = hn::MulAdd(hn::Load(df, q + e), hn::LoadU(df, ar + e), acc);
    }
    float dot = hn::GetLane(hn::SumOfLanes(df, acc));
    for (; e < plan.d; ++e) dot += q[e] * ar[e];
    products[r] = dot * mul;
  }
  const int64_t len = n_r + 2 * kTablePad;
  for (int64_t x = 0; x < len; ++x) table[x] = products[std::clamp(k + kTablePad - x, -k, k) + k];
  return {BiasKind::kTable, false, 0.0f, table, k, len};
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_SHAW_VECTOR_INL_H_
