// Validation of where a relattn_attention_desc's memory lies: alignment of
// every pointer, and an output that shares no byte with what the call reads.
#ifndef RELATTN_LIB_API_VALIDATE_MEMORY_H_
#define RELATTN_LIB_API_VALIDATE_MEMORY_H_

#include <cstddef>
#include <cstdint>

#include "relattn/relattn.h"

namespace relattn {

// RELATTN_ERR_BAD_ALIGNMENT naming `name` unless data is a multiple of alignment.
relattn_status CheckAligned(const char* name, const void* data, size_t alignment);

// o and lse aligned to their element size (CheckTensor checks q, k, v),
// each overlapping neither the other nor q, k, v, the positions, int8 row
// scales, ALiBi slopes, bias tables and their scales (RELATTN_ERR_OVERLAP).
// Call after the shapes and strides passed (dv: the value head dim).
relattn_status CheckMemory(const relattn_attention_desc& d, int32_t dv);

// RELATTN_ERR_OVERLAP naming `name` if bytes [data, data + bytes) share a
// byte with o, lse, q, k or v of a validated desc (output_only: with o or lse): the
// workspace, a KV cache's memory.
relattn_status CheckRegionApart(const relattn_attention_desc& d, const char* name, const void* data,
                                size_t bytes, bool output_only);

// RELATTN_ERR_OVERLAP naming a and b if [a_data, a_data + a_bytes) and
// [b_data, b_data + b_bytes) share a byte.
relattn_status CheckBytesApart(const char* a, const void* a_data, size_t a_bytes, const char* b,
                               const void* b_data, size_t b_bytes);

// RELATTN_ERR_OVERLAP naming `name` if tensor t (a [n_tokens][n_heads][dim]
// that passed CheckTensor) shares a byte with [region, region + bytes).
relattn_status CheckTensorApart(const char* name, const relattn_tensor& t, int64_t n_tokens,
                                int32_t n_heads, int64_t dim, const char* region_name,
                                const void* region, size_t bytes);

}  // namespace relattn

#endif  // RELATTN_LIB_API_VALIDATE_MEMORY_H_
