// One block of keys as both pipelines' score and P.V stages read it, and the
// one producer that loads it: K and V rows as f32 (converted, rotated by
// RoPE), int8 keys' row scales or packed integers, and the keys whose K or V
// row is non-finite (per-target code).
#if defined(RELATTN_LIB_KERNELS_KEY_BLOCK_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_KEY_BLOCK_INL_H_
#undef RELATTN_LIB_KERNELS_KEY_BLOCK_INL_H_
#else
#define RELATTN_LIB_KERNELS_KEY_BLOCK_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "hwy/highway.h"
#include "lib/common/bf16.h"
#include "lib/common/dtype.h"
#include "lib/common/f16.h"
#include "lib/driver/index_mask.h"
#include "lib/driver/plan.h"
#include "lib/driver/visibility.h"
#include "lib/kernels/int_dot-inl.h"
#include "lib/kernels/pack-inl.h"
#include "lib/kernels/rope-inl.h"
#include "lib/kernels/worker-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {

// Int8 keys as the integer kernel reads them (IntDotPrefill, PackKeysInt).
struct KeysInt {
  const IntDotKernels* kernels;  // null: none
  const void* rows;              // [n_keys][d4] as kernels->encoding says
  const int32_t* sums;
};

// Keys [j0, j0 + n_keys) of one KV head. A row of k or v with rows == null
// is read elsewhere: K as integers (k_int), finite bf16 K in prefill where it
// lies (k_bf16) with its V packed in key pairs (v_pairs), or, in decode, in
// place: over a KV cache K from its key groups (Q4: its rows) and V from its
// rows, over finite f16 / bf16 / f32 tensors (DecodeInPlace) K and V rows
// where they lie.
struct KeyBlock {
  int64_t j0, n_keys;
  PositionSpan span;        // the keys' positions
  RowsF32 k;                // f32 keys (RoPE applied), zero for the bad keys
  KeysInt k_int;            // prefill with IntDotPrefill
  RowsF32 v;                // f32 values, zero for the bad keys
  const float* k_scale;     // int8 K: [kBlockKeys] row scales, 0 past n_keys and for bad keys
  const float* v_scale;     // int8 V of a KV cache read in place (decode): [n_keys] row scales, 0
                            // for bad keys; the P.V stage folds them into the probabilities
  uint64_t bad;             // bit j: key j0 + j has a non-finite K or V row (or row scale)
  KeysBf16 k_bf16;          // prefill with Bf16DotPrefill, a block of finite keys
  const uint32_t* v_pairs;  // Plan::bf16_pv: finite values as PackValuePairs packs them
};

// Where the producer puts what it converts, and how. Rows are `k_stride` /
// `v_stride` floats apart (d, dv in prefill; d_pad, dv_pad in decode, whose
// padding the pipeline zeroed).
struct KeyBlockScratch {
  float *k, *v, *k_scale;
  void* k_int;
  int32_t* k_sum;
  int64_t k_stride, v_stride;
  const IntDotKernels* int_dot;    // prefill: IntDotPrefill
  const Bf16DotKernels* bf16_dot;  // prefill: Bf16DotPrefill
};

// Bit j set where row j (< n_rows <= 64) of `rows` holds a NaN or infinity.
HWY_INLINE uint64_t NonFiniteRows(RowsF32 rows, int64_t n_rows, int64_t dim) {
  uint64_t bad = 0;
  for (int64_t j = 0; j < n_rows; ++j) {
    if (!RowFinite(rows.rows + j * rows.stride, dim)) bad |= uint64_t{1} << j;
  }
  return bad;
}

// The rows with the `bad` ones replaced by zeros, in scratch (rows `stride`
// floats apart; copied there first unless rows already live in it).
HWY_INLINE RowsF32 ZeroBadRows(RowsF32 rows, int64_t n_rows, int64_t dim, int64_t stride,
                               uint64_t bad, float* HWY_RESTRICT scratch) {
  for (int64_t j = 0; j < n_rows; ++j) {
    float* dst = scratch + j * stride;
    if ((bad >> j) & 1) {
      std::fill(dst, dst + dim, 0.0f);
    } else if (rows.rows != scratch) {
      std::copy(rows.rows + j * rows.stride, rows.rows + j * rows.stride + dim, dst);
    }
  }
  return {scratch, stride};
}

// Rows [t0, t0 + n) of head `head` of tensor t (dim elements) as f32 rows
// `stride` floats apart (I8: times their row scales if `scaled`, else the
// integers, which the score stage scales): the tensor itself when in_place allows and it is f32
// with rows back to back (stride == dim), else converted into `scratch`. (Rows of one head a
// power-of-two stride apart, as in [tokens][heads][dim], would share L1 sets
// and evict each other in the micro-kernels.)
HWY_INLINE RowsF32 RowsAsF32(const TensorRef& t, int32_t head, int64_t t0, int64_t n, int64_t dim,
                             int64_t stride, bool in_place, float* HWY_RESTRICT scratch,
                             bool scaled) {
  const int64_t first = t0 * t.token_stride + head * t.head_stride;
  if (in_place && t.dtype == RELATTN_F32 && t.token_stride == dim && stride == dim) {
    return {static_cast<const float*>(t.data) + first, dim};
  }
  for (int64_t j = 0; j < n; ++j) {
    const float mul = t.dtype == RELATTN_I8 && scaled ? t.RowScale(t0 + j, head) : 1.0f;
    ConvertRow(t.data, t.dtype, first + j * t.token_stride, dim, mul, scratch + j * stride);
  }
  return {scratch, stride};
}

// Keys [j0, j0 + n) of a KV cache's head (key groups, kv_cache.h) as f32
// rows `stride` floats apart in scratch.
HWY_INLINE RowsF32 CacheKeyRows(const Plan& plan, int32_t head, int64_t j0, int64_t n,
                                int64_t stride, float* HWY_RESTRICT scratch) {
  for (int64_t j = 0; j < n; ++j) {
    const int64_t slot = j0 + j;
    const int64_t first = plan.cache.KeyGroupOffset(head, slot, plan.d) + slot % kKeyGroup;
    float* row = scratch + j * stride;
    if (plan.k.dtype == RELATTN_F16) {
      const uint16_t* bits = static_cast<const uint16_t*>(plan.k.data) + first;
      for (int32_t c = 0; c < plan.d; ++c) row[c] = F16ToF32(bits[c * kKeyGroup]);
    } else if (plan.k.dtype == RELATTN_BF16) {
      const uint16_t* bits = static_cast<const uint16_t*>(plan.k.data) + first;
      for (int32_t c = 0; c < plan.d; ++c) row[c] = BF16ToF32(bits[c * kKeyGroup]);
    } else if (plan.k.dtype == RELATTN_I8) {
      const int8_t* src = static_cast<const int8_t*>(plan.k.data) + first;
      for (int32_t c = 0; c < plan.d; ++c) row[c] = static_cast<float>(src[c * kKeyGroup]);
    } else {
      const float* src = static_cast<const float*>(plan.k.data) + first;
      for (int32_t c = 0; c < plan.d; ++c) row[c] = src[c * kKeyGroup];
    }
  }
  return {scratch, stride};
}

// Row scales of the int8 keys [j0, j0 + n) of kv_head (a tensor's or a KV
// cache's) into scales[0, n), zeros up to kBlockKeys; returns the keys whose
// scale is not finite as bits (their scale is set to 0: their rows are
// zeroed and poison instead).
HWY_INLINE uint64_t KeyScales(const Plan& plan, int32_t kv_head, int64_t j0, int64_t n,
                              float* HWY_RESTRICT scales) {
  uint64_t bad = 0;
  for (int64_t j = 0; j < n; ++j) {
    const float scale = plan.k.RowScale(j0 + j, kv_head);
    const bool finite = std::isfinite(scale);
    scales[j] = finite ? scale : 0.0f;
    if (!finite) bad |= uint64_t{1} << j;
  }
  std::fill(scales + n, scales + kBlockKeys, 0.0f);  // read by whole vectors past n
  return bad;
}

// Row scales of the int8 values [j0, j0 + n) of kv_head into scales[0, n),
// 0 for the keys in `bad` (and for a non-finite scale, whose key joins the
// returned bits).
HWY_INLINE uint64_t ValueScales(const Plan& plan, int32_t kv_head, int64_t j0, int64_t n,
                                uint64_t bad, float* HWY_RESTRICT scales) {
  for (int64_t j = 0; j < n; ++j) {
    const float scale = plan.v.RowScale(j0 + j, kv_head);
    if (!std::isfinite(scale)) bad |= uint64_t{1} << j;
    scales[j] = (bad >> j) & 1 ? 0.0f : scale;
  }
  return bad;
}

// Bit j set where key j0 + j of kv_head was stored non-finite in the cache.
HWY_INLINE uint64_t CacheBadKeys(const Plan& plan, int32_t kv_head, int64_t j0, int64_t n_keys) {
  const uint8_t* bad = plan.cache.bad + kv_head * plan.cache.capacity + j0;
  uint64_t bits = 0;
  for (int64_t j = 0; j < n_keys; ++j) bits |= uint64_t{bad[j]} << j;
  return bits;
}

// The block's keys as f32 rows, rotated by RoPE unless they come from a KV
// cache (which rotated them at append); in_place as RowsAsF32's.
HWY_INLINE RowsF32 KeyRowsAsF32(const Plan& plan, Worker& worker, int32_t kv_head, int64_t j0,
                                int64_t n_keys, const KeyBlockScratch& buf, bool in_place) {
  if (plan.cache.on && plan.k.dtype != RELATTN_Q4) {
    return CacheKeyRows(plan, kv_head, j0, n_keys, buf.k_stride, buf.k);
  }
  RowsF32 k = RowsAsF32(plan.k, kv_head, j0, n_keys, plan.d, buf.k_stride, in_place, buf.k, false);
  if (!plan.rope.on || plan.cache.on) return k;
  for (int64_t j = 0; j < n_keys; ++j) {
    float* row = buf.k + j * buf.k_stride;
    if (k.rows != buf.k) std::copy(k.rows + j * k.stride, k.rows + j * k.stride + plan.d, row);
    RopeRotate(plan, worker, plan.k_pos.At(j0 + j), row);
  }
  return {buf.k, buf.k_stride};
}

// Whether decode converts a KV cache's key blocks into f32 rows instead of
// reading K and V in place: Q4 K or V on a target whose vectors do not
// divide a Q4 block's halves (the Q4 kernels' premise).
HWY_INLINE bool CacheConvertsRows(const Plan& plan) {
  return plan.cache.on && (plan.k.dtype == RELATTN_Q4 || plan.v.dtype == RELATTN_Q4) &&
         !Q4LanesFit();
}

// Whether decode reads a tensor block's K and V where they lie (f16, bf16 or f32,
// no RoPE to apply) once RowsFiniteBits finds them finite.
HWY_INLINE bool DecodeInPlace(const Plan& plan) {
  const auto in_place = [](relattn_dtype t) {
    return t == RELATTN_F16 || t == RELATTN_BF16 || t == RELATTN_F32;
  };
  return !plan.cache.on && !plan.rope.on && in_place(plan.k.dtype) && in_place(plan.v.dtype);
}

// True if rows [t0, t0 + n) of head `head` of an f16, bf16 or f32 tensor (dim
// elements each) hold no NaN or infinity, judged on the bits: (bits & e) + the
// exponent's lowest bit sets the top bit only where the exponent e is all
// ones.
template <typename U>
HWY_INLINE bool RowsFiniteBits(const U* HWY_RESTRICT rows, int64_t stride, int64_t n, int64_t dim,
                               U exponent) {
  const hn::CappedTag<U, kMaxLanes * sizeof(float) / sizeof(U)> du;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(du));
  const int64_t whole = dim / lanes * lanes;
  const U lowest = static_cast<U>(exponent & (~exponent + 1));
  const auto e = hn::Set(du, exponent), one = hn::Set(du, lowest);
  auto top = hn::Zero(du);
  U top_tail = 0;
  for (int64_t j = 0; j < n; ++j) {
    const U* row = rows + j * stride;
    for (int64_t c = 0; c < whole; c += lanes) {
      top = hn::Or(top, hn::Add(hn::And(hn::LoadU(du, row + c), e), one));
    }
    for (int64_t c = whole; c < dim; ++c) top_tail |= static_cast<U>((row[c] & exponent) + lowest);
  }
  const U sign = static_cast<U>(U{1} << (8 * sizeof(U) - 1));
  top = hn::And(top, hn::Set(du, sign));
  return (top_tail & sign) == 0 && hn::AllTrue(du, hn::Eq(top, hn::Zero(du)));
}

HWY_INLINE bool TensorRowsFinite(const TensorRef& t, int32_t head, int64_t t0, int64_t n,
                                 int64_t dim) {
  const int64_t first = t0 * t.token_stride + head * t.head_stride;
  if (t.dtype == RELATTN_F16 || t.dtype == RELATTN_BF16) {
    return RowsFiniteBits(static_cast<const uint16_t*>(t.data) + first, t.token_stride, n, dim,
                          t.dtype == RELATTN_F16 ? uint16_t{0x7C00} : uint16_t{0x7F80});
  }
  return RowsFiniteBits(static_cast<const uint32_t*>(t.data) + first, t.token_stride, n, dim,
                        uint32_t{0x7F800000});
}

// Loads keys [j0, j0 + n_keys) of kv_head. Non-finite K or V rows poison the
// queries that see them and are zeroed, so that they cannot reach the
// queries that do not (a KV cache stored them as zeros and flagged them).
// kDecode: the decode pipeline's block (no integer packing; rows always
// converted into the aligned scratch; a KV cache read in place), else
// prefill's; compile-time, so that neither pipeline carries the other's code.
template <bool kDecode>
HWY_INLINE KeyBlock LoadKeyBlock(const Plan& plan, Worker& worker, int32_t kv_head, int64_t j0,
                                 int64_t n_keys, const KeyBlockScratch& buf) {
  KeyBlock b{j0,
             n_keys,
             SpanOf(plan.k_pos, j0, n_keys),
             {nullptr, 0},
             {nullptr, nullptr, nullptr},
             {nullptr, 0},
             buf.k_scale,
             nullptr,
             0,
             {nullptr, nullptr, 0},
             nullptr};
  if (plan.k.dtype == RELATTN_I8) b.bad |= KeyScales(plan, kv_head, j0, n_keys, buf.k_scale);
  if (plan.cache.on) b.bad |= CacheBadKeys(plan, kv_head, j0, n_keys);
  if (kDecode && plan.cache.on && !CacheConvertsRows(plan)) {
    // K and V read in place; int8 V's row scales in the value scratch, which
    // holds no rows then (bad keys' rows are stored as zeros).
    if (plan.v.dtype == RELATTN_I8) {
      b.bad = ValueScales(plan, kv_head, j0, n_keys, b.bad, buf.v);
      b.v_scale = buf.v;
    }
    return b;
  }
  // Decode over finite f16 / bf16 / f32 tensors: K and V read in place (rows null).
  if (kDecode && DecodeInPlace(plan) && TensorRowsFinite(plan.k, kv_head, j0, n_keys, plan.d) &&
      TensorRowsFinite(plan.v, kv_head, j0, n_keys, plan.dv)) {
    return b;
  }
  const IntDotKernels* int_dot = kDecode ? nullptr : buf.int_dot;
  if (!kDecode && buf.bf16_dot && TensorRowsFinite(plan.k, kv_head, j0, n_keys, plan.d)) {
    b.k_bf16 =
        KeysAsBf16(plan, *buf.bf16_dot, kv_head, j0, n_keys, reinterpret_cast<uint16_t*>(buf.k));
  } else if (!int_dot) {
    b.k = KeyRowsAsF32(plan, worker, kv_head, j0, n_keys, buf, !kDecode);
    b.bad |= NonFiniteRows(b.k, n_keys, plan.d);
  }
  if (!kDecode && b.k_bf16.rows && plan.bf16_pv &&
      TensorRowsFinite(plan.v, kv_head, j0, n_keys, plan.dv)) {
    // The value scratch (kBlockKeys x dv floats) holds the pairs.
    PackValuePairs(plan, *buf.bf16_dot, kv_head, j0, n_keys, reinterpret_cast<uint32_t*>(buf.v));
    b.v_pairs = reinterpret_cast<const uint32_t*>(buf.v);
    return b;  // no bad key: K and V are finite
  }
  b.v = RowsAsF32(plan.v, kv_head, j0, n_keys, plan.dv, buf.v_stride, !kDecode, buf.v, true);
  b.bad |= NonFiniteRows(b.v, n_keys, plan.dv);
  if (int_dot) {
    PackKeysInt(plan, kv_head, j0, n_keys, b.bad, buf.k_int, buf.k_sum);
    b.k_int = {int_dot, buf.k_int, buf.k_sum};
  }
  if (b.bad) {
    if (b.k.rows) b.k = ZeroBadRows(b.k, n_keys, plan.d, buf.k_stride, b.bad, buf.k);
    b.v = ZeroBadRows(b.v, n_keys, plan.dv, buf.v_stride, b.bad, buf.v);
  }
  return b;
}

// Prefetches rows [t0, t0 + n) of head `head` of tensor t (dim elements
// each) into the outer caches. A head's rows lie a whole stride apart
// ([tokens][heads][dim]) and are read in short bursts, which hardware
// prefetchers miss.
HWY_INLINE void PrefetchRows(const TensorRef& t, int32_t head, int64_t t0, int64_t n, int64_t dim) {
  const int64_t elem_bytes = DtypeBytes(t.dtype);
  const int64_t row_bytes = RowElements(t.dtype, dim) * elem_bytes;
  const char* base = static_cast<const char*>(t.data);
  for (int64_t j = t0; j < t0 + n; ++j) {
    const char* row = base + (j * t.token_stride + head * t.head_stride) * elem_bytes;
    for (int64_t b = 0; b < row_bytes; b += 64) PrefetchFar(row + b);
  }
}

// The prefetch stage: the K and V rows of the keys [j0, j0 + n_keys) that
// the next block will convert arrive while this one is computed (tensors, a
// Q4 KV cache's rows; a KV cache's key groups, and tensors decode reads in
// place, are prefetched by the kernels that stream them).
HWY_INLINE void PrefetchKeyBlock(const Plan& plan, int32_t kv_head, int64_t j0, int64_t n_keys) {
  if (n_keys <= 0 || (plan.work.decode && DecodeInPlace(plan))) return;
  if (plan.cache.on) {  // Q4 rows converted (CacheConvertsRows)
    if (CacheConvertsRows(plan) && plan.k.dtype == RELATTN_Q4) {
      PrefetchRows(plan.k, kv_head, j0, n_keys, plan.d);
    }
    if (CacheConvertsRows(plan) && plan.v.dtype == RELATTN_Q4) {
      PrefetchRows(plan.v, kv_head, j0, n_keys, plan.dv);
    }
    return;
  }
  PrefetchRows(plan.k, kv_head, j0, n_keys, plan.d);
  PrefetchRows(plan.v, kv_head, j0, n_keys, plan.dv);
}

// Prefill's per-block lambda is inlined like every stage (one function per
// pipeline, as the compiler lays out a hand-written loop; 2.9 KB less armv7
// text with both). Decode's is not: inlined, the SVE and SVE2 targets of
// GCC 12 gave wrong decode results over tensors (every such case of
// test_attention under qemu's max CPU; NEON, SVE_256 untested, x86 bit-identical);
// not understood yet, so left out.
#ifndef RELATTN_INLINE_LAMBDA
#if defined(__GNUC__) || defined(__clang__)
#define RELATTN_INLINE_LAMBDA __attribute__((always_inline))
#else
#define RELATTN_INLINE_LAMBDA
#endif
#endif

// The first key block a call reads: the one holding key first_valid_kv.
HWY_INLINE int64_t FirstKeyBlock(const Plan& plan) {
  return plan.first_valid_kv / kBlockKeys * kBlockKeys;
}

// Left padding: hides the keys of the block at j0 before first_valid_kv,
// scores s[j * key_stride, (j + 1) * key_stride) for key j0 + j.
HWY_INLINE void HideKeysBeforeFirst(const Plan& plan, int64_t j0, int64_t n_keys,
                                    int64_t key_stride, float* HWY_RESTRICT s) {
  if (j0 >= plan.first_valid_kv) return;
  const int64_t hidden = std::min(plan.first_valid_kv - j0, n_keys);
  std::fill(s, s + hidden * key_stride, -HUGE_VALF);
}

// Whether the block from key j (< n_valid_kv, or none) can be seen by queries
// with ids q_segments, as far as sorted segment ids tell (for prefetching).
HWY_INLINE bool NextBlockSeen(const Plan& plan, const SegmentRange& q_segments, int64_t j) {
  const IndexMaskRef& m = plan.index_mask;
  return j < plan.n_valid_kv && !(m.q_segments && m.k_sorted && m.k_segments[j] > q_segments.max);
}

// Calls body(j0, n_keys, visibility) for each block of up to kBlockKeys keys
// in [j_begin, j_end) that some query with positions q (and segment ids
// q_segments, QuerySegments) sees, in order; stops where no later block can
// be visible (keys at start + j only move away once they pass the last
// query). visibility is that of the position masks. j_begin: a multiple of
// kBlockKeys.
template <class Body>
HWY_INLINE void ForEachVisibleKeyBlock(const Plan& plan, const PositionSpan& q,
                                       const SegmentRange& q_segments, int64_t j_begin,
                                       int64_t j_end, const Body& body) {
  const IndexMaskRef& m = plan.index_mask;
  if (m.q_segments && m.k_sorted && j_begin < j_end) {
    // Sorted ids: the blocks before the first key of the queries' lowest id
    // see none of them.
    const int64_t first =
        std::lower_bound(m.k_segments + j_begin, m.k_segments + j_end, q_segments.min) -
        m.k_segments;
    j_begin += (first - j_begin) / kBlockKeys * kBlockKeys;
  }
  for (int64_t j0 = j_begin; j0 < j_end; j0 += kBlockKeys) {
    const int64_t n_keys = std::min(kBlockKeys, j_end - j0);
    const PositionSpan k = SpanOf(plan.k_pos, j0, n_keys);
    const TileVisibility v = ClassifyTile(plan.mask, q.min, q.max, k.min, k.max);
    if (v == TileVisibility::kHidden) {
      if (!plan.k_pos.positions && plan.mask.causal && k.min > q.max) return;
      continue;
    }
    if (m.q_segments) {
      const SegmentRange k_ids = SegmentsOf(m.k_segments, j0, n_keys);
      if (m.k_sorted && k_ids.min > q_segments.max) return;  // later blocks: larger ids
      if (ClassifySegments(q_segments, k_ids) == TileVisibility::kHidden) continue;
    }
    body(j0, n_keys, v);
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_KEY_BLOCK_INL_H_
