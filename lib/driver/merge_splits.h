// Merges the partial softmax states of decode key splits into the output.
#ifndef RELATTN_LIB_DRIVER_MERGE_SPLITS_H_
#define RELATTN_LIB_DRIVER_MERGE_SPLITS_H_

#include "lib/driver/plan.h"

namespace relattn {

// For every query row: m = max_s m_s, l = sum_s l_s 2^(m_s - m),
// o = sum_s o_s 2^(m_s - m) / l (zeros where no split saw a key; NaN where a
// split saw a non-finite value), written to
// plan.o. Exact up to rounding: the same sums one pass would form, grouped by
// split. shared_ws: the partial states the decode work items left
// (Plan::partial_floats_per_item).
void MergeSplits(const Plan& plan, const float* shared_ws);

}  // namespace relattn

#endif  // RELATTN_LIB_DRIVER_MERGE_SPLITS_H_
