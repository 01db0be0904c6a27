// Entry point of the fused attention kernel, dispatched to the best SIMD
// target at run time (Highway).
#ifndef RELATTN_LIB_KERNELS_ATTENTION_H_
#define RELATTN_LIB_KERNELS_ATTENTION_H_

#include <atomic>
#include <cstdint>

#include "lib/driver/plan.h"

namespace relattn {

// Claims work items from *next_item (Plan::n_work_items of them: see
// prefill-inl.h and decode-inl.h) until none are left, and writes their
// output rows.
// shared_ws: plan.shared_floats floats that all workers write disjoint parts
// of (decode partial states); worker_ws: plan.floats_per_worker floats,
// 64-byte aligned, this worker's alone. Work items are independent, so the output does not depend
// on how they are shared among workers.
void AttendWorkItems(const Plan& plan, float* shared_ws, float* worker_ws,
                     std::atomic<int64_t>* next_item);

// Name of the SIMD target AttendWorkItems dispatches to now ("AVX3", "NEON").
const char* ActiveTargetName();

}  // namespace relattn

#endif  // RELATTN_LIB_KERNELS_ATTENTION_H_
