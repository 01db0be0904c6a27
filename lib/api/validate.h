// Validation of a relattn_attention_desc into a Plan.
#ifndef RELATTN_LIB_API_VALIDATE_H_
#define RELATTN_LIB_API_VALIDATE_H_

#include "lib/driver/plan.h"
#include "relattn/relattn.h"

namespace relattn {

// Checks every field of desc; on success fills plan (including its workspace
// layout) and returns RELATTN_OK, else returns the status of the first bad
// field with relattn_last_error() naming it. Reads the position arrays and
// bias tables (to check ranges and finiteness); writes nothing else.
relattn_status BuildPlan(const relattn_attention_desc* desc, Plan* plan);

// For a call on n_threads workers: halves the prefill chunk (not below
// kMinQueryChunk) until there are kWorkItemsPerThread work items per worker,
// so that dynamic scheduling balances items of unequal cost (causal). The
// workspace layout (chunk_capacity) stays as it is.
void FitWorkItemsToThreads(int32_t n_threads, Plan* plan);

}  // namespace relattn

#endif  // RELATTN_LIB_API_VALIDATE_H_
