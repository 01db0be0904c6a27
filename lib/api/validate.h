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

}  // namespace relattn

#endif  // RELATTN_LIB_API_VALIDATE_H_
