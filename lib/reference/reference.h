// The fp64 oracle every test compares the library against. It builds each head's whole
// n_q x n_kv score matrix the obvious way and takes each position scheme from its own source
// (the ALiBi paper's get_slopes, ggml's max_bias formula, HF's T5 bucket function, Shaw's clip),
// sharing no code with lib/ (not even f16 decoding), so that a mistake in one is not mirrored in
// the other. Written for clarity, not speed: it allocates O(n_q * n_kv) doubles per call.
#ifndef RELATTN_LIB_REFERENCE_REFERENCE_H_
#define RELATTN_LIB_REFERENCE_REFERENCE_H_

#include <cstdint>
#include <vector>

#include "relattn/relattn.h"

namespace relattn::reference {

// Computes desc's attention in double into out, contiguous [n_q][n_heads][v_head_dim]
// (v_head_dim 0 means head_dim); desc.o is not read or written. q, k, v may be F32, F16 or I8
// (element = row scale * int8). A query that sees no key gets zeros. lse (NULL: not wanted):
// [n_q][n_heads], ln of each row's softmax denominator (sinks included), -inf for none.
// Precondition: relattn_attention would accept desc; it is asserted, not validated.
void Attention(const relattn_attention_desc& desc, double* out, double* lse = nullptr);

// RoPE's theta_i, i < rotary_dims / 2, for rope on rows of head_dim elements, and its attention
// factor in *gain: each family from its published definition (Meta's apply_scaling for llama3,
// YaRN's find_correction_range and linear ramp, longrope's short / long factors), in double.
std::vector<double> RopeThetas(const relattn_rope& rope, int32_t head_dim, double* gain);

// The value of an IEEE binary16 bit pattern, from its sign, exponent and fraction fields.
double F16ToDouble(uint16_t bits);

// The slope of head `head` used when relattn_alibi.slopes is NULL, rounded to float as
// relattn_alibi_slopes returns it: max_bias == 8 by the ALiBi paper's recursive get_slopes(),
// any other max_bias by ggml's m0 / m1 formula, both evaluated in double.
float AlibiSlope(int32_t head, int32_t n_heads, float max_bias);

// T5's bucket of relative_position = key - query as HF computes it in fp32, for any int64 (the
// distance is taken exactly, as uint64). Precondition: valid parameters (see relattn_t5).
int32_t T5Bucket(int64_t relative_position, int32_t num_buckets, int32_t max_distance,
                 bool bidirectional);

}  // namespace relattn::reference

#endif  // RELATTN_LIB_REFERENCE_REFERENCE_H_
