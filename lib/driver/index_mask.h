// The masks by token index rather than position (relattn_mask's segment ids
// and allowed-pairs bits): for one pair, and the segment-id ranges that let
// whole tiles be skipped.
#ifndef RELATTN_LIB_DRIVER_INDEX_MASK_H_
#define RELATTN_LIB_DRIVER_INDEX_MASK_H_

#include <algorithm>
#include <cstdint>

#include "lib/driver/plan.h"
#include "lib/driver/visibility.h"

namespace relattn {

// Whether query i may see key j by the segment ids and the allowed bits
// (the position masks and the valid-key range are checked elsewhere).
inline bool PairAllowed(const IndexMaskRef& m, int64_t i, int64_t j) {
  if (m.q_segments && m.q_segments[i] != m.k_segments[j]) return false;
  if (m.allowed && j >= m.allowed_key_offset) {
    const int64_t b = j - m.allowed_key_offset;
    return (m.allowed[i * m.allowed_row_words + b / 64] >> (b % 64)) & 1u;
  }
  return true;
}

// The range of the segment ids of tokens [t0, t0 + n) (n >= 1).
struct SegmentRange {
  int32_t min, max;
};

inline SegmentRange SegmentsOf(const int32_t* ids, int64_t t0, int64_t n) {
  SegmentRange r{ids[t0], ids[t0]};
  for (int64_t t = t0 + 1; t < t0 + n; ++t) {
    r.min = std::min(r.min, ids[t]);
    r.max = std::max(r.max, ids[t]);
  }
  return r;
}

// kHidden if no query id of q equals a key id of k (the ranges do not
// meet), kVisible if every pair is equal (one id on both sides), else
// kPartial.
inline TileVisibility ClassifySegments(const SegmentRange& q, const SegmentRange& k) {
  if (q.max < k.min || k.max < q.min) return TileVisibility::kHidden;
  if (q.min == q.max && k.min == k.max) return TileVisibility::kVisible;
  return TileVisibility::kPartial;
}

// Queries [i0, i0 + rows) against keys [j0, j0 + n_keys) by the index masks:
// kHidden (segments apart), kVisible (no pair needs a test), or kPartial.
inline TileVisibility ClassifyIndexTile(const IndexMaskRef& m, int64_t i0, int64_t rows, int64_t j0,
                                        int64_t n_keys) {
  TileVisibility v = TileVisibility::kVisible;
  if (m.q_segments) {
    v = ClassifySegments(SegmentsOf(m.q_segments, i0, rows), SegmentsOf(m.k_segments, j0, n_keys));
    if (v == TileVisibility::kHidden) return v;
  }
  if (m.allowed && j0 + n_keys > m.allowed_key_offset) v = TileVisibility::kPartial;
  return v;
}

// The segment ids of queries [i0, i0 + rows), or {0, 0} without segments.
inline SegmentRange QuerySegments(const IndexMaskRef& m, int64_t i0, int64_t rows) {
  return m.q_segments ? SegmentsOf(m.q_segments, i0, rows) : SegmentRange{0, 0};
}

// Hides (-inf) the pairs the index masks hide in a score tile whose lanes are
// queries i0 + i (i < rows) and rows keys j0 + j (j < n_keys), key j's scores
// at s + j * key_stride (prefill's query-lane layout).
inline void HideByIndexMaskQLanes(const IndexMaskRef& m, int64_t i0, int64_t rows, int64_t j0,
                                  int64_t n_keys, int64_t key_stride, float* s) {
  if (m.q_segments) {
    const int32_t* q = m.q_segments + i0;
    for (int64_t j = 0; j < n_keys; ++j) {
      const int32_t k = m.k_segments[j0 + j];
      float* row = s + j * key_stride;
      for (int64_t i = 0; i < rows; ++i) row[i] = q[i] == k ? row[i] : -HUGE_VALF;
    }
  }
  if (!m.allowed) return;
  for (int64_t j = std::max<int64_t>(0, m.allowed_key_offset - j0); j < n_keys; ++j) {
    const int64_t b = j0 + j - m.allowed_key_offset;
    const uint64_t* word = m.allowed + i0 * m.allowed_row_words + b / 64;
    float* row = s + j * key_stride;
    for (int64_t i = 0; i < rows; ++i) {
      if (!((word[i * m.allowed_row_words] >> (b % 64)) & 1u)) row[i] = -HUGE_VALF;
    }
  }
}

// The same for one query row i against keys j0 + j at s[j] (decode's layout).
inline void HideByIndexMaskRow(const IndexMaskRef& m, int64_t i, int64_t j0, int64_t n_keys,
                               float* s) {
  for (int64_t j = 0; j < n_keys; ++j) {
    if (!PairAllowed(m, i, j0 + j)) s[j] = -HUGE_VALF;
  }
}

}  // namespace relattn

#endif  // RELATTN_LIB_DRIVER_INDEX_MASK_H_
