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

// Candidates of an anchor: the latest visible key position (causal form) or
// the smallest visible |p_q - p_k| (bidirectional), combined.
struct AnchorSearch {
  bool causal_form, found = false;
  int64_t best = 0;
  void Offer(int64_t candidate) {
    best = !found ? candidate : causal_form ? std::max(best, candidate) : std::min(best, candidate);
    found = true;
  }
};

// Keys [lo, hi) at consecutive positions from key lo's, no index mask among
// them: the visible ones form one position range; O(1).
inline void AnchorOfRange(const Plan& plan, int64_t p_q, int64_t lo, int64_t hi,
                          AnchorSearch* search) {
  if (lo >= hi) return;
  int64_t k_lo = plan.k_pos.At(lo), k_hi = k_lo + (hi - 1 - lo), edge;
  if (plan.mask.causal) k_hi = std::min(k_hi, p_q);
  if (plan.mask.window > 0) {
    if (!__builtin_sub_overflow(p_q, plan.mask.window - 1, &edge)) k_lo = std::max(k_lo, edge);
    if (!plan.mask.causal && !__builtin_add_overflow(p_q, plan.mask.window - 1, &edge)) {
      k_hi = std::min(k_hi, edge);
    }
  }
  if (k_lo > k_hi) return;
  search->Offer(search->causal_form ? k_hi : p_q < k_lo ? k_lo - p_q : p_q > k_hi ? p_q - k_hi : 0);
}

// Keys [lo, hi) one by one, with every mask (query i).
inline void AnchorOfScan(const Plan& plan, int64_t i, int64_t p_q, int64_t lo, int64_t hi,
                         AnchorSearch* search) {
  for (int64_t j = lo; j < hi; ++j) {
    const int64_t p_k = plan.k_pos.At(j);
    if (!PairVisible(plan.mask, p_q, p_k) || !PairAllowed(plan.index_mask, i, j)) continue;
    const int64_t r = p_q - p_k;
    search->Offer(search->causal_form ? p_k : (r < 0 ? -r : r));
  }
}

// The valid keys query i's segment id can see: with sorted key ids, the run
// of its id (binary search); else all of [first_valid_kv, n_valid_kv).
inline void SegmentKeys(const Plan& plan, int64_t i, int64_t* lo, int64_t* hi) {
  *lo = plan.first_valid_kv;
  *hi = plan.n_valid_kv;
  const IndexMaskRef& m = plan.index_mask;
  if (!m.q_segments || !m.k_sorted || *lo >= *hi) return;
  const int32_t id = m.q_segments[i];
  *lo = std::lower_bound(m.k_segments + *lo, m.k_segments + *hi, id) - m.k_segments;
  *hi = std::upper_bound(m.k_segments + *lo, m.k_segments + *hi, id) - m.k_segments;
}

// The row anchor of query i at p_q: the latest visible key position (causal
// form) or the smallest visible |p_q - p_k| (bidirectional), over the keys
// every mask leaves it (so that packed sequences anchor on their own keys).
// O(1) for the keys before the allowed bits' offset when they are at start +
// j, or are one run of the query's id at consecutive positions (sorted ids);
// a scan of the others. With no visible key
// the anchor is arbitrary (k_max or 0): the row has no term to keep precise.
inline int64_t AlibiRowAnchor(const Plan& plan, bool causal_form, int64_t i, int64_t p_q) {
  int64_t lo, hi;
  SegmentKeys(plan, i, &lo, &hi);
  const IndexMaskRef& m = plan.index_mask;
  const int64_t split = m.allowed ? std::clamp(m.allowed_key_offset, lo, std::max(lo, hi)) : hi;
  AnchorSearch search{causal_form};
  const bool one_run = m.q_segments && m.k_sorted && m.k_runs_consecutive;
  if ((!plan.k_pos.positions && (!m.q_segments || m.k_sorted)) || one_run) {
    AnchorOfRange(plan, p_q, lo, split, &search);
  } else {
    AnchorOfScan(plan, i, p_q, lo, split, &search);
  }
  AnchorOfScan(plan, i, p_q, split, hi, &search);
  if (!search.found) return causal_form ? plan.k_max : 0;
  return search.best;
}

// The anchored ALiBi distance of key p_k from query p_q (row anchor as above).
inline int64_t AlibiAnchoredDistance(bool causal_form, int64_t anchor, int64_t p_q, int64_t p_k) {
  if (causal_form) return anchor - p_k;
  const int64_t r = p_q - p_k;
  return (r < 0 ? -r : r) - anchor;
}

}  // namespace relattn

#endif  // RELATTN_LIB_DRIVER_ALIBI_ANCHOR_H_
