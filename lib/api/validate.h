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

// sinks: NULL, or n_heads logits aligned to 4 bytes, each finite with |x| <=
// 2^126 (RELATTN_ERR_BAD_SINK naming the first that is not).
relattn_status CheckSinks(const float* sinks, int32_t n_heads);

}  // namespace relattn

#endif  // RELATTN_LIB_API_VALIDATE_H_
