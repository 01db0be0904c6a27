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

// Every pointer of d aligned to its element size; o overlapping none of q,
// k, v, the positions, int8 row scales, ALiBi slopes, bias tables and their
// scales (RELATTN_ERR_OVERLAP).
// Call after the shapes and strides passed (dv: the value head dim).
relattn_status CheckMemory(const relattn_attention_desc& d, int32_t dv);

// RELATTN_ERR_OVERLAP naming `name` if bytes [data, data + bytes) share a
// byte with o, q, k or v of a validated desc (output_only: with o): the
// workspace, a KV cache's memory.
relattn_status CheckRegionApart(const relattn_attention_desc& d, const char* name, const void* data,
                                size_t bytes, bool output_only);

}  // namespace relattn

#endif  // RELATTN_LIB_API_VALIDATE_MEMORY_H_
