// RoPE frequency families (relattn_rope_scaling): the theta table and the
// attention factor of each, from the definitions in relattn.h.
#ifndef RELATTN_LIB_ROPE_ROPE_SCALING_H_
#define RELATTN_LIB_ROPE_ROPE_SCALING_H_

#include <cstdint>

#include "relattn/relattn.h"

namespace relattn {

// Validates s for rotary_dims and base (both valid) and fills theta[0,
// rotary_dims / 2) (before linear_scale) and *attention_factor (> 0).
// prefix names the rope struct in messages ("rope."); RELATTN_ERR_BAD_ROPE
// naming the field otherwise. Writes nothing on failure.
relattn_status ResolveRopeScaling(const relattn_rope_scaling& s, int32_t rotary_dims, double base,
                                  const char* prefix, double* theta, double* attention_factor);

}  // namespace relattn

#endif  // RELATTN_LIB_ROPE_ROPE_SCALING_H_
