// Online softmax over streamed key blocks, and P.V accumulation (per-target
// code). All state of a query row lives here: running max m (log2 domain),
// running sum l, unnormalised output o. A row that has seen no visible key has
// m = -inf, l = 0, o = 0 and finalizes to zeros.
#if defined(RELATTN_LIB_KERNELS_ONLINE_SOFTMAX_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_ONLINE_SOFTMAX_INL_H_
#undef RELATTN_LIB_KERNELS_ONLINE_SOFTMAX_INL_H_
#else
#define RELATTN_LIB_KERNELS_ONLINE_SOFTMAX_INL_H_
#endif

#include <cmath>
#include <cstdint>

#include "hwy/highway.h"
#include "lib/driver/plan.h"
#include "lib/kernels/exp2-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Turns the scores s[0, kBlockKeys) of one row (log2 domain, -inf = hidden)
// into probabilities relative to the updated running max, rescaling o_row
// and *sum when the max grows. Returns false if every key of the block is
// hidden and the row has seen no key yet (nothing to accumulate).
HWY_INLINE bool SoftmaxRowUpdate(float* HWY_RESTRICT s, float* HWY_RESTRICT max,
                                 float* HWY_RESTRICT sum, float* HWY_RESTRICT o_row,
                                 int64_t dv_pad) {
  using DF = hn::CappedTag<float, kMaxLanes>;
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  auto vmax = hn::Set(df, -HUGE_VALF);
  for (int64_t j = 0; j < kBlockKeys; j += lanes) vmax = hn::Max(vmax, hn::LoadU(df, s + j));
  const float block_max = hn::GetLane(hn::MaxOfLanes(df, vmax));
  const float new_max = block_max > *max ? block_max : *max;
  if (new_max == -HUGE_VALF) return false;
  if (new_max > *max) {
    // Rescale only when the max grows; exp2(-inf) = 0 clears an empty row.
    const float alpha = std::exp2(*max - new_max);
    *sum *= alpha;
    const auto valpha = hn::Set(df, alpha);
    for (int64_t e = 0; e < dv_pad; e += lanes) {
      hn::StoreU(hn::Mul(hn::LoadU(df, o_row + e), valpha), df, o_row + e);
    }
    *max = new_max;
  }
  const auto vnew_max = hn::Set(df, new_max);
  auto vsum = hn::Zero(df);
  for (int64_t j = 0; j < kBlockKeys; j += lanes) {
    const auto p = Exp2NonPositive(df, hn::Sub(hn::LoadU(df, s + j), vnew_max));
    vsum = hn::Add(vsum, p);
    hn::StoreU(p, df, s + j);
  }
  *sum += hn::GetLane(hn::SumOfLanes(df, vsum));
  return true;
}

// o_row[e] += sum_{j < n_keys} p[j] * v_tile[j][e] for e < dv_pad.
// Register block: up to 4 output vectors held across the key loop.
HWY_INLINE void AccumulatePV(const float* HWY_RESTRICT p, const float* HWY_RESTRICT v_tile,
                             int64_t n_keys, int64_t dv_pad, float* HWY_RESTRICT o_row) {
  using DF = hn::CappedTag<float, kMaxLanes>;
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  int64_t e = 0;
  for (; e + 4 * lanes <= dv_pad; e += 4 * lanes) {
    auto o0 = hn::LoadU(df, o_row + e), o1 = hn::LoadU(df, o_row + e + lanes);
    auto o2 = hn::LoadU(df, o_row + e + 2 * lanes), o3 = hn::LoadU(df, o_row + e + 3 * lanes);
    for (int64_t j = 0; j < n_keys; ++j) {
      const float* v = v_tile + j * dv_pad + e;
      const auto pj = hn::Set(df, p[j]);
      o0 = hn::MulAdd(pj, hn::LoadU(df, v), o0);
      o1 = hn::MulAdd(pj, hn::LoadU(df, v + lanes), o1);
      o2 = hn::MulAdd(pj, hn::LoadU(df, v + 2 * lanes), o2);
      o3 = hn::MulAdd(pj, hn::LoadU(df, v + 3 * lanes), o3);
    }
    hn::StoreU(o0, df, o_row + e);
    hn::StoreU(o1, df, o_row + e + lanes);
    hn::StoreU(o2, df, o_row + e + 2 * lanes);
    hn::StoreU(o3, df, o_row + e + 3 * lanes);
  }
  for (; e < dv_pad; e += lanes) {
    auto o0 = hn::LoadU(df, o_row + e);
    for (int64_t j = 0; j < n_keys; ++j) {
      o0 = hn::MulAdd(hn::Set(df, p[j]), hn::LoadU(df, v_tile + j * dv_pad + e), o0);
    }
    hn::StoreU(o0, df, o_row + e);
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_ONLINE_SOFTMAX_INL_H_
