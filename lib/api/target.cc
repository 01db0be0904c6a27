// relattn_active_target: the SIMD target of the kernels' run-time dispatch.
#include "lib/kernels/attention.h"
#include "relattn/relattn.h"

extern "C" {

const char* relattn_active_target(void) { return relattn::ActiveTargetName(); }

}  // extern "C"
