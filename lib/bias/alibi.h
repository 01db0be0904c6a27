// ALiBi (Press et al., "Train Short, Test Long"): b_h(r) = -m_h * |r| or -m_h * r, r = p_q - p_k.
// This file owns the slopes m_h; the kernel applies them.
#ifndef RELATTN_LIB_BIAS_ALIBI_H_
#define RELATTN_LIB_BIAS_ALIBI_H_

#include <cstdint>

#include "relattn/relattn.h"

namespace relattn {

// The slope of head `head` of n_heads from max_bias: with P = the largest power of two
// <= n_heads, 2^(-max_bias * (head + 1) / P) for head < P, else
// 2^(-max_bias * (2 * (head - P) + 1) / (2 * P)). The exponent is exact in double and 2^x is
// taken in double, so the float result is the correctly rounded slope (for any libm whose exp2
// errs by less than 2^-29). max_bias = 8 gives the ALiBi paper's get_slopes(); ggml's float
// powf route differs from these by up to 6 ulp.
// Preconditions: 0 <= head < n_heads <= RELATTN_MAX_HEADS; CheckAlibiMaxBias(max_bias) passes.
float AlibiSlope(int32_t head, int32_t n_heads, float max_bias);

// RELATTN_OK if max_bias is finite and > 0 (last error untouched); else records
// "<name> = <value>: must be finite and > 0" and returns RELATTN_ERR_BAD_BIAS_PARAMETER.
relattn_status CheckAlibiMaxBias(float max_bias, const char* name);

}  // namespace relattn

#endif  // RELATTN_LIB_BIAS_ALIBI_H_
