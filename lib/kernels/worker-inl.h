// What prefill and decode work items share: position spans, the worker's
// workspace and its cached bias tables (per-target code).
#if defined(RELATTN_LIB_KERNELS_WORKER_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_WORKER_INL_H_
#undef RELATTN_LIB_KERNELS_WORKER_INL_H_
#else
#define RELATTN_LIB_KERNELS_WORKER_INL_H_
#endif

#include <algorithm>
#include <cstdint>

#include "hwy/highway.h"
#include "lib/driver/plan.h"
#include "lib/kernels/bias_qlanes-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {

HWY_INLINE PositionSpan SpanOf(const PositionsRef& pos, int64_t t0, int64_t n) {
  if (!pos.positions) return {pos.start + t0, pos.start + (t0 + n - 1), pos.start + t0, true};
  PositionSpan span{pos.positions[t0], pos.positions[t0], pos.positions[t0], true};
  for (int64_t t = 1; t < n; ++t) {
    const int64_t p = pos.positions[t0 + t];
    span.min = std::min(span.min, p);
    span.max = std::max(span.max, p);
    // p > first, so the unsigned difference is exact even where p - first
    // would overflow int64.
    span.contiguous =
        span.contiguous && p > span.first &&
        static_cast<uint64_t>(p) - static_cast<uint64_t>(span.first) == static_cast<uint64_t>(t);
  }
  return span;
}

// A worker's workspace and what it caches between work items.
struct Worker {
  float* ws;         // this worker's scratch
  float* shared_ws;  // decode partial states (disjoint per work item), RoPE tables
  int32_t table_head[kMaxDecodeRows];  // head whose table each slot holds; -1: none
  // RoPE (rope-inl.h): p >> 12 of the angles in ws + rope_top, p >> 6 of
  // those in ws + rope_mid; INT64_MIN: none yet (no position maps to it).
  int64_t rope_a = INT64_MIN, rope_mid_key = INT64_MIN;
};

HWY_INLINE HeadBias BiasOfHead(const Plan& plan, int32_t head, int32_t slot, Worker& worker) {
  float* table = worker.ws + plan.bias_tables + slot * plan.bias.table_len;
  HeadBias bias{plan.bias.kind, false, 0.0f, table, plan.bias.table_radius, plan.bias.table_len};
  if (plan.bias.kind == BiasKind::kAlibi) {
    bias.alibi_causal = plan.bias.params.alibi.causal != 0;
    bias.alibi_slope_log2 = AlibiSlopeLog2(plan, head);
  } else if (plan.bias.kind == BiasKind::kTable && worker.table_head[slot] != head) {
    FillBiasTable(plan, head, table);
    worker.table_head[slot] = head;
  }
  return bias;
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_WORKER_INL_H_
