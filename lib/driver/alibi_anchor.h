// ALiBi precision. The bias -m * distance only matters relative to the other
// keys of a query row, so each row drops a constant (softmax is invariant to
// it): the distance of its nearest visible key. What remains is exact in
// int64 and ~0 where the row's bias is largest, so the float bias keeps full
// precision near the row's dominant terms whatever the absolute offsets
// (10^12 behaves as 10):
//  - bidirectional, -m |r|: |r| - min over visible keys of |r|;
//  - causal form, -m r: anchor_key - p_k, anchor_key = the latest visible key.
// Validation bounds every position difference and the key span, so none of
// this overflows.
#ifndef RELATTN_LIB_DRIVER_ALIBI_ANCHOR_H_
#define RELATTN_LIB_DRIVER_ALIBI_ANCHOR_H_

#include <algorithm>
#include <cstdint>

#include "lib/driver/index_mask.h"
#include "lib/driver/plan.h"
#include "lib/driver/visibility.h"

namespace relattn {

// The row anchor of query i at p_q: the latest visible key position (causal
// form) or the smallest visible |p_q - p_k| (bidirectional). O(1) for keys at
// start + j without index masks, a scan of the valid keys otherwise (the
// index masks' pairs left out, so that packed sequences anchor on their
// own keys). With no visible key the anchor is arbitrary (k_max or 0): the
// row has no term to keep precise.
inline int64_t AlibiRowAnchor(const Plan& plan, bool causal_form, int64_t i, int64_t p_q) {
  if (!plan.k_pos.positions && !plan.index_mask.on()) {
    // The visible keys form one range [lo, hi] of positions.
    int64_t lo = plan.k_min, hi = plan.k_max, edge;
    if (plan.mask.causal) hi = std::min(hi, p_q);
    if (plan.mask.window > 0) {
      if (!__builtin_sub_overflow(p_q, plan.mask.window - 1, &edge)) lo = std::max(lo, edge);
      if (!plan.mask.causal && !__builtin_add_overflow(p_q, plan.mask.window - 1, &edge)) {
        hi = std::min(hi, edge);
      }
    }
    if (lo > hi) return causal_form ? plan.k_max : 0;
    if (causal_form) return hi;
    return p_q < lo ? lo - p_q : (p_q > hi ? p_q - hi : 0);
  }
  bool found = false;
  int64_t best = 0;
  for (int64_t j = plan.first_valid_kv; j < plan.n_valid_kv; ++j) {
    const int64_t p_k = plan.k_pos.At(j);
    if (!PairVisible(plan.mask, p_q, p_k) || !PairAllowed(plan.index_mask, i, j)) continue;
    const int64_t r = p_q - p_k;
    const int64_t candidate = causal_form ? p_k : (r < 0 ? -r : r);
    best = !found ? candidate : causal_form ? std::max(best, candidate) : std::min(best, candidate);
    found = true;
  }
  if (!found) return causal_form ? plan.k_max : 0;
  return best;
}

// The anchored ALiBi distance of key p_k from query p_q (row anchor as above).
inline int64_t AlibiAnchoredDistance(bool causal_form, int64_t anchor, int64_t p_q, int64_t p_k) {
  if (causal_form) return anchor - p_k;
  const int64_t r = p_q - p_k;
  return (r < 0 ? -r : r) - anchor;
}

}  // namespace relattn

#endif  // RELATTN_LIB_DRIVER_ALIBI_ANCHOR_H_
