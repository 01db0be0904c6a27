// The fused pipeline for a few queries (decode): keys stream one row at a time
// and each query row takes a dot product with it, so a vector lane is never
// idle for lack of queries (per-target code). Work item = one KV head with up
// to kMaxHeadsPerItem of its query heads and all n_q <= kDecodeMaxQueries
// queries; K and V are read once per work item.
#if defined(RELATTN_LIB_KERNELS_DECODE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_DECODE_INL_H_
#undef RELATTN_LIB_KERNELS_DECODE_INL_H_
#else
#define RELATTN_LIB_KERNELS_DECODE_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "lib/common/quantize_row.h"
#include "lib/driver/plan.h"
#include "lib/driver/visibility.h"
#include "lib/kernels/bias_tile-inl.h"
#include "lib/kernels/exp2-inl.h"
#include "lib/kernels/int_dot-inl.h"
#include "lib/kernels/online_softmax-inl.h"
#include "lib/kernels/pack-inl.h"
#include "lib/kernels/rope-inl.h"
#include "lib/kernels/shaw_vector-inl.h"
#include "lib/kernels/worker-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Query rows of a decode work item: row r = slot * n_q + query, where slot g
// is query head head0 + g. Workspace regions as WorkspaceLayout's decode view.
struct DecodeRows {
  int32_t head0, n_slots;
  int64_t n_rows;
  float *q, *o, *max, *sum, *s;  // q [rows][d_pad], o [rows][dv_pad], s [rows][kBlockKeys]
  float* poison;                 // [rows]: 1 where the query saw a non-finite value
};

// Keys or values [j0, j0 + n_keys) of kv_head as f32 rows of `pad` floats,
// zero beyond dim (the block's rows past n_keys are left as they are).
// Rows up to kPrefetchRows ahead (below `limit`) are prefetched: decode
// streams K and V once, and rows of one head are strided (by n_kv_heads * dim
// in [tokens][heads][dim]), which hardware prefetchers follow poorly.
inline constexpr int64_t kPrefetchRows = 8;

HWY_INLINE void ConvertBlock(const TensorRef& t, int32_t kv_head, int64_t j0, int64_t n_keys,
                             int64_t limit, int64_t dim, int64_t pad, float* HWY_RESTRICT block) {
  for (int64_t j = 0; j < n_keys; ++j) {
    const int64_t ahead = j0 + j + kPrefetchRows;
    if (ahead < limit) PrefetchRows(t, kv_head, ahead, 1, dim);
    const int64_t offset = (j0 + j) * t.token_stride + kv_head * t.head_stride;
    ConvertRow(t.data, t.dtype, offset, dim, 1.0f, block + j * pad);
  }
}

// s[r][j] = q_r . k_j for keys j < n_keys: 4 keys per step share each load
// of q_r, one horizontal sum per score.
HWY_INLINE void DecodeScores(const DecodeRows& rows, const float* HWY_RESTRICT k_block,
                             int64_t n_keys, int64_t d_pad) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t r = 0; r < rows.n_rows; ++r) {
    const float* q = rows.q + r * d_pad;
    float* s = rows.s + r * kBlockKeys;
    int64_t j = 0;
    for (; j + 4 <= n_keys; j += 4) {
      const float* k0 = k_block + j * d_pad;
      auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
      for (int64_t e = 0; e < d_pad; e += n) {
        const auto qe = hn::Load(df, q + e);
        a0 = hn::MulAdd(qe, hn::Load(df, k0 + e), a0);
        a1 = hn::MulAdd(qe, hn::Load(df, k0 + d_pad + e), a1);
        a2 = hn::MulAdd(qe, hn::Load(df, k0 + 2 * d_pad + e), a2);
        a3 = hn::MulAdd(qe, hn::Load(df, k0 + 3 * d_pad + e), a3);
      }
      s[j] = hn::GetLane(hn::SumOfLanes(df, a0));
      s[j + 1] = hn::GetLane(hn::SumOfLanes(df, a1));
      s[j + 2] = hn::GetLane(hn::SumOfLanes(df, a2));
      s[j + 3] = hn::GetLane(hn::SumOfLanes(df, a3));
    }
    for (; j < n_keys; ++j) {
      auto a0 = hn::Zero(df);
      for (int64_t e = 0; e < d_pad; e += n) {
        a0 = hn::MulAdd(hn::Load(df, q + e), hn::Load(df, k_block + j * d_pad + e), a0);
      }
      s[j] = hn::GetLane(hn::SumOfLanes(df, a0));
    }
  }
}

// Lanes(DF) consecutive values as f32.
HWY_INLINE hn::Vec<DF> LoadF32(const float* HWY_RESTRICT p) { return hn::LoadU(DF(), p); }
HWY_INLINE hn::Vec<DF> LoadF32(const hwy::float16_t* HWY_RESTRICT p) { return PromoteF16(p); }
HWY_INLINE hn::Vec<DF> LoadF32(const int8_t* HWY_RESTRICT p) { return PromoteI8(p); }

HWY_INLINE float ScalarF32(float x) { return x; }
HWY_INLINE float ScalarF32(int8_t x) { return static_cast<float>(x); }
HWY_INLINE float ScalarF32(hwy::float16_t x) {
  uint16_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return F16ToF32(bits);
}

// Key j of a block of KV-cache key groups, channel 0 (kv_cache.h).
template <typename T>
HWY_INLINE const T* GroupedKey(const T* keys, int64_t j, int32_t d) {
  return keys + j / kKeyGroup * d * kKeyGroup + j % kKeyGroup;
}

// s[r][j] = q_r . k_j for keys j < n_keys of a block of key groups: keys lie
// in vector lanes, so a step loads one channel of Lanes(DF) keys and FMAs it
// with each row's broadcast query element; no horizontal sums. 4 rows x 2
// key vectors = 8 independent accumulators. Lanes past n_keys (up to the end
// of a vector) hold garbage that DecodeBiasMask hides.
template <typename T>
HWY_INLINE void GroupedScores(const DecodeRows& rows, const T* HWY_RESTRICT keys, int64_t n_keys,
                              int32_t d, int64_t d_pad) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t j = 0; j < n_keys; j += 2 * n) {
    const T* k0 = GroupedKey(keys, j, d);
    // A second vector past the block's keys would leave the cache's groups.
    const T* k1 = j + n < n_keys ? GroupedKey(keys, j + n, d) : k0;
    int64_t r = 0;
    for (; r + 4 <= rows.n_rows; r += 4) {
      const float *q0 = rows.q + r * d_pad, *q1 = q0 + d_pad, *q2 = q1 + d_pad, *q3 = q2 + d_pad;
      auto a00 = hn::Zero(df), a01 = hn::Zero(df), a10 = hn::Zero(df), a11 = hn::Zero(df);
      auto a20 = hn::Zero(df), a21 = hn::Zero(df), a30 = hn::Zero(df), a31 = hn::Zero(df);
      for (int32_t c = 0; c < d; ++c) {
        if (r == 0) {  // the next block's keys: as many bytes ahead as a block holds
          PrefetchFar(k0 + c * kKeyGroup + kBlockKeys * d);
          PrefetchFar(k1 + c * kKeyGroup + kBlockKeys * d);
        }
        const auto x = LoadF32(k0 + c * kKeyGroup), y = LoadF32(k1 + c * kKeyGroup);
        const auto b0 = hn::Set(df, q0[c]), b1 = hn::Set(df, q1[c]);
        a00 = hn::MulAdd(b0, x, a00);
        a01 = hn::MulAdd(b0, y, a01);
        a10 = hn::MulAdd(b1, x, a10);
        a11 = hn::MulAdd(b1, y, a11);
        const auto b2 = hn::Set(df, q2[c]), b3 = hn::Set(df, q3[c]);
        a20 = hn::MulAdd(b2, x, a20);
        a21 = hn::MulAdd(b2, y, a21);
        a30 = hn::MulAdd(b3, x, a30);
        a31 = hn::MulAdd(b3, y, a31);
      }
      float* s = rows.s + r * kBlockKeys + j;
      hn::StoreU(a00, df, s);
      hn::StoreU(a01, df, s + n);
      hn::StoreU(a10, df, s + kBlockKeys);
      hn::StoreU(a11, df, s + kBlockKeys + n);
      hn::StoreU(a20, df, s + 2 * kBlockKeys);
      hn::StoreU(a21, df, s + 2 * kBlockKeys + n);
      hn::StoreU(a30, df, s + 3 * kBlockKeys);
      hn::StoreU(a31, df, s + 3 * kBlockKeys + n);
    }
    for (; r < rows.n_rows; ++r) {
      const float* q = rows.q + r * d_pad;
      auto a0 = hn::Zero(df), a1 = hn::Zero(df);
      for (int32_t c = 0; c < d; ++c) {
        if (r == 0) {  // fewer than 4 rows: the prefetch of the 4-row loop
          PrefetchFar(k0 + c * kKeyGroup + kBlockKeys * d);
          PrefetchFar(k1 + c * kKeyGroup + kBlockKeys * d);
        }
        const auto b = hn::Set(df, q[c]);
        a0 = hn::MulAdd(b, LoadF32(k0 + c * kKeyGroup), a0);
        a1 = hn::MulAdd(b, LoadF32(k1 + c * kKeyGroup), a1);
      }
      hn::StoreU(a0, df, rows.s + r * kBlockKeys + j);
      hn::StoreU(a1, df, rows.s + r * kBlockKeys + j + n);
    }
  }
}

// One row of StreamedPV for columns [e0, dv): a vector at a time with two
// accumulators (even and odd keys), then the columns past the last whole
// vector one at a time (a vector there would read past the row).
template <typename T>
HWY_INLINE void StreamedPVRow(const float* HWY_RESTRICT p, const T* HWY_RESTRICT v,
                              int64_t v_stride, int64_t n_keys, int64_t e0, int32_t dv,
                              float* HWY_RESTRICT o) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  int64_t e = e0;
  for (; e + n <= dv; e += n) {
    auto a0 = hn::Load(df, o + e), a1 = hn::Zero(df);
    int64_t j = 0;
    for (; j + 2 <= n_keys; j += 2) {
      a0 = hn::MulAdd(hn::Set(df, p[j]), LoadF32(v + j * v_stride + e), a0);
      a1 = hn::MulAdd(hn::Set(df, p[j + 1]), LoadF32(v + (j + 1) * v_stride + e), a1);
    }
    if (j < n_keys) a0 = hn::MulAdd(hn::Set(df, p[j]), LoadF32(v + j * v_stride + e), a0);
    hn::Store(hn::Add(a0, a1), df, o + e);
  }
  for (; e < dv; ++e) {
    float acc = o[e];
    for (int64_t j = 0; j < n_keys; ++j) acc += p[j] * ScalarF32(v[j * v_stride + e]);
    o[e] = acc;
  }
}

// o[r][e] += sum_{j < n_keys} p[r][j] * v_j[e] with the value rows read in
// place (v_j at v + j * v_stride, converted as loaded), for e < dv. 4 rows x
// 4 vectors of e = 16 accumulators per pass over the keys; the rest one
// vector (or, past the last whole vector of dv, one element) at a time.
template <typename T>
HWY_INLINE void StreamedPV(const float* HWY_RESTRICT p, const T* HWY_RESTRICT v, int64_t v_stride,
                           int64_t n_keys, int64_t n_rows, int32_t dv, int64_t dv_pad,
                           float* HWY_RESTRICT o) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const int64_t whole = dv / n * n;  // columns in whole vectors
  int64_t r = 0;
  for (; r + 4 <= n_rows; r += 4) {
    const float *p0 = p + r * kBlockKeys, *p1 = p0 + kBlockKeys, *p2 = p1 + kBlockKeys,
                *p3 = p2 + kBlockKeys;
    float *o0 = o + r * dv_pad, *o1 = o0 + dv_pad, *o2 = o1 + dv_pad, *o3 = o2 + dv_pad;
    int64_t e = 0;
    for (; e + 4 * n <= whole; e += 4 * n) {
      auto a00 = hn::Load(df, o0 + e), a01 = hn::Load(df, o0 + e + n);
      auto a02 = hn::Load(df, o0 + e + 2 * n), a03 = hn::Load(df, o0 + e + 3 * n);
      auto a10 = hn::Load(df, o1 + e), a11 = hn::Load(df, o1 + e + n);
      auto a12 = hn::Load(df, o1 + e + 2 * n), a13 = hn::Load(df, o1 + e + 3 * n);
      auto a20 = hn::Load(df, o2 + e), a21 = hn::Load(df, o2 + e + n);
      auto a22 = hn::Load(df, o2 + e + 2 * n), a23 = hn::Load(df, o2 + e + 3 * n);
      auto a30 = hn::Load(df, o3 + e), a31 = hn::Load(df, o3 + e + n);
      auto a32 = hn::Load(df, o3 + e + 2 * n), a33 = hn::Load(df, o3 + e + 3 * n);
      for (int64_t j = 0; j < n_keys; ++j) {
        const T* vj = v + j * v_stride + e;
        if (r == 0) {  // the same values of the next block
          const char* ahead = reinterpret_cast<const char*>(vj + kBlockKeys * v_stride);
          for (size_t b = 0; b < 4 * n * sizeof(T); b += 64) PrefetchFar(ahead + b);
        }
        const auto x0 = LoadF32(vj), x1 = LoadF32(vj + n);
        const auto x2 = LoadF32(vj + 2 * n), x3 = LoadF32(vj + 3 * n);
        const auto b0 = hn::Set(df, p0[j]);
        a00 = hn::MulAdd(b0, x0, a00);
        a01 = hn::MulAdd(b0, x1, a01);
        a02 = hn::MulAdd(b0, x2, a02);
        a03 = hn::MulAdd(b0, x3, a03);
        const auto b1 = hn::Set(df, p1[j]);
        a10 = hn::MulAdd(b1, x0, a10);
        a11 = hn::MulAdd(b1, x1, a11);
        a12 = hn::MulAdd(b1, x2, a12);
        a13 = hn::MulAdd(b1, x3, a13);
        const auto b2 = hn::Set(df, p2[j]);
        a20 = hn::MulAdd(b2, x0, a20);
        a21 = hn::MulAdd(b2, x1, a21);
        a22 = hn::MulAdd(b2, x2, a22);
        a23 = hn::MulAdd(b2, x3, a23);
        const auto b3 = hn::Set(df, p3[j]);
        a30 = hn::MulAdd(b3, x0, a30);
        a31 = hn::MulAdd(b3, x1, a31);
        a32 = hn::MulAdd(b3, x2, a32);
        a33 = hn::MulAdd(b3, x3, a33);
      }
      hn::Store(a00, df, o0 + e);
      hn::Store(a01, df, o0 + e + n);
      hn::Store(a02, df, o0 + e + 2 * n);
      hn::Store(a03, df, o0 + e + 3 * n);
      hn::Store(a10, df, o1 + e);
      hn::Store(a11, df, o1 + e + n);
      hn::Store(a12, df, o1 + e + 2 * n);
      hn::Store(a13, df, o1 + e + 3 * n);
      hn::Store(a20, df, o2 + e);
      hn::Store(a21, df, o2 + e + n);
      hn::Store(a22, df, o2 + e + 2 * n);
      hn::Store(a23, df, o2 + e + 3 * n);
      hn::Store(a30, df, o3 + e);
      hn::Store(a31, df, o3 + e + n);
      hn::Store(a32, df, o3 + e + 2 * n);
      hn::Store(a33, df, o3 + e + 3 * n);
    }
    for (int64_t rr = r; rr < r + 4; ++rr) {
      StreamedPVRow(p + rr * kBlockKeys, v, v_stride, n_keys, e, dv, o + rr * dv_pad);
    }
  }
  for (; r < n_rows; ++r) {
    if (r == 0) {  // fewer than 4 rows: the prefetch of the 4-row loop
      for (int64_t j = 0; j < n_keys; ++j) {
        const char* ahead = reinterpret_cast<const char*>(v + (j + kBlockKeys) * v_stride);
        for (size_t b = 0; b < dv * sizeof(T); b += 64) PrefetchFar(ahead + b);
      }
    }
    StreamedPVRow(p + r * kBlockKeys, v, v_stride, n_keys, 0, dv, o + r * dv_pad);
  }
}

// Bit j set where key j0 + j of kv_head was stored non-finite in the cache.
HWY_INLINE uint64_t CacheBadKeys(const Plan& plan, int32_t kv_head, int64_t j0, int64_t n_keys) {
  const uint8_t* bad = plan.cache.bad + kv_head * plan.cache.capacity + j0;
  uint64_t bits = 0;
  for (int64_t j = 0; j < n_keys; ++j) bits |= uint64_t{bad[j]} << j;
  return bits;
}

// Scores of the rows against f32 / f16 keys [j0, j0 + n_keys) of a KV cache's head
// (int8 keys: CacheScoresI8).
HWY_INLINE void CacheScores(const Plan& plan, const DecodeRows& rows, int32_t kv_head, int64_t j0,
                            int64_t n_keys) {
  const int64_t offset = plan.cache.KeyGroupOffset(kv_head, j0, plan.d);
  if (plan.k.dtype == RELATTN_F16) {
    GroupedScores(rows, static_cast<const hwy::float16_t*>(plan.k.data) + offset, n_keys, plan.d,
                  plan.d_pad);
  } else {
    GroupedScores(rows, static_cast<const float*>(plan.k.data) + offset, n_keys, plan.d,
                  plan.d_pad);
  }
}

// P.V of the rows with values [j0, j0 + n_keys) of kv_head read in place.
HWY_INLINE void InPlacePV(const Plan& plan, const DecodeRows& rows, int32_t kv_head, int64_t j0,
                          int64_t n_keys) {
  const int64_t offset = j0 * plan.v.token_stride + kv_head * plan.v.head_stride;
  if (plan.v.dtype == RELATTN_F16) {
    StreamedPV(rows.s, static_cast<const hwy::float16_t*>(plan.v.data) + offset,
               plan.v.token_stride, n_keys, rows.n_rows, plan.dv, plan.dv_pad, rows.o);
  } else {
    StreamedPV(rows.s, static_cast<const float*>(plan.v.data) + offset, plan.v.token_stride, n_keys,
               rows.n_rows, plan.dv, plan.dv_pad, rows.o);
  }
}

// Int8 keys: s[r][j] *= k_scale[j] for every row, or with q_mul (quantised
// queries, integer scores) s[r][j] *= q_mul[r] * k_scale[j] (lanes up to the
// vector past n_keys: k_scale holds kBlockKeys floats).
HWY_INLINE void ScaleInt8DecodeScores(const DecodeRows& rows, const float* HWY_RESTRICT q_mul,
                                      const float* HWY_RESTRICT k_scale, int64_t n_keys) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t r = 0; r < rows.n_rows; ++r) {
    float* s = rows.s + r * kBlockKeys;
    const auto m = hn::Set(df, q_mul ? q_mul[r] : 1.0f);
    for (int64_t j = 0; j < n_keys; j += n) {
      const auto scale = q_mul ? hn::Mul(m, hn::Load(df, k_scale + j)) : hn::Load(df, k_scale + j);
      hn::Store(hn::Mul(hn::Load(df, s + j), scale), df, s + j);
    }
  }
}

// Int8 cache keys: the query rows (finite or poisoned) become integers in
// rows.q (as f32) and in q_int (as the target's IntEncoding says, rows
// rounded up to 4, padding encoded zeros): int8 queries already are
// (integers: true), other rows (unscaled) are quantised per row as
// relattn_quantize_i8 does, their scale joining q_mul[r]. Every target then
// sums the same integer products.
HWY_INLINE void QuantizeDecodeRows(const Plan& plan, const DecodeRows& rows, bool integers,
                                   float* HWY_RESTRICT q_mul, void* HWY_RESTRICT q_int) {
  const int64_t d4 = RoundUp(plan.d, 4);
  FillQueryRowsInt(RoundUp(rows.n_rows, 4), d4, q_int);
  int8_t q[RELATTN_MAX_HEAD_DIM];
  for (int64_t r = 0; r < rows.n_rows; ++r) {
    float* row = rows.q + r * plan.d_pad;
    if (rows.poison[r] != 0.0f) std::fill(row, row + plan.d, 0.0f);
    if (integers) {
      for (int64_t e = 0; e < plan.d; ++e) q[e] = static_cast<int8_t>(row[e]);
    } else {
      q_mul[r] *= QuantizeRowI8(row, plan.d, q);
    }
    for (int64_t e = 0; e < plan.d; ++e) row[e] = static_cast<float>(q[e]);
    PackQueryRowInt(q, r, plan.d, d4, q_int);
  }
}

// Integer scores of the quantised rows against int8 cache keys [j0, j0 +
// n_keys): with the target's kernel (IntDotDecode) where the CPU has it,
// else in f32 (exact).
HWY_INLINE void CacheScoresI8(const Plan& plan, const DecodeRows& rows, const void* q_int,
                              int32_t kv_head, int64_t j0, int64_t n_keys) {
  const int8_t* keys =
      static_cast<const int8_t*>(plan.k.data) + plan.cache.KeyGroupOffset(kv_head, j0, plan.d);
  int32_t* s_int = reinterpret_cast<int32_t*>(rows.s);
  const IntDotKernels* kernels = IntDotDecode(plan);
  if (!kernels) {
    GroupedScores(rows, keys, n_keys, plan.d, plan.d_pad);
    return;
  }
  kernels->scores_klanes(q_int, rows.n_rows, keys, plan.d, n_keys, s_int, kBlockKeys);
  const DF df;
  const hn::RebindToSigned<DF> di;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t r = 0; r < rows.n_rows; ++r) {
    for (int64_t j = 0; j < n_keys; j += n) {
      const int64_t at = r * kBlockKeys + j;
      hn::Store(hn::ConvertTo(df, hn::Load(di, s_int + at)), df, rows.s + at);
    }
  }
}

// Scalar form of DecodeBiasMask for keys at arbitrary positions.
HWY_INLINE void BiasMaskScalar(const Plan& plan, const HeadBias& bias, int64_t p_q, int64_t anchor,
                               int64_t j0, int64_t n_keys, bool partial, float* HWY_RESTRICT s) {
  for (int64_t j = 0; j < n_keys; ++j) {
    const int64_t p_k = plan.k_pos.At(j0 + j);
    if (bias.kind == BiasKind::kAlibi) {
      const int64_t dist = AlibiAnchoredDistance(bias.alibi_causal, anchor, p_q, p_k);
      s[j] -= bias.alibi_slope_log2 * static_cast<float>(dist);
    } else if (bias.kind == BiasKind::kTable) {
      s[j] += bias.table[TableIndex(bias, p_k - p_q)];
    }
    if (partial && !PairVisible(plan, p_q, p_k)) s[j] = -HUGE_VALF;
  }
}

// Bias and masks of one row's scores s[0, kBlockKeys); keys past n_keys are
// hidden. Contiguous keys (k_first + j) take a vector form, others a scalar one.
// anchor: the row's AlibiRowAnchor.
HWY_INLINE void DecodeBiasMask(const Plan& plan, const HeadBias& bias, int64_t p_q, int64_t anchor,
                               int64_t j0, int64_t n_keys, const PositionSpan& k_span, bool partial,
                               float* HWY_RESTRICT s) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  if (!k_span.contiguous) {
    BiasMaskScalar(plan, bias, p_q, anchor, j0, n_keys, partial, s);
  } else {
    const int64_t r0 = p_q - k_span.first;  // p_q - p_k of key 0
    if (bias.kind == BiasKind::kAlibi) {
      // Anchored distance along the keys: base - j, base + j, or |r0 - j| - nearest.
      const auto slope = hn::Set(df, bias.alibi_slope_log2);
      const bool one_side = bias.alibi_causal || r0 >= kBlockKeys - 1 || r0 <= 0;
      const float base =
          static_cast<float>(AlibiAnchoredDistance(bias.alibi_causal, anchor, p_q, k_span.first));
      const float step = bias.alibi_causal || r0 > 0 ? -1.0f : 1.0f;
      const auto vr0 = hn::Set(df, static_cast<float>(r0));
      const auto nearest = hn::Set(df, static_cast<float>(anchor));
      for (int64_t j = 0; j < kBlockKeys; j += n) {
        const auto jj = hn::Iota(df, static_cast<float>(j));
        const auto dist = one_side ? hn::MulAdd(hn::Set(df, step), jj, hn::Set(df, base))
                                   : hn::Sub(hn::Abs(hn::Sub(vr0, jj)), nearest);
        hn::Store(hn::NegMulAdd(slope, dist, hn::Load(df, s + j)), df, s + j);
      }
    } else if (bias.kind == BiasKind::kTable) {
      // Key j has r = (k_first - p_q) + j: index x0 - j in the reversed table,
      // whose kBlockKeys edge copies keep the whole window inside it.
      const int64_t edge = bias.table_radius + kTablePad + 1;
      const int64_t x0 = std::clamp(bias.table_radius + kTablePad + std::clamp(r0, -edge, edge),
                                    int64_t{kBlockKeys - 1}, bias.table_len - 1);
      const float* row = bias.table + x0;
      for (int64_t j = 0; j < n_keys; ++j) s[j] += row[-j];
    }
    if (partial) {
      for (int64_t j = 0; j < n_keys; ++j) {
        if (!PairVisible(plan, p_q, k_span.first + j)) s[j] = -HUGE_VALF;
      }
    }
  }
  for (int64_t j = n_keys; j < kBlockKeys; ++j) s[j] = -HUGE_VALF;
}

// Marks the row poisoned if a score is NaN or +inf (non-finite inputs or
// overflow) or a visible score (> -inf) belongs to a key with a non-finite K
// or V row (bad_keys bit j); those scores then count as hidden.
HWY_INLINE void DecodePoison(float* HWY_RESTRICT s, int64_t n_keys, uint64_t bad_keys,
                             float* HWY_RESTRICT poison) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  bool any = bad_keys != 0;
  for (int64_t j = 0; j < kBlockKeys && !any; j += n) {
    any = !hn::AllFalse(df, PoisonedLanes(hn::Load(df, s + j), false));
  }
  if (!any) return;
  for (int64_t j = 0; j < n_keys; ++j) {
    const bool bad_key = (bad_keys >> j) & 1;
    if (std::isnan(s[j]) || s[j] == HUGE_VALF || (bad_key && s[j] != -HUGE_VALF)) {
      *poison = 1.0f;
      s[j] = -HUGE_VALF;
    }
  }
}

// Online softmax of one row over the block (keys in lanes); rescales o_row
// when the max grows. Returns false if the row has still seen no key.
HWY_INLINE bool DecodeSoftmaxRow(float* HWY_RESTRICT s, float* HWY_RESTRICT max,
                                 float* HWY_RESTRICT sum, float* HWY_RESTRICT o_row,
                                 int64_t dv_pad) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  auto vmax = hn::Set(df, -HUGE_VALF);
  for (int64_t j = 0; j < kBlockKeys; j += n) vmax = hn::Max(vmax, hn::Load(df, s + j));
  const float new_max = std::max(hn::GetLane(hn::MaxOfLanes(df, vmax)), *max);
  if (new_max == -HUGE_VALF) return false;
  if (new_max > *max) {
    const float alpha = std::exp2(*max - new_max);  // 0 when *max = -inf
    *sum *= alpha;
    const auto valpha = hn::Set(df, alpha);
    for (int64_t e = 0; e < dv_pad; e += n) {
      hn::Store(hn::Mul(hn::Load(df, o_row + e), valpha), df, o_row + e);
    }
    *max = new_max;
  }
  const auto vref = hn::Set(df, new_max);
  auto vsum = hn::Zero(df);
  for (int64_t j = 0; j < kBlockKeys; j += n) {
    const auto p = Exp2NonPositive(df, hn::Sub(hn::Load(df, s + j), vref));
    vsum = hn::Add(vsum, p);
    hn::Store(p, df, s + j);
  }
  *sum += hn::GetLane(hn::SumOfLanes(df, vsum));
  return true;
}

// o[r] += sum_{j < n_keys} p[r][j] * v_block[j] for every row r, as a small
// GEMM: blocks of 4 rows x 2 output vectors (8 accumulators) are held in
// registers across the keys, so each loaded value vector feeds 4 independent
// FMA chains. p: [rows][kBlockKeys]; o: [rows][dv_pad]. (Named accumulators,
// not arrays: SVE vectors are sizeless.)
HWY_INLINE void DecodePV4Rows(const float* HWY_RESTRICT p, const float* HWY_RESTRICT v_block,
                              int64_t n_keys, int64_t dv_pad, float* HWY_RESTRICT o) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const float *p0 = p, *p1 = p + kBlockKeys, *p2 = p + 2 * kBlockKeys, *p3 = p + 3 * kBlockKeys;
  float *o0 = o, *o1 = o + dv_pad, *o2 = o + 2 * dv_pad, *o3 = o + 3 * dv_pad;
  int64_t e = 0;
  for (; e + 2 * n <= dv_pad; e += 2 * n) {
    auto a00 = hn::Load(df, o0 + e), a01 = hn::Load(df, o0 + e + n);
    auto a10 = hn::Load(df, o1 + e), a11 = hn::Load(df, o1 + e + n);
    auto a20 = hn::Load(df, o2 + e), a21 = hn::Load(df, o2 + e + n);
    auto a30 = hn::Load(df, o3 + e), a31 = hn::Load(df, o3 + e + n);
    for (int64_t j = 0; j < n_keys; ++j) {
      const float* v = v_block + j * dv_pad + e;
      const auto v0 = hn::Load(df, v), v1 = hn::Load(df, v + n);
      const auto b0 = hn::Set(df, p0[j]);
      a00 = hn::MulAdd(b0, v0, a00);
      a01 = hn::MulAdd(b0, v1, a01);
      const auto b1 = hn::Set(df, p1[j]);
      a10 = hn::MulAdd(b1, v0, a10);
      a11 = hn::MulAdd(b1, v1, a11);
      const auto b2 = hn::Set(df, p2[j]);
      a20 = hn::MulAdd(b2, v0, a20);
      a21 = hn::MulAdd(b2, v1, a21);
      const auto b3 = hn::Set(df, p3[j]);
      a30 = hn::MulAdd(b3, v0, a30);
      a31 = hn::MulAdd(b3, v1, a31);
    }
    hn::Store(a00, df, o0 + e);
    hn::Store(a01, df, o0 + e + n);
    hn::Store(a10, df, o1 + e);
    hn::Store(a11, df, o1 + e + n);
    hn::Store(a20, df, o2 + e);
    hn::Store(a21, df, o2 + e + n);
    hn::Store(a30, df, o3 + e);
    hn::Store(a31, df, o3 + e + n);
  }
  for (; e < dv_pad; e += n) {
    auto a0 = hn::Load(df, o0 + e), a1 = hn::Load(df, o1 + e);
    auto a2 = hn::Load(df, o2 + e), a3 = hn::Load(df, o3 + e);
    for (int64_t j = 0; j < n_keys; ++j) {
      const auto v = hn::Load(df, v_block + j * dv_pad + e);
      a0 = hn::MulAdd(hn::Set(df, p0[j]), v, a0);
      a1 = hn::MulAdd(hn::Set(df, p1[j]), v, a1);
      a2 = hn::MulAdd(hn::Set(df, p2[j]), v, a2);
      a3 = hn::MulAdd(hn::Set(df, p3[j]), v, a3);
    }
    hn::Store(a0, df, o0 + e);
    hn::Store(a1, df, o1 + e);
    hn::Store(a2, df, o2 + e);
    hn::Store(a3, df, o3 + e);
  }
}

// One row: 4 output vectors at a time, two keys per step into separate
// accumulators so that the FMA chains are 8 deep.
HWY_INLINE void DecodePV1Row(const float* HWY_RESTRICT p, const float* HWY_RESTRICT v_block,
                             int64_t n_keys, int64_t dv_pad, float* HWY_RESTRICT o) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t e = 0; e < dv_pad; e += n) {
    auto a0 = hn::Load(df, o + e), a1 = hn::Zero(df);
    int64_t j = 0;
    for (; j + 2 <= n_keys; j += 2) {
      a0 = hn::MulAdd(hn::Set(df, p[j]), hn::Load(df, v_block + j * dv_pad + e), a0);
      a1 = hn::MulAdd(hn::Set(df, p[j + 1]), hn::Load(df, v_block + (j + 1) * dv_pad + e), a1);
    }
    if (j < n_keys) a0 = hn::MulAdd(hn::Set(df, p[j]), hn::Load(df, v_block + j * dv_pad + e), a0);
    hn::Store(hn::Add(a0, a1), df, o + e);
  }
}

HWY_INLINE void DecodePV(const float* HWY_RESTRICT p, const float* HWY_RESTRICT v_block,
                         int64_t n_keys, int64_t rows, int64_t dv_pad, float* HWY_RESTRICT o) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    DecodePV4Rows(p + r * kBlockKeys, v_block, n_keys, dv_pad, o + r * dv_pad);
  }
  for (; r < rows; ++r) DecodePV1Row(p + r * kBlockKeys, v_block, n_keys, dv_pad, o + r * dv_pad);
}

HWY_INLINE void DecodeWorkItem(const Plan& plan, int64_t item, Worker& worker) {
  const DecodeLayout& l = plan.decode_ws;
  float* ws = worker.ws;
  const int64_t group_item = item / plan.n_splits;
  const int64_t split = item % plan.n_splits;
  const int32_t kv_head = static_cast<int32_t>(group_item / plan.head_batches);
  const int32_t head0 = kv_head * plan.group +
                        static_cast<int32_t>(group_item % plan.head_batches) * plan.heads_per_item;
  const int32_t n_slots = std::min(plan.heads_per_item, (kv_head + 1) * plan.group - head0);
  const DecodeRows rows{head0,          n_slots,       n_slots * plan.n_q,
                        ws + l.q_rows,  ws + l.o_rows, ws + l.row_max,
                        ws + l.row_sum, ws + l.s_rows, ws + l.row_poison};
  HeadBias biases[kMaxHeadsPerItem];
  for (int32_t g = 0; g < n_slots; ++g) biases[g] = BiasOfHead(plan, head0 + g, g, worker);
  // Int8 cache keys: the query rows are quantised (QuantizeDecodeRows);
  // int8 queries without RoPE keep their integers.
  const bool int8_cache = plan.cache.on && plan.k.dtype == RELATTN_I8;
  const bool int_queries = plan.q.dtype == RELATTN_I8 && !plan.rope.on;
  float* q_mul = ws + l.q_mul;
  void* q_int = ws + l.q_int;
  std::memset(rows.q, 0, sizeof(float) * rows.n_rows * plan.d_pad);
  std::memset(rows.o, 0, sizeof(float) * rows.n_rows * plan.dv_pad);
  for (int64_t r = 0; r < rows.n_rows; ++r) {
    const int64_t offset =
        (r % plan.n_q) * plan.q.token_stride + (head0 + r / plan.n_q) * plan.q.head_stride;
    // With int8 keys, q_mul[r] is what the row's scores are multiplied by:
    // int8 queries (without RoPE) stay integers and carry their scale there;
    // rows against int8 cache keys stay unscaled (QuantizeDecodeRows
    // quantises them as relattn_quantize_i8 would the query); other rows are
    // in log2 units.
    const float q_scale =
        plan.q.dtype == RELATTN_I8
            ? plan.q.RowScale(r % plan.n_q, head0 + static_cast<int32_t>(r / plan.n_q))
            : 1.0f;
    float mul = q_scale * plan.scale_log2, row_mul = 1.0f;
    if (int_queries) {
      mul = 1.0f;
      row_mul = q_scale * plan.scale_log2;
    } else if (int8_cache) {
      mul = q_scale;
      row_mul = plan.scale_log2;
    }
    if (plan.k.dtype == RELATTN_I8) q_mul[r] = row_mul;
    ConvertRow(plan.q.data, plan.q.dtype, offset, plan.d, mul, rows.q + r * plan.d_pad);
    if (plan.rope.on)
      RopeRotate(plan, worker, plan.q_pos.At(r % plan.n_q), rows.q + r * plan.d_pad);
    const bool finite = std::isfinite(q_scale) && RowFinite(rows.q + r * plan.d_pad, plan.d);
    rows.poison[r] = finite ? 0.0f : 1.0f;
    rows.max[r] = -HUGE_VALF;
    rows.sum[r] = 0.0f;
  }
  // The blocks hold converted key / value rows, zero beyond d / dv.
  float* k_block = ws + l.k_block;
  float* k_scale = ws + l.k_scale;
  float* v_block = ws + l.v_block;
  if (plan.d_pad > plan.d) std::memset(k_block, 0, sizeof(float) * kBlockKeys * plan.d_pad);
  if (plan.dv_pad > plan.dv) std::memset(v_block, 0, sizeof(float) * kBlockKeys * plan.dv_pad);

  // Shaw vector form: each row's own table in place of its head's.
  HeadBias row_bias[kMaxHeadsPerItem * kDecodeMaxQueries];
  for (int64_t r = 0; r < rows.n_rows; ++r) {
    row_bias[r] = biases[r / plan.n_q];
    if (plan.shaw_vector) {
      const int64_t len = 2 * int64_t{plan.shaw_vector_k} + 1 + 2 * kTablePad;
      row_bias[r] =
          ShawVectorRowBias(plan, head0 + static_cast<int32_t>(r / plan.n_q),
                            rows.q + r * plan.d_pad, plan.k.dtype == RELATTN_I8 ? q_mul[r] : 1.0f,
                            ws + plan.shaw_products, ws + plan.shaw_row_tables + r * len);
    }
  }
  if (int8_cache) QuantizeDecodeRows(plan, rows, int_queries, q_mul, q_int);
  int64_t anchors[kMaxHeadsPerItem * kDecodeMaxQueries] = {};  // ALiBi row anchors
  for (int64_t r = 0; r < rows.n_rows && plan.bias_kind == BiasKind::kAlibi; ++r) {
    anchors[r] =
        AlibiRowAnchor(plan, biases[r / plan.n_q].alibi_causal, plan.q_pos.At(r % plan.n_q));
  }
  const PositionSpan q_span = SpanOf(plan.q_pos, 0, plan.n_q);
  // This split's key blocks: [block_begin, block_end) of n_blocks.
  const int64_t n_blocks = (plan.n_valid_kv + kBlockKeys - 1) / kBlockKeys;
  const int64_t block_begin = split * n_blocks / plan.n_splits;
  const int64_t block_end = (split + 1) * n_blocks / plan.n_splits;
  for (int64_t j0 = block_begin * kBlockKeys; j0 < block_end * kBlockKeys; j0 += kBlockKeys) {
    const int64_t n_keys = std::min(kBlockKeys, plan.n_valid_kv - j0);
    const PositionSpan k_span = SpanOf(plan.k_pos, j0, n_keys);
    const TileVisibility visibility =
        ClassifyTile(plan, q_span.min, q_span.max, k_span.min, k_span.max);
    if (visibility == TileVisibility::kHidden) {
      if (!plan.k_pos.positions && plan.causal && k_span.min > q_span.max) break;
      continue;
    }
    uint64_t bad_keys = 0;
    if (plan.k.dtype == RELATTN_I8) bad_keys = KeyScales(plan, kv_head, j0, n_keys, k_scale);
    if (plan.cache.on) {
      // The cache stored non-finite rows as zeros and flagged them.
      bad_keys |= CacheBadKeys(plan, kv_head, j0, n_keys);
      if (int8_cache) {
        CacheScoresI8(plan, rows, q_int, kv_head, j0, n_keys);
      } else {
        CacheScores(plan, rows, kv_head, j0, n_keys);
      }
    } else {
      const int64_t limit = std::min(block_end * kBlockKeys, plan.n_valid_kv);  // split's keys
      ConvertBlock(plan.k, kv_head, j0, n_keys, limit, plan.d, plan.d_pad, k_block);
      for (int64_t j = 0; plan.rope.on && j < n_keys; ++j) {
        RopeRotate(plan, worker, plan.k_pos.At(j0 + j), k_block + j * plan.d_pad);
      }
      ConvertBlock(plan.v, kv_head, j0, n_keys, limit, plan.dv, plan.dv_pad, v_block);
      // Non-finite K or V rows poison the queries that see them, and are
      // zeroed so that they cannot reach the queries that do not.
      bad_keys |= NonFiniteRows({k_block, plan.d_pad}, n_keys, plan.d) |
                  NonFiniteRows({v_block, plan.dv_pad}, n_keys, plan.dv);
      for (int64_t j = 0; j < n_keys; ++j) {
        if ((bad_keys >> j) & 1) {
          std::fill(k_block + j * plan.d_pad, k_block + (j + 1) * plan.d_pad, 0.0f);
          std::fill(v_block + j * plan.dv_pad, v_block + (j + 1) * plan.dv_pad, 0.0f);
        }
      }
      DecodeScores(rows, k_block, n_keys, plan.d_pad);
    }
    if (plan.k.dtype == RELATTN_I8) {
      ScaleInt8DecodeScores(rows, q_mul, k_scale, n_keys);
    }
    for (int64_t r = 0; r < rows.n_rows; ++r) {
      float* s = rows.s + r * kBlockKeys;
      float* o_row = rows.o + r * plan.dv_pad;
      DecodeBiasMask(plan, row_bias[r], plan.q_pos.At(r % plan.n_q), anchors[r], j0, n_keys, k_span,
                     visibility == TileVisibility::kPartial, s);
      DecodePoison(s, n_keys, bad_keys, &rows.poison[r]);
      // A row that has seen no key yet adds nothing.
      if (!DecodeSoftmaxRow(s, &rows.max[r], &rows.sum[r], o_row, plan.dv_pad)) {
        std::fill(s, s + kBlockKeys, 0.0f);
      }
    }
    if (plan.cache.on) {
      InPlacePV(plan, rows, kv_head, j0, n_keys);
    } else {
      DecodePV(rows.s, v_block, n_keys, rows.n_rows, plan.dv_pad, rows.o);
    }
  }

  if (plan.n_splits > 1) {
    // Partial state for MergeSplits: unnormalised o, max, sum per row.
    float* partial = worker.shared_ws + item * plan.partial_floats_per_item;
    const int64_t o_floats = rows.n_rows * plan.dv_pad;
    std::memcpy(partial, rows.o, sizeof(float) * o_floats);
    std::memcpy(partial + o_floats, rows.max, sizeof(float) * rows.n_rows);
    std::memcpy(partial + o_floats + rows.n_rows, rows.sum, sizeof(float) * rows.n_rows);
    std::memcpy(partial + o_floats + 2 * rows.n_rows, rows.poison, sizeof(float) * rows.n_rows);
    return;
  }
  for (int64_t r = 0; r < rows.n_rows; ++r) {
    if (rows.poison[r] != 0.0f)
      std::fill(rows.o + r * plan.dv_pad, rows.o + (r + 1) * plan.dv_pad, NAN);
    const float inv_sum = rows.sum[r] > 0.0f ? 1.0f / rows.sum[r] : 0.0f;
    const int64_t offset =
        (r % plan.n_q) * plan.o_token_stride + (head0 + r / plan.n_q) * plan.o_head_stride;
    StoreRow(rows.o + r * plan.dv_pad, plan.dv, inv_sum, plan.o, plan.o_dtype, offset);
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_DECODE_INL_H_
