// The value-range check: the finite inputs of a call keep every score and
// sum the kernel forms inside f32 (relattn.h, "Value range").
#ifndef RELATTN_LIB_API_VALIDATE_RANGE_H_
#define RELATTN_LIB_API_VALIDATE_RANGE_H_

#include <cstdint>

#include "relattn/relattn.h"

namespace relattn {

// Content scores and P.V sums stay finite in f32 when, with each maximum
// taken over the finite elements only (NaN and infinities propagate as the
// reference's do):
//   |scale| * head_dim * max|q| * (max|k| + max|a|) <= kMaxContentScore
//   n_kv * max|v|                                    <= kMaxContentScore
//   max|q|, max|k|                                   <= kMaxContentScore
// (a: the Shaw vector table, 0 otherwise). By Cauchy-Schwarz the first
// bounds every partial dot product, RoPE rotations included (they keep
// norms), in log2 units with room for a bias of up to 2^127.
inline constexpr double kMaxContentScore = 0x1p125;

// Largest |x| over the finite elements of the [n_tokens][n_heads][dim]
// tensor t (validated); I8: over its finite row scales, times 127.
float MaxAbsFinite(const relattn_tensor& t, int64_t n_tokens, int32_t n_heads, int64_t dim);

// The bound above for d, the desc as ResolveKvCache resolved it (validated).
// With cache (the caller's desc->kv_cache), the K and V maxima are the ones
// the cache recorded at append; else K and V are scanned (f16 only when
// 65504 does not already meet the bound). RELATTN_ERR_VALUE_RANGE naming
// the term and its values otherwise. rope_factor: RoPE's attention factor
// (1 without RoPE), which scales the rotated q (and tensor k; a cache's K
// is stored rotated).
relattn_status CheckValueRange(const relattn_attention_desc& d, double rope_factor,
                               const relattn_kv_cache* cache);

}  // namespace relattn

#endif  // RELATTN_LIB_API_VALIDATE_RANGE_H_
