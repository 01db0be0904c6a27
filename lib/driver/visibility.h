// Which (query, key) pairs the masks hide, for one pair and for whole tiles.
#ifndef RELATTN_LIB_DRIVER_VISIBILITY_H_
#define RELATTN_LIB_DRIVER_VISIBILITY_H_

#include <cstdint>

#include "lib/driver/plan.h"

namespace relattn {

// Masks as the header defines them; key-count masking is done by the caller.
// Differences p_q - p_k are exact: validation proved they fit in int64.
inline bool PairVisible(const MaskRef& mask, int64_t p_q, int64_t p_k) {
  const int64_t r = p_q - p_k;
  if (mask.causal && r < 0) return false;
  if (mask.window > 0) {
    if (r >= mask.window) return false;
    if (!mask.causal && -r >= mask.window) return false;
  }
  return true;
}

enum class TileVisibility { kHidden, kPartial, kVisible };

// For queries with positions in [q_min, q_max] and keys in [k_min, k_max]:
// kHidden if no pair is visible, kVisible if every pair is, else kPartial.
inline TileVisibility ClassifyTile(const MaskRef& mask, int64_t q_min, int64_t q_max, int64_t k_min,
                                   int64_t k_max) {
  // Over the tile, r = p_q - p_k spans [r_min, r_max].
  const int64_t r_min = q_min - k_max;
  const int64_t r_max = q_max - k_min;
  int64_t lo = INT64_MIN, hi = INT64_MAX;  // visible r lie in [lo, hi]
  if (mask.causal) lo = 0;
  if (mask.window > 0) {
    hi = mask.window - 1;
    if (!mask.causal) lo = -(mask.window - 1);
  }
  if (r_max < lo || r_min > hi) return TileVisibility::kHidden;
  if (r_min >= lo && r_max <= hi) return TileVisibility::kVisible;
  return TileVisibility::kPartial;
}

}  // namespace relattn

#endif  // RELATTN_LIB_DRIVER_VISIBILITY_H_
