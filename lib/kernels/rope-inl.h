// Rotary position embedding of f32 rows as the kernels load them (per-target
// code): cos / sin of a row's angles from the per-call tables and a
// per-worker cache (lib/rope/rope.h), then the pair rotation.
#if defined(RELATTN_LIB_KERNELS_ROPE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_ROPE_INL_H_
#undef RELATTN_LIB_KERNELS_ROPE_INL_H_
#else
#define RELATTN_LIB_KERNELS_ROPE_INL_H_
#endif

#include <cstdint>

#include "hwy/highway.h"
#include "lib/driver/plan.h"
#include "lib/kernels/pack-inl.h"
#include "lib/kernels/worker-inl.h"
#include "lib/rope/rope.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Fills the worker's rope_mid with cos, sin of (p >> 6 << 6) * theta: from
// the cached cos, sin of (p >> 12 << 12) * theta (recomputed when p >> 12
// changes) and the per-call table of b * 64 * theta, combined in double.
HWY_INLINE void RopeUpdateMid(const Plan& plan, Worker& w, int64_t p) {
  const int32_t n = plan.rope.pairs;
  const int64_t a = p >> 12;
  double* top_cos = reinterpret_cast<double*>(w.ws + plan.rope_top);
  double* top_sin = top_cos + n;
  if (a != w.rope_a) {
    for (int32_t i = 0; i < n; ++i) {
      RopeSinCos(static_cast<double>(a * 4096), plan.rope.theta[i], &top_sin[i], &top_cos[i]);
    }
    w.rope_a = a;
  }
  const float* low_cos = w.shared_ws + plan.rope_tables;
  const double* mid_table = reinterpret_cast<const double*>(low_cos + 2 * kRopeLowSteps * n);
  const int64_t b = (p >> 6) & 63;
  const double* mid_cos = mid_table + b * n;
  const double* mid_sin = mid_table + (kRopeLowSteps + b) * n;
  float* out_cos = w.ws + plan.rope_mid;
  float* out_sin = out_cos + n;
  for (int32_t i = 0; i < n; ++i) {
    out_cos[i] = static_cast<float>(top_cos[i] * mid_cos[i] - top_sin[i] * mid_sin[i]);
    out_sin[i] = static_cast<float>(top_sin[i] * mid_cos[i] + top_cos[i] * mid_sin[i]);
  }
  w.rope_mid_key = p >> 6;
}

// Rotates row[0, d) of a token at position p (|p| <= 2^53) in place.
HWY_INLINE void RopeRotate(const Plan& plan, Worker& w, int64_t p, float* HWY_RESTRICT row) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const int64_t n = plan.rope.pairs;
  if ((p >> 6) != w.rope_mid_key) RopeUpdateMid(plan, w, p);
  const int64_t c = p & 63;
  const float* mid_cos = w.ws + plan.rope_mid;
  const float* mid_sin = mid_cos + n;
  const float* low_cos = w.shared_ws + plan.rope_tables + c * n;
  const float* low_sin = low_cos + kRopeLowSteps * n;
  float* cos = w.ws + plan.rope_row;
  float* sin = cos + n;
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto mc = hn::LoadU(df, mid_cos + i), ms = hn::LoadU(df, mid_sin + i);
    const auto lc = hn::LoadU(df, low_cos + i), ls = hn::LoadU(df, low_sin + i);
    hn::StoreU(hn::NegMulAdd(ms, ls, hn::Mul(mc, lc)), df, cos + i);
    hn::StoreU(hn::MulAdd(ms, lc, hn::Mul(mc, ls)), df, sin + i);
  }
  for (; i < n; ++i) {
    cos[i] = mid_cos[i] * low_cos[i] - mid_sin[i] * low_sin[i];
    sin[i] = mid_sin[i] * low_cos[i] + mid_cos[i] * low_sin[i];
  }
  if (plan.rope.interleaved) {
    for (int64_t k = 0; k < n; ++k) {
      const float x0 = row[2 * k], x1 = row[2 * k + 1];
      row[2 * k] = x0 * cos[k] - x1 * sin[k];
      row[2 * k + 1] = x0 * sin[k] + x1 * cos[k];
    }
    return;
  }
  float* HWY_RESTRICT hi = row + n;
  i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto x0 = hn::LoadU(df, row + i), x1 = hn::LoadU(df, hi + i);
    const auto vc = hn::LoadU(df, cos + i), vs = hn::LoadU(df, sin + i);
    hn::StoreU(hn::NegMulAdd(x1, vs, hn::Mul(x0, vc)), df, row + i);
    hn::StoreU(hn::MulAdd(x0, vs, hn::Mul(x1, vc)), df, hi + i);
  }
  for (; i < n; ++i) {
    const float x0 = row[i], x1 = hi[i];
    row[i] = x0 * cos[i] - x1 * sin[i];
    hi[i] = x0 * sin[i] + x1 * cos[i];
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_ROPE_INL_H_
