// Compiles the fused kernel once per SIMD target and dispatches at run time.
#include "lib/kernels/attention.h"

#include <algorithm>
#include <atomic>
#include <cstdint>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "lib/kernels/attention.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "lib/kernels/decode-inl.h"
#include "lib/kernels/prefill-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {

// Claims work items until none are left; each runs the prefill or the decode
// pipeline (prefill-inl.h, decode-inl.h).
void AttendWorkItemsT(const Plan& plan, float* shared_ws, float* worker_ws,
                      std::atomic<int64_t>* next_item) {
  Worker worker{worker_ws, shared_ws, {}};
  std::fill(worker.table_head, worker.table_head + kMaxDecodeRows, -1);
  for (;;) {
    const int64_t item = next_item->fetch_add(1, std::memory_order_relaxed);
    if (item >= plan.work.n_work_items) return;
    if (plan.work.decode) {
      DecodeWorkItem(plan, item, worker);
    } else {
      AttendWorkItem(plan, item, worker);
    }
  }
}

const char* TargetNameT() { return hwy::TargetName(HWY_TARGET); }

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace relattn {

HWY_EXPORT(AttendWorkItemsT);
HWY_EXPORT(TargetNameT);

void AttendWorkItems(const Plan& plan, float* shared_ws, float* worker_ws,
                     std::atomic<int64_t>* next_item) {
  HWY_DYNAMIC_DISPATCH(AttendWorkItemsT)(plan, shared_ws, worker_ws, next_item);
}

const char* ActiveTargetName() { return HWY_DYNAMIC_DISPATCH(TargetNameT)(); }

}  // namespace relattn
#endif  // HWY_ONCE
