// The log-sum-exp output (relattn_attention_desc.lse): each query row's
// softmax denominator in natural log, from its final online-softmax state,
// shared by prefill, decode and the split merge.
#ifndef RELATTN_LIB_DRIVER_LSE_H_
#define RELATTN_LIB_DRIVER_LSE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "lib/driver/plan.h"
#include "lib/driver/sinks.h"

namespace relattn {

// ln(sum_j e^(s_ij) + e^(sink)) of a row whose state is (max, sum) in its
// kernel frame (sum of 2^(s - max), log2 units; anchor: the row's ALiBi
// anchor): the frame shift taken out, the sink (natural units) added, in
// double. NaN for a poisoned row; -inf (or the sink) for a row that saw no
// key.
inline float RowLse(const Plan& plan, int32_t head, int64_t p_q, int64_t anchor, float max,
                    float sum, bool poisoned) {
  if (poisoned) return NAN;
  const double sink = plan.sinks ? double{plan.sinks[head]} * M_LOG2E : -HUGE_VAL;
  if (!(sum > 0.0f)) return static_cast<float>(sink * M_LN2);
  const double m = double{max} - RowFrameShiftLog2(plan, head, p_q, anchor);
  const double top = std::max(m, sink);
  const double total =
      double{sum} * std::exp2(m - top) + (plan.sinks ? std::exp2(sink - top) : 0.0);
  return static_cast<float>((top + std::log2(total)) * M_LN2);
}

// Writes RowLse into plan.lse[i][head] (nothing without an lse output).
inline void StoreRowLse(const Plan& plan, int64_t i, int32_t head, int64_t anchor, float max,
                        float sum, bool poisoned) {
  if (!plan.lse) return;
  plan.lse[i * plan.n_heads + head] =
      RowLse(plan, head, plan.q_pos.At(i), anchor, max, sum, poisoned);
}

}  // namespace relattn

#endif  // RELATTN_LIB_DRIVER_LSE_H_
