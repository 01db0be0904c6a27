// Shaw et al., "Self-Attention with Relative Position Representations": clipped relative
// positions, b_h(r) = table[h][clip(r, -k, k) + k] with r = p_k - p_q (key - query, as the
// paper and tensor2tensor index them). table rows hold 2k + 1 f32 entries.
#ifndef RELATTN_LIB_BIAS_SHAW_H_
#define RELATTN_LIB_BIAS_SHAW_H_

#include <algorithm>
#include <cstdint>

namespace relattn {

inline constexpr int32_t kShawMaxK = 16384;

// Column of the Shaw table for key position - query position, in 0..2k.
// Precondition: 0 <= k <= kShawMaxK; any int64 offset.
inline int64_t ShawIndex(int64_t key_minus_query, int32_t k) {
  return std::clamp<int64_t>(key_minus_query, -k, k) + k;
}

}  // namespace relattn

#endif  // RELATTN_LIB_BIAS_SHAW_H_
