// Score micro-kernels with keys in vector lanes, over the key groups of a KV
// cache ([group][d][kKeyGroup], kv_cache.h): decode (per-target code).
#if defined(RELATTN_LIB_KERNELS_SCORES_KLANES_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_SCORES_KLANES_INL_H_
#undef RELATTN_LIB_KERNELS_SCORES_KLANES_INL_H_
#else
#define RELATTN_LIB_KERNELS_SCORES_KLANES_INL_H_
#endif

#include <cstdint>
#include <cstring>

#include "hwy/highway.h"
#include "lib/common/bf16.h"
#include "lib/common/f16.h"
#include "lib/driver/plan.h"
#include "lib/kernels/int_dot-inl.h"
#include "lib/kernels/pack-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Lanes(DF) consecutive values as f32.
HWY_INLINE hn::Vec<DF> LoadF32(const float* HWY_RESTRICT p) { return hn::LoadU(DF(), p); }
HWY_INLINE hn::Vec<DF> LoadF32(const hwy::float16_t* HWY_RESTRICT p) { return PromoteF16(p); }
HWY_INLINE hn::Vec<DF> LoadF32(const int8_t* HWY_RESTRICT p) { return PromoteI8(p); }
HWY_INLINE hn::Vec<DF> LoadF32(const hwy::bfloat16_t* HWY_RESTRICT p) { return PromoteBF16(p); }

HWY_INLINE float ScalarF32(float x) { return x; }
HWY_INLINE float ScalarF32(int8_t x) { return static_cast<float>(x); }
HWY_INLINE float ScalarF32(hwy::float16_t x) {
  uint16_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return F16ToF32(bits);
}
HWY_INLINE float ScalarF32(hwy::bfloat16_t x) {
  uint16_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return BF16ToF32(bits);
}

// The count < Lanes(DF) values at p as f32, zeros after: the last part of a
// row read in place, where a whole vector would read past the row. The same
// vector arithmetic then serves every dtype (bit-identical results for f16
// and f32 inputs holding the same values).
template <typename T>
HWY_INLINE hn::Vec<DF> LoadF32Partial(const T* HWY_RESTRICT p, int64_t count) {
  HWY_ALIGN float part[kMaxLanes] = {};
  for (int64_t i = 0; i < count; ++i) part[i] = ScalarF32(p[i]);
  return hn::Load(DF(), part);
}

// Key j of a block of KV-cache key groups, channel 0 (kv_cache.h).
template <typename T>
HWY_INLINE const T* GroupedKey(const T* keys, int64_t j, int32_t d) {
  return keys + j / kKeyGroup * d * kKeyGroup + j % kKeyGroup;
}

// s[r][j] = q_r . k_j for keys j < n_keys of a block of key groups (q_rows
// [n_rows][d_pad], s_rows [n_rows][kBlockKeys]): keys lie
// in vector lanes, so a step loads one channel of Lanes(DF) keys and FMAs it
// with each row's broadcast query element; no horizontal sums. 4 rows x 2
// key vectors = 8 independent accumulators. Lanes past n_keys (up to the end
// of a vector) hold garbage that BiasMaskRow hides.
template <typename T>
HWY_INLINE void ScoresKLanes(const float* HWY_RESTRICT q_rows, int64_t n_rows, int64_t d_pad,
                             const T* HWY_RESTRICT keys, int32_t d, int64_t n_keys,
                             float* HWY_RESTRICT s_rows) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t j = 0; j < n_keys; j += 2 * n) {
    const T* k0 = GroupedKey(keys, j, d);
    // A second vector past the block's keys would leave the cache's groups.
    const T* k1 = j + n < n_keys ? GroupedKey(keys, j + n, d) : k0;
    int64_t r = 0;
    for (; r + 4 <= n_rows; r += 4) {
      const float *q0 = q_rows + r * d_pad, *q1 = q0 + d_pad, *q2 = q1 + d_pad, *q3 = q2 + d_pad;
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
      float* s = s_rows + r * kBlockKeys + j;
      hn::StoreU(a00, df, s);
      hn::StoreU(a01, df, s + n);
      hn::StoreU(a10, df, s + kBlockKeys);
      hn::StoreU(a11, df, s + kBlockKeys + n);
      hn::StoreU(a20, df, s + 2 * kBlockKeys);
      hn::StoreU(a21, df, s + 2 * kBlockKeys + n);
      hn::StoreU(a30, df, s + 3 * kBlockKeys);
      hn::StoreU(a31, df, s + 3 * kBlockKeys + n);
    }
    for (; r < n_rows; ++r) {
      const float* q = q_rows + r * d_pad;
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
      hn::StoreU(a0, df, s_rows + r * kBlockKeys + j);
      hn::StoreU(a1, df, s_rows + r * kBlockKeys + j + n);
    }
  }
}

// Scores of the rows against f32 / f16 / bf16 keys [j0, j0 + n_keys) of a KV cache's head
// (int8 keys: ScoresKLanesI8).
HWY_INLINE void ScoresKLanesCache(const Plan& plan, const float* HWY_RESTRICT q_rows,
                                  int64_t n_rows, int32_t kv_head, int64_t j0, int64_t n_keys,
                                  float* HWY_RESTRICT s_rows) {
  const int64_t offset = plan.cache.KeyGroupOffset(kv_head, j0, plan.d);
  if (plan.k.dtype == RELATTN_F16) {
    ScoresKLanes(q_rows, n_rows, plan.d_pad,
                 static_cast<const hwy::float16_t*>(plan.k.data) + offset, plan.d, n_keys, s_rows);
  } else if (plan.k.dtype == RELATTN_BF16) {
    ScoresKLanes(q_rows, n_rows, plan.d_pad,
                 static_cast<const hwy::bfloat16_t*>(plan.k.data) + offset, plan.d, n_keys, s_rows);
  } else {
    ScoresKLanes(q_rows, n_rows, plan.d_pad, static_cast<const float*>(plan.k.data) + offset,
                 plan.d, n_keys, s_rows);
  }
}

// Int8 keys: s[r][j] *= k_scale[j] for every row, or with q_mul (quantised
// queries, integer scores) s[r][j] *= q_mul[r] * k_scale[j] (lanes up to the
// vector past n_keys: k_scale holds kBlockKeys floats).
HWY_INLINE void ScaleRowsI8(int64_t n_rows, const float* HWY_RESTRICT q_mul,
                            const float* HWY_RESTRICT k_scale, int64_t n_keys,
                            float* HWY_RESTRICT s_rows) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t r = 0; r < n_rows; ++r) {
    float* s = s_rows + r * kBlockKeys;
    const auto m = hn::Set(df, q_mul ? q_mul[r] : 1.0f);
    for (int64_t j = 0; j < n_keys; j += n) {
      const auto scale = q_mul ? hn::Mul(m, hn::Load(df, k_scale + j)) : hn::Load(df, k_scale + j);
      hn::Store(hn::Mul(hn::Load(df, s + j), scale), df, s + j);
    }
  }
}

// Integer scores of the quantised rows against int8 cache keys [j0, j0 +
// n_keys): with the target's kernel (IntDotDecode) where the CPU has it,
// else in f32 (exact).
HWY_INLINE void ScoresKLanesI8(const Plan& plan, const float* HWY_RESTRICT q_rows, int64_t n_rows,
                               const void* q_int, int32_t kv_head, int64_t j0, int64_t n_keys,
                               float* HWY_RESTRICT s_rows) {
  const int8_t* keys =
      static_cast<const int8_t*>(plan.k.data) + plan.cache.KeyGroupOffset(kv_head, j0, plan.d);
  int32_t* s_int = reinterpret_cast<int32_t*>(s_rows);
  const IntDotKernels* kernels = IntDotDecode(plan);
  if (!kernels) {
    ScoresKLanes(q_rows, n_rows, plan.d_pad, keys, plan.d, n_keys, s_rows);
    return;
  }
  kernels->scores_klanes(q_int, n_rows, keys, plan.d, n_keys, s_int, kBlockKeys);
  const DF df;
  const hn::RebindToSigned<DF> di;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t r = 0; r < n_rows; ++r) {
    for (int64_t j = 0; j < n_keys; j += n) {
      const int64_t at = r * kBlockKeys + j;
      hn::Store(hn::ConvertTo(df, hn::Load(di, s_int + at)), df, s_rows + at);
    }
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_SCORES_KLANES_INL_H_
