// The ready default relattn_threads over a caller-owned pthreadpool_t.
#include <pthreadpool.h>

#include "lib/common/error.h"

namespace {

// relattn_task_fn and pthreadpool_task_1d_t are the same type:
// void (*)(void*, size_t).
void PthreadpoolParallelFor(void* context, size_t n_tasks, relattn_task_fn task, void* task_arg) {
  pthreadpool_parallelize_1d(static_cast<pthreadpool_t>(context), task, task_arg, n_tasks,
                             /*flags=*/0);
}

}  // namespace

extern "C" relattn_status relattn_threads_from_pthreadpool(void* pthreadpool,
                                                           relattn_threads* threads) {
  if (!pthreadpool) return relattn::Fail(RELATTN_ERR_NULL_ARGUMENT, "pthreadpool is NULL");
  if (!threads) return relattn::Fail(RELATTN_ERR_NULL_ARGUMENT, "threads is NULL");
  pthreadpool_t pool = static_cast<pthreadpool_t>(pthreadpool);
  threads->parallel_for = PthreadpoolParallelFor;
  threads->context = pool;
  threads->n_threads = static_cast<int32_t>(pthreadpool_get_threads_count(pool));
  return relattn::Succeed();
}
