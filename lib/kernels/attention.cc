// Compiles the fused kernel once per SIMD target and dispatches at run time.
#include "lib/kernels/attention.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "lib/kernels/attention.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "lib/kernels/attention-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {

void AttendWorkItemsT(const Plan& plan, float* shared_ws, float* worker_ws,
                      std::atomic<int64_t>* next_item) {
  AttendWorkItemsImpl(plan, shared_ws, worker_ws, next_item);
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
