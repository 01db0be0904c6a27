// T5 relative-position buckets (Raffel et al.; mesh_tensorflow and HF transformers'
// T5Attention._relative_position_bucket): b_h(r) = table[h][bucket(r)], r = p_k - p_q.
//
// bucket(r), with nb = num_buckets / 2 per direction when bidirectional (r > 0 adds nb), else
// nb = num_buckets and n = max(-r, 0); n = |r| when bidirectional; max_exact = nb / 2:
//   n <  max_exact: n
//   n >= max_exact: min(nb - 1, max_exact + (int)(logf((float)n / max_exact)
//                        / (float)log((double)max_distance / max_exact) * (float)(nb - max_exact)))
// in exactly that fp32 order (truncation towards zero), as T5 computes it: a few buckets depend
// on those roundings (causal, 9 buckets, max_distance 128: n = 16 is bucket 6 in fp32, where fp64
// gives 5). Where the exact value lies within fp32 error of an integer, the bucket also depends
// on the logf used (torch's, numpy's, glibc's); this follows a faithfully rounded logf, checked
// against numpy float32 in tests/bias_tables.h.
#ifndef RELATTN_LIB_BIAS_T5_H_
#define RELATTN_LIB_BIAS_T5_H_

#include <cstdint>

#include "relattn/relattn.h"

namespace relattn {

inline constexpr int32_t kT5MaxBuckets = 1024;
inline constexpr int32_t kT5MaxDistance = 16384;

// The rule every T5 parameter set must pass, shared by relattn_t5_bucket and desc validation:
// num_buckets in 2..kT5MaxBuckets, and even and >= 4 when bidirectional; max_distance in
// 1..kT5MaxDistance and > max_exact (defined above, so max_exact >= 1 and
// log(max_distance / max_exact) > 0). T5 itself would divide by zero for max_exact = 0
// (2 bidirectional buckets) or max_distance = max_exact, and give buckets that overlap the exact
// ones for max_distance < max_exact; those are rejected rather than given a meaning.
// Returns RELATTN_OK (last error untouched), or records "<prefix>num_buckets = 3: must be ..."
// and returns RELATTN_ERR_BAD_BIAS_PARAMETER. prefix names the struct, e.g. "desc->bias.t5.".
relattn_status CheckT5Params(int32_t num_buckets, int32_t max_distance, bool bidirectional,
                             const char* prefix);

// The bucket of relative_position = key position - query position, for ANY int64 (INT64_MIN
// included: T5's torch.abs would overflow there; here every distance saturates to the last
// bucket of its direction). Precondition: CheckT5Params passes.
int32_t T5Bucket(int64_t relative_position, int32_t num_buckets, int32_t max_distance,
                 bool bidirectional);

// The smallest S >= 1 such that every |relative_position| >= S gets the last bucket of its
// direction (num_buckets / 2 - 1 or num_buckets - 1; when not bidirectional, every
// relative_position >= 0 is bucket 0), while S - 1 does not. S <= max_distance. The kernel needs
// table entries only for offsets in (-S, S). Costs O(max_distance) bucket evaluations.
// Precondition: CheckT5Params passes.
int64_t T5SaturationDistance(int32_t num_buckets, int32_t max_distance, bool bidirectional);

// table[head][bucket] as float: f32, f16 or scale[head] * i8. Preconditions: t5 passed
// validation (table non-NULL, dtype one of those three, table_scales non-NULL for i8),
// 0 <= bucket < num_buckets, head within the table.
float T5TableEntry(const relattn_t5& t5, int32_t head, int32_t bucket);

}  // namespace relattn

#endif  // RELATTN_LIB_BIAS_T5_H_
