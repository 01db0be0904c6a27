// The one per-target table of ISA micro-kernels (per-target code): for each
// Highway target, the integer dot-product kernels of ports/ it may call, how
// it encodes int8 operands for them and the run-time CPU check that enables
// them. The only file in lib/ that includes ports/ headers or chooses a
// kernel by HWY_TARGET; the pipelines ask IntDotPrefill / IntDotDecode and
// take the portable f32 path when they return null.
//
// Kernels now: AVX3 with AVX-512 VNNI (sub-tiles of 32 lanes), AVX2 with
// vpmaddwd (16 lanes), NEON with SDOT (8 lanes); decode over int8 KV-cache
// key groups on those and on every other aarch64 target (SVE, SVE2: SDOT is
// part of their baseline ISA, the kernel does not depend on the lane count).
// Every kernel sums the same integers as the portable path, which multiplies
// the int8 values in f32 (exact: each partial sum is an integer below 2^24).
#if defined(RELATTN_LIB_KERNELS_INT_DOT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RELATTN_LIB_KERNELS_INT_DOT_INL_H_
#undef RELATTN_LIB_KERNELS_INT_DOT_INL_H_
#else
#define RELATTN_LIB_KERNELS_INT_DOT_INL_H_
#endif

#include <algorithm>
#include <cstdint>

#include "hwy/highway.h"
#include "lib/driver/plan.h"
#if defined(RELATTN_HAVE_X86_INT_DOT)
#include "ports/x86/bf16_scores.h"
#include "ports/x86/madd_scores.h"
#include "ports/x86/vnni_scores.h"
#endif
#if defined(RELATTN_HAVE_ARM_SDOT)
#include "ports/arm/sdot_scores.h"
#endif

HWY_BEFORE_NAMESPACE();
namespace relattn {
namespace HWY_NAMESPACE {

// How a kernel reads int8 operands. kBytesOffset128: queries as q + 128 in
// bytes, 4 channels per lane ([d4 / 4][W][4] in prefill, rows of d4 in
// decode; padding 128), keys as int8 rows of d4. kInt16: both sign-extended
// to int16 (queries [d4 / 2][W][2] in prefill, rows of d4 in decode; keys
// rows of d4 int16; padding 0).
enum class IntEncoding { kBytesOffset128, kInt16 };

// Prefill, queries in lanes: s[j][lane] = q[lane] . k[j] for j < n_keys over
// d4 channels (k_sum[j]: the sum of key j's channels, for the offset).
using ScoresQLanesI8Fn = void (*)(const void* q, int64_t d4, const void* k, const int32_t* k_sum,
                                  int64_t n_keys, int32_t* s);
// Decode, keys in lanes over int8 KV-cache key groups: s[r * s_stride + j] =
// q[r] . k_j for rows r < n_rows, keys j < n_keys rounded up to 16; q: rows
// of d4 as the encoding says, read up to n_rows rounded up to 4.
using ScoresKLanesI8Fn = void (*)(const void* q, int64_t n_rows, const int8_t* keys, int32_t d,
                                  int64_t n_keys, int32_t* s, int64_t s_stride);

struct IntDotKernels {
  const char* name;  // "vnni", "vpmaddwd", "sdot"; nullptr: this target has none
  bool (*usable)();  // the CPU runs them and tests have not switched them off
  IntEncoding encoding;
  int64_t lanes;                   // prefill sub-tile lanes (2 vectors of DF)
  ScoresQLanesI8Fn scores_qlanes;  // nullptr: none for prefill on this target
  ScoresKLanesI8Fn scores_klanes;  // nullptr: none for decode on this target
};

// RELATTN_INT_DOT_QLANES / _KLANES: the target's table has that kernel (the
// pipelines test these, not the pointers, which the compiler knows non-null).
#undef RELATTN_INT_DOT_QLANES
#undef RELATTN_INT_DOT_KLANES
#if defined(RELATTN_HAVE_X86_INT_DOT) && (HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL)
#define RELATTN_INT_DOT_QLANES 1
#define RELATTN_INT_DOT_KLANES 1
constexpr IntDotKernels kIntDot = {
    "vnni",
    x86::VnniUsable,
    IntEncoding::kBytesOffset128,
    x86::kVnniLanes,
    [](const void* q, int64_t d4, const void* k, const int32_t* k_sum, int64_t n_keys, int32_t* s) {
      x86::ScoresQLanesI8Vnni(static_cast<const uint8_t*>(q), d4, static_cast<const int8_t*>(k),
                              k_sum, n_keys, s);
    },
    [](const void* q, int64_t n_rows, const int8_t* keys, int32_t d, int64_t n_keys, int32_t* s,
       int64_t s_stride) {
      x86::ScoresKLanesI8Vnni(static_cast<const uint8_t*>(q), n_rows, keys, d, n_keys, s, s_stride);
    }};
#elif defined(RELATTN_HAVE_X86_INT_DOT) && HWY_TARGET == HWY_AVX2
#define RELATTN_INT_DOT_QLANES 1
#define RELATTN_INT_DOT_KLANES 1
constexpr IntDotKernels kIntDot = {
    "vpmaddwd",
    x86::MaddUsable,
    IntEncoding::kInt16,
    x86::kMaddLanes,
    [](const void* q, int64_t d4, const void* k, const int32_t*, int64_t n_keys, int32_t* s) {
      x86::ScoresQLanesI16Madd(static_cast<const int16_t*>(q), d4, static_cast<const int16_t*>(k),
                               n_keys, s);
    },
    [](const void* q, int64_t n_rows, const int8_t* keys, int32_t d, int64_t n_keys, int32_t* s,
       int64_t s_stride) {
      x86::ScoresKLanesI8Madd(static_cast<const int16_t*>(q), n_rows, keys, d, n_keys, s, s_stride);
    }};
#elif defined(RELATTN_HAVE_ARM_SDOT) && HWY_ARCH_ARM_A64
#define RELATTN_INT_DOT_KLANES 1
constexpr IntDotKernels kIntDot = {
    "sdot",
    arm::SdotUsable,
    IntEncoding::kBytesOffset128,
    arm::kSdotLanes,
#if HWY_TARGET == HWY_NEON  // the sub-tile kernel is written for NEON's 8 lanes
#define RELATTN_INT_DOT_QLANES 1
    [](const void* q, int64_t d4, const void* k, const int32_t*, int64_t n_keys, int32_t* s) {
      arm::ScoresQLanesI8Sdot(static_cast<const uint8_t*>(q), d4, static_cast<const int8_t*>(k),
                              n_keys, s);
    },
#else
    nullptr,
#endif
    [](const void* q, int64_t n_rows, const int8_t* keys, int32_t d, int64_t n_keys, int32_t* s,
       int64_t s_stride) {
      arm::ScoresKLanesI8Sdot(static_cast<const uint8_t*>(q), n_rows, keys, d, n_keys, s, s_stride);
    }};
#else
constexpr IntDotKernels kIntDot = {nullptr, nullptr, IntEncoding::kBytesOffset128,
                                   0,       nullptr, nullptr};
#endif

// The prefill kernel for int8 Q and K read from tensors (a KV cache keeps K
// in key groups: the portable path reads those), or null.
HWY_INLINE const IntDotKernels* IntDotPrefill(const Plan& plan) {
#if defined(RELATTN_INT_DOT_QLANES)
  if (plan.int8_dot && !plan.cache.on && kIntDot.usable()) return &kIntDot;
#else
  (void)plan;
#endif
  return nullptr;
}

// The decode kernel over int8 KV-cache key groups, or null.
HWY_INLINE const IntDotKernels* IntDotDecode(const Plan& plan) {
#if defined(RELATTN_INT_DOT_KLANES)
  if (plan.cache.on && plan.k.dtype == RELATTN_I8 && kIntDot.usable()) return &kIntDot;
#else
  (void)plan;
#endif
  return nullptr;
}

// Prefill, queries in lanes, bf16 Q and K: s[j][lane] = scale * q[lane] .
// k_j over d2 channel pairs (q: [d2][lanes] 32-bit pairs; key j's bf16 row
// at k + j * k_stride).
using ScoresQLanesBf16Fn = void (*)(const uint32_t* q, int64_t d2, const uint16_t* k,
                                    int64_t k_stride, int64_t n_keys, float scale, float* s);
// Prefill P.V, probabilities rounded to bf16: o_t[e][lane] += sum_j p[j][lane]
// * v_j[e] (v: [(n_keys + 1) / 2][dv] pairs of keys, PackValuePairs).
using PVQLanesBf16Fn = void (*)(const float* p, int64_t n_keys, const uint32_t* v_pairs, int64_t dv,
                                float* o_t);

// f16 row -> bf16 row, nearest even (f16 inputs on the bf16 path).
using RowF16ToBF16Fn = void (*)(const uint16_t* src, int64_t n, uint16_t* dst);
// The values of n_keys keys (bf16 rows, or f16 rows rounded to bf16) as
// pv_qlanes reads them: v_pairs[i][e] = keys 2i, 2i + 1 of channel e.
using PackValuePairsFn = void (*)(const uint16_t* v, int64_t v_stride, int64_t n_keys, int64_t dv,
                                  bool from_f16, uint32_t* v_pairs);

// This target's bf16 dot-product kernel (the ISA table's bf16 row).
struct Bf16DotKernels {
  const char* name;  // "vdpbf16ps"; nullptr: this target has none
  bool (*usable)();
  int64_t lanes;  // prefill sub-tile lanes (2 vectors of DF)
  ScoresQLanesBf16Fn scores_qlanes;
  PVQLanesBf16Fn pv_qlanes;  // precision FAST only (Plan::bf16_pv)
  RowF16ToBF16Fn row_from_f16;
  PackValuePairsFn pack_value_pairs;
};

#if defined(RELATTN_HAVE_X86_INT_DOT) && (HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL)
#define RELATTN_BF16_DOT_QLANES 1
constexpr Bf16DotKernels kBf16Dot = {
    "vdpbf16ps",          x86::Bf16DotUsable, x86::kBf16Lanes,        x86::ScoresQLanesBf16Dot,
    x86::PVQLanesBf16Dot, x86::F16RowToBF16,  x86::PackValuePairsBf16};
#else
constexpr Bf16DotKernels kBf16Dot = {nullptr, nullptr, 0, nullptr, nullptr, nullptr, nullptr};
#endif

// The prefill kernel for bf16 Q and K read from tensors, or null.
HWY_INLINE const Bf16DotKernels* Bf16DotPrefill(const Plan& plan) {
#if defined(RELATTN_BF16_DOT_QLANES)
  if (plan.bf16_dot && !plan.cache.on && kBf16Dot.usable()) return &kBf16Dot;
#else
  (void)plan;
#endif
  return nullptr;
}

// The bf16 queries i0 .. i0 + rows of head h packed for Bf16DotPrefill:
// q_pairs[c][lane] = channels 2c, 2c + 1 of query i0 + lane (low, high
// half), lanes rows .. w zero. f16 queries are rounded
// to bf16 through row (d values of scratch).
HWY_INLINE void PackQueriesBf16(const Plan& plan, const Bf16DotKernels& kernels, int32_t h,
                                int64_t i0, int64_t rows, int64_t w, uint16_t* HWY_RESTRICT row,
                                uint32_t* HWY_RESTRICT q_pairs) {
  const uint16_t* q = static_cast<const uint16_t*>(plan.q.data);
  const int64_t d2 = plan.d / 2;
  std::fill(q_pairs, q_pairs + d2 * w, 0u);
  for (int64_t lane = 0; lane < rows; ++lane) {
    const uint16_t* src = q + (i0 + lane) * plan.q.token_stride + h * plan.q.head_stride;
    if (plan.q.dtype == RELATTN_F16) {
      kernels.row_from_f16(src, plan.d, row);
      src = row;
    }
    for (int64_t c = 0; c < d2; ++c) {
      q_pairs[c * w + lane] = uint32_t{src[2 * c]} | (uint32_t{src[2 * c + 1]} << 16);
    }
  }
}

// Keys [j0, j0 + n_keys) of kv_head's values (a tensor, finite rows) as
// PVQLanesBf16Fn reads them.
HWY_INLINE void PackValuePairs(const Plan& plan, const Bf16DotKernels& kernels, int32_t kv_head,
                               int64_t j0, int64_t n_keys, uint32_t* HWY_RESTRICT v_pairs) {
  const uint16_t* v = static_cast<const uint16_t*>(plan.v.data) + j0 * plan.v.token_stride +
                      kv_head * plan.v.head_stride;
  kernels.pack_value_pairs(v, plan.v.token_stride, n_keys, plan.dv, plan.v.dtype == RELATTN_F16,
                           v_pairs);
}

// Bf16 keys the bf16 prefill kernel reads (Bf16DotPrefill), in place or
// converted.
struct KeysBf16 {
  const Bf16DotKernels* kernels;
  const uint16_t* rows;  // key j0's row; key j0 + j at rows + j * stride
  int64_t stride;
};

// Finite keys [j0, j0 + n_keys) of kv_head for the bf16 kernel: bf16 rows
// where they lie, f16 rows rounded into scratch
// (n_keys x d values).
HWY_INLINE KeysBf16 KeysAsBf16(const Plan& plan, const Bf16DotKernels& kernels, int32_t kv_head,
                               int64_t j0, int64_t n_keys, uint16_t* HWY_RESTRICT scratch) {
  const uint16_t* k = static_cast<const uint16_t*>(plan.k.data) + j0 * plan.k.token_stride +
                      kv_head * plan.k.head_stride;
  if (plan.k.dtype != RELATTN_F16) return {&kernels, k, plan.k.token_stride};
  for (int64_t j = 0; j < n_keys; ++j) {
    kernels.row_from_f16(k + j * plan.k.token_stride, plan.d, scratch + j * plan.d);
  }
  return {&kernels, scratch, plan.d};
}

// The encoding of this target's kernels (also when none is usable: the
// workspace holds either).
HWY_INLINE IntEncoding TargetIntEncoding() { return kIntDot.encoding; }

// The int8 queries of a sub-tile (q_t: [d][w] integers held in f32) packed
// for the prefill kernel, channels d..d4 as padding.
HWY_INLINE void PackQueriesInt(const Plan& plan, const float* HWY_RESTRICT q_t, int64_t w,
                               void* HWY_RESTRICT q_int) {
  if (TargetIntEncoding() == IntEncoding::kInt16) {
    int16_t* q = static_cast<int16_t*>(q_int);
    for (int64_t e = 0; e < plan.d4; ++e) {
      int16_t* out = q + (e / 2) * w * 2 + e % 2;
      for (int64_t lane = 0; lane < w; ++lane) {
        out[lane * 2] = e < plan.d ? static_cast<int16_t>(q_t[e * w + lane]) : int16_t{0};
      }
    }
    return;
  }
  uint8_t* q = static_cast<uint8_t*>(q_int);
  for (int64_t e = 0; e < plan.d4; ++e) {
    uint8_t* out = q + (e / 4) * w * 4 + e % 4;
    for (int64_t lane = 0; lane < w; ++lane) {
      out[lane * 4] = e < plan.d
                          ? static_cast<uint8_t>(static_cast<int32_t>(q_t[e * w + lane]) + 128)
                          : uint8_t{128};
    }
  }
}

template <typename Int>
HWY_INLINE void PackKeysIntAs(const Plan& plan, int32_t kv_head, int64_t j0, int64_t n_keys,
                              uint64_t bad, Int* HWY_RESTRICT k_int, int32_t* HWY_RESTRICT k_sum) {
  const int8_t* src = static_cast<const int8_t*>(plan.k.data);
  for (int64_t j = 0; j < n_keys; ++j) {
    Int* row = k_int + j * plan.d4;
    std::fill(row, row + plan.d4, Int{0});
    int32_t sum = 0;
    if (!((bad >> j) & 1)) {
      const int8_t* key = src + (j0 + j) * plan.k.token_stride + kv_head * plan.k.head_stride;
      for (int64_t e = 0; e < plan.d; ++e) {
        row[e] = key[e];
        sum += key[e];
      }
    }
    k_sum[j] = sum;
  }
}

// Int8 keys [j0, j0 + n_keys) of kv_head read from a tensor as the prefill
// kernel reads them: rows of d4 (zero beyond d; zero for the `bad` keys),
// and their sums.
HWY_INLINE void PackKeysInt(const Plan& plan, int32_t kv_head, int64_t j0, int64_t n_keys,
                            uint64_t bad, void* HWY_RESTRICT k_int, int32_t* HWY_RESTRICT k_sum) {
  if (TargetIntEncoding() == IntEncoding::kInt16) {
    PackKeysIntAs(plan, kv_head, j0, n_keys, bad, static_cast<int16_t*>(k_int), k_sum);
  } else {
    PackKeysIntAs(plan, kv_head, j0, n_keys, bad, static_cast<int8_t*>(k_int), k_sum);
  }
}

// Decode: q_int ([n_rows4][d4], n_rows4 = rows rounded up to 4) set to the
// encoding of zeros: the padding rows and channels.
HWY_INLINE void FillQueryRowsInt(int64_t n_rows4, int64_t d4, void* HWY_RESTRICT q_int) {
  if (TargetIntEncoding() == IntEncoding::kInt16) {
    int16_t* out = static_cast<int16_t*>(q_int);
    std::fill(out, out + n_rows4 * d4, int16_t{0});
  } else {
    uint8_t* out = static_cast<uint8_t*>(q_int);
    std::fill(out, out + n_rows4 * d4, uint8_t{128});
  }
}

// Decode: the integers q[0, d) of query row r into q_int's row r.
HWY_INLINE void PackQueryRowInt(const int8_t* HWY_RESTRICT q, int64_t r, int32_t d, int64_t d4,
                                void* HWY_RESTRICT q_int) {
  if (TargetIntEncoding() == IntEncoding::kInt16) {
    int16_t* out = static_cast<int16_t*>(q_int) + r * d4;
    for (int32_t e = 0; e < d; ++e) out[e] = static_cast<int16_t>(q[e]);
  } else {
    uint8_t* out = static_cast<uint8_t*>(q_int) + r * d4;
    for (int32_t e = 0; e < d; ++e) out[e] = static_cast<uint8_t>(q[e] + 128);
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn
HWY_AFTER_NAMESPACE();

#endif  // RELATTN_LIB_KERNELS_INT_DOT_INL_H_
