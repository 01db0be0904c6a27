#include "lib/driver/merge_splits.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "lib/common/f16.h"

namespace relattn {
namespace {

// Writes row * scale to output element `offset` as F32 or F16.
void StoreScaled(const Plan& plan, const float* row, float scale, int64_t offset) {
  if (plan.o_dtype == RELATTN_F16) {
    uint16_t* out = static_cast<uint16_t*>(plan.o) + offset;
    for (int64_t e = 0; e < plan.dv; ++e) out[e] = F32ToF16(row[e] * scale);
  } else {
    float* out = static_cast<float*>(plan.o) + offset;
    for (int64_t e = 0; e < plan.dv; ++e) out[e] = row[e] * scale;
  }
}

}  // namespace

void MergeSplits(const Plan& plan, const float* shared_ws) {
  const int64_t n_groups = int64_t{plan.n_kv_heads} * plan.head_batches;
  float merged[RELATTN_MAX_HEAD_DIM];
  for (int64_t group_item = 0; group_item < n_groups; ++group_item) {
    const int32_t kv_head = static_cast<int32_t>(group_item / plan.head_batches);
    const int32_t head0 =
        kv_head * plan.group +
        static_cast<int32_t>(group_item % plan.head_batches) * plan.heads_per_item;
    const int32_t n_slots = std::min(plan.heads_per_item, (kv_head + 1) * plan.group - head0);
    const int64_t rows = int64_t{n_slots} * plan.n_q;
    const float* first = shared_ws + group_item * plan.n_splits * plan.partial_floats_per_item;
    for (int64_t r = 0; r < rows; ++r) {
      // Split s: o at partial + r * dv_pad, max at partial + rows * dv_pad + r,
      // then the sums, then the poison flags.
      auto partial = [&](int32_t s) { return first + s * plan.partial_floats_per_item; };
      float max = -HUGE_VALF;
      for (int32_t s = 0; s < plan.n_splits; ++s) {
        max = std::max(max, partial(s)[rows * plan.dv_pad + r]);
      }
      float sum = 0.0f;
      bool poisoned = false;
      for (int32_t s = 0; s < plan.n_splits; ++s) {
        poisoned = poisoned || partial(s)[rows * plan.dv_pad + 2 * rows + r] != 0.0f;
      }
      std::fill(merged, merged + plan.dv, poisoned ? NAN : 0.0f);
      if (max != -HUGE_VALF) {
        for (int32_t s = 0; s < plan.n_splits; ++s) {
          const float* p = partial(s);
          const float split_max = p[rows * plan.dv_pad + r];
          if (split_max == -HUGE_VALF) continue;
          const float weight = std::exp2(split_max - max);
          sum += weight * p[rows * plan.dv_pad + rows + r];
          if (poisoned) continue;
          for (int64_t e = 0; e < plan.dv; ++e) merged[e] += weight * p[r * plan.dv_pad + e];
        }
      }
      const int64_t offset =
          (r % plan.n_q) * plan.o_token_stride + (head0 + r / plan.n_q) * plan.o_head_stride;
      StoreScaled(plan, merged, sum > 0.0f ? 1.0f / sum : 0.0f, offset);
    }
  }
}

}  // namespace relattn
