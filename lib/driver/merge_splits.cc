#include "lib/driver/merge_splits.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "lib/common/store_row.h"
#include "lib/driver/lse.h"
#include "lib/driver/sinks.h"
#include "lib/driver/softmax_state.h"

namespace relattn {
namespace {

// Merges row r of the n_splits partial states from `first` (each
// partial_floats_per_item apart: o at r * dv_pad, then after rows * dv_pad
// the maxes, the sums and the poison flags) into merged[0, dv); returns the
// merged sum and sets *max_out to the merged max and *poisoned_out (the
// output is merged times FinalScale).
float MergeRow(const Plan& plan, const float* first, int64_t rows, int64_t r, float* merged,
               float* max_out, bool* poisoned_out) {
  auto partial = [&](int32_t s) { return first + s * plan.work.partial_floats_per_item; };
  const int64_t max_at = rows * plan.dv_pad + r, sum_at = max_at + rows, poison_at = sum_at + rows;
  float max = -HUGE_VALF;
  bool poisoned = false;
  for (int32_t s = 0; s < plan.work.n_splits; ++s) {
    max = std::max(max, partial(s)[max_at]);
    poisoned = poisoned || partial(s)[poison_at] != 0.0f;
  }
  *max_out = max;
  *poisoned_out = poisoned;
  std::fill(merged, merged + plan.dv, poisoned ? NAN : 0.0f);
  float sum = 0.0f;
  if (max == -HUGE_VALF) return sum;
  for (int32_t s = 0; s < plan.work.n_splits; ++s) {
    const float* p = partial(s);
    if (p[max_at] == -HUGE_VALF) continue;  // the split saw no key
    const float weight = MergeWeight(p[max_at], max);
    sum += weight * p[sum_at];
    if (poisoned) continue;
    for (int64_t e = 0; e < plan.dv; ++e) merged[e] += weight * p[r * plan.dv_pad + e];
  }
  return sum;
}

}  // namespace

void MergeSplits(const Plan& plan, const float* shared_ws) {
  const int64_t n_batches = NumHeadBatches(plan);
  float merged[RELATTN_MAX_HEAD_DIM];
  for (int64_t index = 0; index < n_batches; ++index) {
    const HeadBatch batch = HeadBatchOf(plan, index);
    const int64_t rows = int64_t{batch.n_heads} * plan.n_q;
    const float* first = shared_ws + index * plan.work.n_splits * plan.work.partial_floats_per_item;
    for (int64_t r = 0; r < rows; ++r) {
      float max;
      bool poisoned;
      const float sum = MergeRow(plan, first, rows, r, merged, &max, &poisoned);
      const int32_t head = batch.head0 + static_cast<int32_t>(r / plan.n_q);
      const int64_t i = r % plan.n_q, p_q = plan.q_pos.At(i);
      const int64_t anchor = FrameAnchor(plan, i);
      const float sink = RowSinkLog2(plan, head, p_q, anchor);
      const int64_t offset = i * plan.o_token_stride + head * plan.o_head_stride;
      StoreRow(merged, plan.dv, FinalScale(sum, max, sink), plan.o, plan.o_dtype, offset);
      StoreRowLse(plan, i, head, anchor, max, sum, poisoned);
    }
  }
}

}  // namespace relattn
