// Per-head bias parameters in the kernel's log2 units: the ALiBi slope, and the
// padded table through which T5 and Shaw biases become contiguous loads.
#include <algorithm>
#include <cmath>

#include "lib/bias/alibi.h"
#include "lib/bias/shaw.h"
#include "lib/bias/t5.h"
#include "lib/driver/plan.h"

namespace relattn {
namespace {

// bias(r) in natural units for r = p_k - p_q, |r| <= table_radius.
float TableBias(const relattn_bias& bias, int32_t head, int64_t r) {
  if (bias.kind == RELATTN_BIAS_SHAW) {
    const relattn_shaw& shaw = bias.shaw;
    return shaw.table[(int64_t)head * (2 * shaw.k + 1) + ShawIndex(r, shaw.k)];
  }
  const relattn_t5& t5 = bias.t5;
  return T5TableEntry(t5, head, T5Bucket(r, t5.num_buckets, t5.max_distance, t5.bidirectional));
}

}  // namespace

float AlibiSlopeLog2(const Plan& plan, int32_t head) {
  const relattn_alibi& alibi = plan.bias.params.alibi;
  const float slope =
      alibi.slopes ? alibi.slopes[head] : AlibiSlope(head, plan.n_heads, alibi.max_bias);
  return static_cast<float>(slope * M_LOG2E);
}

void FillBiasTable(const Plan& plan, int32_t head, float* table) {
  const int64_t radius = plan.bias.table_radius;
  for (int64_t x = 0; x < plan.bias.table_len; ++x) {
    const int64_t r = std::clamp<int64_t>(radius + kTablePad - x, -radius, radius);
    table[x] = static_cast<float>(TableBias(plan.bias.params, head, r) * M_LOG2E);
  }
}

}  // namespace relattn
