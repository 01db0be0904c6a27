// Learned attention sinks (relattn_attention_desc.sinks): one extra logit per
// head that joins the softmax's denominator when a query row is finalised
// (FinalScale in softmax_state.h), shared by prefill, decode and the split
// merge.
#ifndef RELATTN_LIB_DRIVER_SINKS_H_
#define RELATTN_LIB_DRIVER_SINKS_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "lib/driver/alibi_anchor.h"
#include "lib/driver/plan.h"

namespace relattn {

// The sink logit of query head `head` for a query at p_q, in log2 units and
// in the frame of that row's kernel scores: ALiBi rows drop a constant
// (alibi_anchor.h: -m (p_q - anchor) in the causal form, -m anchor
// bidirectional; anchor = the row's AlibiRowAnchor), so the sink gains it
// back. Computed in double from the exact int64 distance, clamped to
// +-2^127 (beyond, the sink dominates or vanishes completely either way).
// -inf when the call has no sinks.
inline float RowSinkLog2(const Plan& plan, int32_t head, int64_t p_q, int64_t anchor) {
  if (!plan.sinks) return -HUGE_VALF;
  double sink = double{plan.sinks[head]} * M_LOG2E;
  if (plan.bias.kind == BiasKind::kAlibi) {
    const bool causal_form = plan.bias.params.alibi.causal != 0;
    const double dropped = causal_form ? static_cast<double>(p_q - anchor) : double(anchor);
    sink += double{AlibiSlopeLog2(plan, head)} * dropped;
  }
  return static_cast<float>(std::clamp(sink, -0x1p127, 0x1p127));
}

// The anchor RowSinkLog2 needs for a row at p_q: its AlibiRowAnchor when
// the call has sinks and ALiBi, else 0 (for the split merge, which keeps no
// anchors; the pipelines pass the anchors their rows used).
inline int64_t SinkAnchor(const Plan& plan, int64_t p_q) {
  if (!plan.sinks || plan.bias.kind != BiasKind::kAlibi) return 0;
  return AlibiRowAnchor(plan, plan.bias.params.alibi.causal != 0, p_q);
}

}  // namespace relattn

#endif  // RELATTN_LIB_DRIVER_SINKS_H_
