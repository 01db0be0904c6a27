// The rules of the online-softmax state that every pipeline and the split
// merge share. A query row's state: running max m (log2 units, -inf before
// its first visible key), running sum l of 2^(s - m), unnormalised output o,
// and a poison flag (it saw a non-finite value).
#ifndef RELATTN_LIB_DRIVER_SOFTMAX_STATE_H_
#define RELATTN_LIB_DRIVER_SOFTMAX_STATE_H_

#include <cmath>

namespace relattn {

// What o is multiplied by at the end: 1 / l, or 0 for a row that saw no key
// (o = 0 then: it finalizes to a zero row). A poisoned row writes NaN instead.
inline float FinalScale(float sum) { return sum > 0.0f ? 1.0f / sum : 0.0f; }

// The same with a sink logit (log2 units, the row's frame; -inf: none) that
// joins the denominator: with top = max(max, sink), o is multiplied by
// 2^(max - top) / (sum 2^(max - top) + 2^(sink - top)). A row that saw no key
// (sum 0) still gets 0. Without a sink it is FinalScale(sum), bit for bit.
inline float FinalScale(float sum, float max, float sink) {
  if (!(sum > 0.0f) || sink == -HUGE_VALF) return FinalScale(sum);
  const float top = std::fmax(max, sink);
  const float kept = std::exp2(max - top);
  return kept / (sum * kept + std::exp2(sink - top));
}

// The weight of a partial state with max split_max in a merge whose max is
// max (>= split_max > -inf): 2^(split_max - max).
inline float MergeWeight(float split_max, float max) { return std::exp2(split_max - max); }

}  // namespace relattn

#endif  // RELATTN_LIB_DRIVER_SOFTMAX_STATE_H_
