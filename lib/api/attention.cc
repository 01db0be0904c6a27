// Public entry points: descriptor defaults, workspace size, the compute call.
#include "lib/kernels/attention.h"

#include <atomic>
#include <cinttypes>
#include <cstring>

#include "lib/api/kv_cache.h"
#include "lib/api/validate.h"
#include "lib/api/validate_memory.h"
#include "lib/api/validate_range.h"
#include "lib/common/error.h"
#include "lib/driver/merge_splits.h"

namespace relattn {
namespace {

relattn_status CheckThreads(const relattn_threads* threads, int32_t* n_threads) {
  *n_threads = 1;
  if (!threads || (threads->n_threads == 0 && !threads->parallel_for)) return RELATTN_OK;
  if (threads->n_threads < 1 || threads->n_threads > RELATTN_MAX_THREADS) {
    return Fail(RELATTN_ERR_BAD_THREADS, "threads->n_threads = %d: must be in 1..%d",
                threads->n_threads, RELATTN_MAX_THREADS);
  }
  if (!threads->parallel_for) {
    return Fail(RELATTN_ERR_NULL_ARGUMENT, "threads->parallel_for is NULL");
  }
  *n_threads = threads->n_threads;
  return RELATTN_OK;
}

size_t WorkspaceBytes(const Plan& plan, int32_t n_threads) {
  return (plan.shared_floats + plan.floats_per_worker * static_cast<size_t>(n_threads)) *
         sizeof(float);
}

// Resolves desc's KV cache into *resolved, validates, and plans the call.
// The plan points into *resolved (per-head bias parameters): it must outlive
// the plan.
relattn_status PlanOf(const relattn_attention_desc* desc, relattn_attention_desc* resolved,
                      Plan* plan) {
  relattn_status s;
  if ((s = ResolveKvCache(desc, resolved)) || (s = BuildPlan(resolved, plan))) return s;
  if (desc->kv_cache) {
    const uint64_t bytes = KvCacheBytes(desc->kv_cache);
    if ((s = CheckRegionApart(*resolved, "the KV cache's memory", desc->kv_cache,
                              static_cast<size_t>(bytes), /*output_only=*/true))) {
      return s;
    }
  }
  AttachKvCache(desc, plan);
  return RELATTN_OK;
}

// One compute call. The caller's parallel_for must run each task index in
// [0, n_tasks) once; what is cheap to check of that is checked: an index out
// of range or claimed twice (the first kTrackedTasks indices) does not run,
// and the call fails unless exactly n_tasks tasks ran.
inline constexpr size_t kTrackedTasks = 1024;

struct Call {
  const Plan* plan;
  float* workspace;
  size_t n_tasks;
  std::atomic<int64_t> next_item{0};
  std::atomic<int64_t> tasks_run{0};
  std::atomic<bool> misuse{false};
  std::atomic<uint64_t> claimed[kTrackedTasks / 64] = {};
};

void RunWorker(void* arg, size_t worker) {
  Call* call = static_cast<Call*>(arg);
  const Plan& plan = *call->plan;
  const uint64_t bit = uint64_t{1} << (worker % 64);
  if (worker >= call->n_tasks ||
      (worker < kTrackedTasks && (call->claimed[worker / 64].fetch_or(bit) & bit))) {
    call->misuse.store(true);  // a second worker on one workspace slice would race
    return;
  }
  call->tasks_run.fetch_add(1);
  float* ws = call->workspace + plan.shared_floats + worker * plan.floats_per_worker;
  AttendWorkItems(plan, call->workspace, ws, &call->next_item);
}

// Runs the work items on the caller's threads; RELATTN_ERR_BAD_THREADS if
// parallel_for did not run each task once (the output is then incomplete).
relattn_status RunWorkers(const relattn_threads* threads, Call* call) {
  if (call->n_tasks <= 1) {
    RunWorker(call, 0);
    return RELATTN_OK;
  }
  threads->parallel_for(threads->context, call->n_tasks, RunWorker, call);
  const int64_t ran = call->tasks_run.load();
  if (call->misuse.load() || ran != static_cast<int64_t>(call->n_tasks)) {
    return Fail(RELATTN_ERR_BAD_THREADS,
                "threads->parallel_for ran %" PRId64
                " of %zu tasks%s: each index in 0..%zu must "
                "run once",
                ran, call->n_tasks, call->misuse.load() ? " (an index twice or out of range)" : "",
                call->n_tasks - 1);
  }
  return RELATTN_OK;
}

}  // namespace
}  // namespace relattn

using relattn::Fail;

extern "C" {

int relattn_version(void) { return RELATTN_VERSION; }

const char* relattn_version_string(void) {
#define RELATTN_STR2(x) #x
#define RELATTN_STR(x) RELATTN_STR2(x)
  return RELATTN_STR(RELATTN_VERSION_MAJOR) "." RELATTN_STR(RELATTN_VERSION_MINOR) "." RELATTN_STR(
      RELATTN_VERSION_PATCH);
}

void relattn_attention_desc_init(relattn_attention_desc* desc) {
  if (!desc) return;
  std::memset(desc, 0, sizeof(*desc));
}

relattn_status relattn_attention_workspace_size(const relattn_attention_desc* desc,
                                                int32_t n_threads, size_t* workspace_bytes) {
  if (!workspace_bytes) return Fail(RELATTN_ERR_NULL_ARGUMENT, "workspace_bytes is NULL");
  if (n_threads == 0) n_threads = 1;  // a zeroed relattn_threads: the calling thread
  if (n_threads < 1 || n_threads > RELATTN_MAX_THREADS) {
    return Fail(RELATTN_ERR_BAD_THREADS, "n_threads = %d: must be in 1..%d (0: 1)", n_threads,
                RELATTN_MAX_THREADS);
  }
  relattn_attention_desc resolved;
  relattn::Plan plan;
  if (const relattn_status s = relattn::PlanOf(desc, &resolved, &plan)) return s;
  *workspace_bytes = relattn::WorkspaceBytes(plan, n_threads);
  return relattn::Succeed();
}

relattn_status relattn_attention(const relattn_attention_desc* desc, void* workspace,
                                 size_t workspace_bytes, const relattn_threads* threads) {
  int32_t n_threads;
  relattn_attention_desc resolved;
  relattn::Plan plan;
  relattn_status s;
  if ((s = relattn::CheckThreads(threads, &n_threads)) ||
      (s = relattn::PlanOf(desc, &resolved, &plan))) {
    return s;
  }
  if (!workspace) return Fail(RELATTN_ERR_NULL_ARGUMENT, "workspace is NULL");
  if (reinterpret_cast<uintptr_t>(workspace) % RELATTN_WORKSPACE_ALIGNMENT != 0) {
    return Fail(RELATTN_ERR_BAD_ALIGNMENT, "workspace = %p: must be aligned to %d bytes", workspace,
                RELATTN_WORKSPACE_ALIGNMENT);
  }
  const size_t needed = relattn::WorkspaceBytes(plan, n_threads);
  if (workspace_bytes < needed) {
    return Fail(RELATTN_ERR_WORKSPACE_TOO_SMALL,
                "workspace_bytes = %zu: must be >= %zu for this desc and n_threads = %d",
                workspace_bytes, needed, n_threads);
  }
  if ((s = relattn::CheckRegionApart(resolved, "workspace", workspace, needed,
                                     /*output_only=*/false)) ||
      (s = relattn::CheckValueRange(resolved, plan.rope.on ? plan.rope.attention_factor : 1.0,
                                    desc->kv_cache))) {
    return s;
  }
  relattn::FitWorkItemsToThreads(n_threads, &plan);
  relattn::Call call;
  call.plan = &plan;
  call.workspace = static_cast<float*>(workspace);
  if (plan.rope.on) relattn::FillRopeTables(plan.rope, call.workspace + plan.rope_tables);
  const int64_t n_tasks = plan.work.n_work_items < n_threads ? plan.work.n_work_items : n_threads;
  call.n_tasks = static_cast<size_t>(n_tasks);
  if ((s = relattn::RunWorkers(threads, &call))) return s;
  if (plan.work.n_splits > 1) relattn::MergeSplits(plan, call.workspace);
  return relattn::Succeed();
}

}  // extern "C"
