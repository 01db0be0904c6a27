// Learned attention sinks (relattn_attention_desc.sinks): one extra logit per
// head that joins the softmax's denominator when a query row is finalised
// (FinalScale in softmax_state.h), shared by prefill, decode and the split
// merge; and the frame of a row's kernel scores, which the sinks and the
// log-sum-exp output (lse.h) are expressed in or out of.
#ifndef RELATTN_LIB_DRIVER_SINKS_H_
#define RELATTN_LIB_DRIVER_SINKS_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "lib/driver/alibi_anchor.h"
#include "lib/driver/plan.h"

namespace relattn {

// What the kernel's scores of query head `head`'s row at p_q exceed the
// true scores by, in log2 units: ALiBi rows drop a constant (alibi_anchor.h:
// -m (p_q - anchor) in the causal form, -m anchor bidirectional; anchor = the
// row's AlibiRowAnchor); 0 for every other scheme. In double from the exact
// int64 distance.
inline double RowFrameShiftLog2(const Plan& plan, int32_t head, int64_t p_q, int64_t anchor) {
  if (plan.bias.kind != BiasKind::kAlibi) return 0.0;
  const bool causal_form = plan.bias.params.alibi.causal != 0;
  const double dropped = causal_form ? static_cast<double>(p_q - anchor) : double(anchor);
  return double{AlibiSlopeLog2(plan, head)} * dropped;
}

// The sink logit of query head `head` for a query at p_q, in log2 units and
// in the frame of that row's kernel scores (RowFrameShiftLog2 added), clamped
// to +-2^127 (beyond, the sink dominates or vanishes completely either way).
// -inf when the call has no sinks.
inline float RowSinkLog2(const Plan& plan, int32_t head, int64_t p_q, int64_t anchor) {
  if (!plan.sinks) return -HUGE_VALF;
  const double sink =
      double{plan.sinks[head]} * M_LOG2E + RowFrameShiftLog2(plan, head, p_q, anchor);
  return static_cast<float>(std::clamp(sink, -0x1p127, 0x1p127));
}

// The anchor RowFrameShiftLog2 needs for query i's row: its AlibiRowAnchor
// when the call has ALiBi and sinks or an lse output, else 0 (for the split
// merge, which keeps no anchors; the pipelines pass the anchors their rows
// used).
inline int64_t FrameAnchor(const Plan& plan, int64_t i) {
  if (!(plan.sinks || plan.lse) || plan.bias.kind != BiasKind::kAlibi) return 0;
  return AlibiRowAnchor(plan, plan.bias.params.alibi.causal != 0, i, plan.q_pos.At(i));
}

}  // namespace relattn

#endif  // RELATTN_LIB_DRIVER_SINKS_H_
