// The pointer-level micro-kernels of lib/kernels/*-inl.h on every compiled
// and supported SIMD target, each against a plain scalar version written
// here (double accumulation), over sizes at the edges of their register
// blocks and vectors: key counts 1, 3, 4, 5, 63, 64 (kBlockKeys), head dims
// 1, 3, 15, 16, 17, 64, 80, 128, 256, decode row counts 3 (the remainder
// loop only) and 9 (two 4-row blocks and a remainder).
//
// Bounds. Float kernels: |got - want| <= kRel * (sum of |terms|) + kAbs,
// kRel = 1e-5, kAbs = 1e-30, want computed in double. The kernels accumulate
// in f32 with FMA in an order (per register block, per lane) that differs
// from the scalar order, so they are not bit-exact; the worst case of f32
// recursive summation is about n * 2^-24 * (sum of |terms|), 1.5e-5 at
// n = 256, but the measured errors stay over 10x below kRel (printed per kernel).
// Kernels whose results are integers (int8 dot products, in f32 or int32),
// conversions and scalings by the same f32 operations: exact (bit for bit;
// a NaN compares equal to any NaN).
//
// Each kernel prints one line (MESSAGE) with its worst relative error over
// every size and target: |got - want| / (sum of |terms|).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#ifndef RELATTN_TESTS_TEST_KERNELS_SHARED_
#define RELATTN_TESTS_TEST_KERNELS_SHARED_
namespace relattn_test {
// What a target's int_dot-inl.h table (kIntDot) holds.
struct IntDotInfo {
  const char* name;  // nullptr: none usable on this target and CPU
  bool usable;       // some kernel is non-null and kIntDot.usable()
  bool int16;        // IntEncoding::kInt16 (else kBytesOffset128)
  int64_t lanes;     // prefill sub-tile lanes
  bool has_qlanes, has_klanes;
};
}  // namespace relattn_test
#endif  // RELATTN_TESTS_TEST_KERNELS_SHARED_

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tests/test_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#include "hwy/aligned_allocator.h"
#include "hwy/highway.h"
#include "lib/kernels/int_dot-inl.h"
#include "lib/kernels/pack-inl.h"
#include "lib/kernels/pv_qlanes-inl.h"
#include "lib/kernels/pv_rows-inl.h"
#include "lib/kernels/scores_klanes-inl.h"
#include "lib/kernels/scores_qlanes-inl.h"
#include "lib/kernels/scores_rows-inl.h"
#include "lib/kernels/softmax_qlanes-inl.h"
#include "lib/kernels/softmax_rows-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn_test {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
namespace rk = relattn::HWY_NAMESPACE;

// Thin per-target entry points: the kernels themselves are HWY_INLINE.

int64_t CompiledTarget() { return HWY_TARGET; }
int64_t FloatLanes() { return static_cast<int64_t>(hn::Lanes(rk::DF())); }

void CallScoresQLanesF32(const float* q_t, int64_t d, const float* k, int64_t k_stride,
                         int64_t n_keys, float* s) {
  rk::ScoresQLanesF32(q_t, d, relattn::HWY_NAMESPACE::RowsF32{k, k_stride}, n_keys, s);
}
void CallScaleQLanesI8(const float* q_mul, const float* k_scale, int64_t n_keys, float* s) {
  rk::ScaleQLanesI8(q_mul, k_scale, n_keys, s);
}
void CallScaleQLanesI32(const float* q_mul, const float* k_scale, int64_t n_keys, float* s) {
  rk::ScaleQLanesI32(q_mul, k_scale, n_keys, s);
}
void CallPVQLanesF32(const float* p, int64_t n_keys, const float* v, int64_t v_stride, int64_t dv,
                     float* o_t) {
  rk::PVQLanesF32(p, n_keys, rk::RowsF32{v, v_stride}, dv, o_t);
}
void CallSoftmaxQLanes(float* s, int64_t n_keys, uint64_t bad_keys, float* max, float* sum,
                       float* poison, float* o_t, int64_t dv) {
  rk::SoftmaxQLanes(s, n_keys, bad_keys, max, sum, poison, o_t, dv);
}
void CallScoresRowsF32(const float* q_rows, int64_t n_rows, int64_t d_pad, const float* k_block,
                       int64_t n_keys, float* s_rows) {
  rk::ScoresRowsF32(q_rows, n_rows, d_pad, k_block, n_keys, s_rows);
}
// keys: key groups of `elem` (0: f32, 1: f16 bits, 2: int8).
void CallScoresKLanes(int elem, const float* q_rows, int64_t n_rows, int64_t d_pad,
                      const void* keys, int32_t d, int64_t n_keys, float* s_rows) {
  if (elem == 0) {
    rk::ScoresKLanes(q_rows, n_rows, d_pad, static_cast<const float*>(keys), d, n_keys, s_rows);
  } else if (elem == 1) {
    rk::ScoresKLanes(q_rows, n_rows, d_pad, static_cast<const hwy::float16_t*>(keys), d, n_keys,
                     s_rows);
  } else {
    rk::ScoresKLanes(q_rows, n_rows, d_pad, static_cast<const int8_t*>(keys), d, n_keys, s_rows);
  }
}
void CallScaleRowsI8(int64_t n_rows, const float* q_mul, const float* k_scale, int64_t n_keys,
                     float* s_rows) {
  rk::ScaleRowsI8(n_rows, q_mul, k_scale, n_keys, s_rows);
}
void CallPVRowsF32(const float* p, const float* v_block, int64_t n_keys, int64_t rows,
                   int64_t dv_pad, float* o) {
  rk::PVRowsF32(p, v_block, n_keys, rows, dv_pad, o);
}
// k: f32 rows (f16 = false) or f16 bits, k_stride apart.
void CallScoresRowsInPlace(bool f16, const float* q_rows, int64_t n_rows, int64_t d_pad,
                           const void* k, int64_t k_stride, int64_t n_keys, int32_t d,
                           float* s_rows) {
  if (f16) {
    rk::ScoresRowsInPlace(q_rows, n_rows, d_pad, static_cast<const hwy::float16_t*>(k), k_stride,
                          n_keys, d, s_rows);
  } else {
    rk::ScoresRowsInPlace(q_rows, n_rows, d_pad, static_cast<const float*>(k), k_stride, n_keys, d,
                          s_rows);
  }
}
// v: f32 rows (f16 = false) or f16 bits.
void CallPVRowsInPlace(bool f16, const float* p, const void* v, int64_t v_stride, int64_t n_keys,
                       int64_t n_rows, int32_t dv, int64_t dv_pad, float* o) {
  if (f16) {
    rk::PVRowsInPlace(p, static_cast<const hwy::float16_t*>(v), v_stride, n_keys, n_rows, dv,
                      dv_pad, o);
  } else {
    rk::PVRowsInPlace(p, static_cast<const float*>(v), v_stride, n_keys, n_rows, dv, dv_pad, o);
  }
}
void CallPoisonRow(float* s, int64_t n_keys, uint64_t bad_keys, float* poison) {
  rk::PoisonRow(s, n_keys, bad_keys, poison);
}
bool CallSoftmaxRow(float* s, float* max, float* sum, float* o_row, int64_t dv_pad) {
  return rk::SoftmaxRow(s, max, sum, o_row, dv_pad);
}
void CallConvertRow(const void* data, relattn_dtype dtype, int64_t offset, int64_t n, float mul,
                    float* dst) {
  rk::ConvertRow(data, dtype, offset, n, mul, dst);
}
// out[i] = PromoteF16(bits + i) a vector at a time; n: a multiple of the lanes.
void CallPromoteF16(const uint16_t* bits, int64_t n, float* out) {
  const rk::DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const hwy::float16_t* src = reinterpret_cast<const hwy::float16_t*>(bits);
  for (int64_t i = 0; i + lanes <= n; i += lanes) hn::StoreU(rk::PromoteF16(src + i), df, out + i);
}

// The kernels as the pipelines select them: IntDotPrefill (int8 Q and K in
// tensors) and IntDotDecode (int8 KV-cache keys) return the table when that
// kernel is non-null and kIntDot.usable(), else null.
const rk::IntDotKernels* PrefillKernels() {
  relattn::Plan plan{};
  plan.int8_dot = true;
  plan.cache.on = false;
  return rk::IntDotPrefill(plan);
}
const rk::IntDotKernels* DecodeKernels() {
  relattn::Plan plan{};
  plan.cache.on = true;
  plan.k.dtype = RELATTN_I8;
  return rk::IntDotDecode(plan);
}

IntDotInfo IntDotOf() {
  const rk::IntDotKernels* prefill = PrefillKernels();
  const rk::IntDotKernels* decode = DecodeKernels();
  const rk::IntDotKernels* any = prefill ? prefill : decode;
  return {any ? any->name : nullptr,
          any != nullptr,
          rk::TargetIntEncoding() == rk::IntEncoding::kInt16,
          rk::kIntDot.lanes,
          prefill != nullptr,
          decode != nullptr};
}

// Prefill integer kernel: q_t [d][w] int8 values held in f32 (w = the
// table's lanes), keys int8 rows at k + j * k_stride; packed with the
// table's packers (PackQueriesInt, PackKeysInt: a Plan with the fields they
// read), s [n_keys][w] int32. False if the target has no usable kernel.
bool CallIntQLanes(const float* q_t, int64_t w, int32_t d, const int8_t* k, int64_t k_stride,
                   int64_t n_keys, uint64_t bad, int32_t* s) {
  const rk::IntDotKernels* kernels = PrefillKernels();
  if (!kernels) return false;
  relattn::Plan plan{};
  plan.d = d;
  plan.d4 = relattn::RoundUp(d, 4);
  plan.k.data = k;
  plan.k.dtype = RELATTN_I8;
  plan.k.token_stride = k_stride;
  plan.k.head_stride = 0;
  // 2 bytes per channel holds either encoding.
  auto q_int = hwy::AllocateAligned<int16_t>(static_cast<size_t>(plan.d4 * w));
  auto k_int = hwy::AllocateAligned<int16_t>(static_cast<size_t>(plan.d4 * n_keys));
  auto k_sum = hwy::AllocateAligned<int32_t>(static_cast<size_t>(n_keys));
  rk::PackQueriesInt(plan, q_t, w, q_int.get());
  rk::PackKeysInt(plan, 0, 0, n_keys, bad, k_int.get(), k_sum.get());
  kernels->scores_qlanes(q_int.get(), plan.d4, k_int.get(), k_sum.get(), n_keys, s);
  return true;
}

// Decode integer kernel: q [n_rows][d] int8, keys int8 key groups; q packed
// with FillQueryRowsInt / PackQueryRowInt (rows rounded up to 4); s
// [rows4][s_stride] int32. False if the target has no usable kernel.
bool CallIntKLanes(const int8_t* q, int64_t n_rows, const int8_t* keys, int32_t d, int64_t n_keys,
                   int32_t* s, int64_t s_stride) {
  const rk::IntDotKernels* kernels = DecodeKernels();
  if (!kernels) return false;
  const int64_t d4 = relattn::RoundUp(d, 4), rows4 = relattn::RoundUp(n_rows, 4);
  auto q_int = hwy::AllocateAligned<int16_t>(static_cast<size_t>(rows4 * d4));
  rk::FillQueryRowsInt(rows4, d4, q_int.get());
  for (int64_t r = 0; r < n_rows; ++r) rk::PackQueryRowInt(q + r * d, r, d, d4, q_int.get());
  kernels->scores_klanes(q_int.get(), n_rows, keys, d, n_keys, s, s_stride);
  return true;
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn_test
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "lib/common/f16.h"
#include "lib/driver/plan.h"
#include "tests/attention_case.h"

namespace relattn_test {
HWY_EXPORT(CompiledTarget);
HWY_EXPORT(FloatLanes);
HWY_EXPORT(CallScoresQLanesF32);
HWY_EXPORT(CallScaleQLanesI8);
HWY_EXPORT(CallScaleQLanesI32);
HWY_EXPORT(CallPVQLanesF32);
HWY_EXPORT(CallSoftmaxQLanes);
HWY_EXPORT(CallScoresRowsF32);
HWY_EXPORT(CallScoresRowsInPlace);
HWY_EXPORT(CallScoresKLanes);
HWY_EXPORT(CallScaleRowsI8);
HWY_EXPORT(CallPVRowsF32);
HWY_EXPORT(CallPVRowsInPlace);
HWY_EXPORT(CallPoisonRow);
HWY_EXPORT(CallSoftmaxRow);
HWY_EXPORT(CallConvertRow);
HWY_EXPORT(CallPromoteF16);
HWY_EXPORT(IntDotOf);
HWY_EXPORT(CallIntQLanes);
HWY_EXPORT(CallIntKLanes);

namespace {

using relattn::kBlockKeys;
using relattn::kKeyGroup;
using relattn::kMaxSubTile;
using relattn::RoundUp;

constexpr int64_t kKeyCounts[] = {1, 3, 4, 5, 63, 64};
constexpr int32_t kDims[] = {1, 3, 15, 16, 17, 64, 80, 128, 256};
constexpr int64_t kRowCounts[] = {3, 9};
constexpr double kRel = 1e-5, kAbs = 1e-30;
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
// Written where a kernel must not write (rows past its output).
constexpr float kSentinel = -7777.0f;

template <typename T>
using Aligned = hwy::AlignedFreeUniquePtr<T[]>;

// n aligned elements, all `fill`.
template <typename T>
Aligned<T> Alloc(int64_t n, T fill) {
  Aligned<T> p = hwy::AllocateAligned<T>(static_cast<size_t>(std::max<int64_t>(n, 1)));
  std::fill(p.get(), p.get() + n, fill);
  return p;
}

int64_t DPad(int64_t d) { return RoundUp(d, relattn::kMaxLanes); }

// The sub-tile width W = 2 * Lanes(DF) of the current target, after checking
// that dispatch reaches that target.
int64_t SubTileLanes(int64_t target) {
  const int64_t ran = HWY_DYNAMIC_DISPATCH(CompiledTarget)();
  INFO("asked for ", TargetNameOf(target), ", ran ", TargetNameOf(ran));
  REQUIRE(ran == target);
  const int64_t w = 2 * HWY_DYNAMIC_DISPATCH(FloatLanes)();
  REQUIRE(w >= 2);
  REQUIRE(w <= kMaxSubTile);
  return w;
}

std::vector<float> Uniform(std::mt19937_64& rng, int64_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = u(rng);
  return x;
}

// int8 values, every 7th -128 (no positive counterpart; saturates pmaddubsw).
std::vector<int8_t> Int8s(std::mt19937_64& rng, int64_t n) {
  std::uniform_int_distribution<int> u(-127, 127);
  std::vector<int8_t> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[i] = i % 7 == 6 ? int8_t{-128} : static_cast<int8_t>(u(rng));
  return x;
}

uint32_t Bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof(b));
  return b;
}

// A key group layout ([group][d][kKeyGroup], kv_cache.h) of logical keys
// k[j][c], j < n_keys; the keys of the last group past n_keys are `pad`.
template <typename T>
std::vector<T> Grouped(const std::vector<T>& k, int64_t n_keys, int32_t d, T pad) {
  std::vector<T> g(static_cast<size_t>(RoundUp(n_keys, kKeyGroup) * d), pad);
  for (int64_t j = 0; j < n_keys; ++j) {
    for (int32_t c = 0; c < d; ++c) {
      g[j / kKeyGroup * d * kKeyGroup + c * kKeyGroup + j % kKeyGroup] = k[j * d + c];
    }
  }
  return g;
}

// Adds name to names unless there.
void AddName(std::vector<std::string>* names, const std::string& name) {
  if (std::find(names->begin(), names->end(), name) == names->end()) names->push_back(name);
}

std::string Join(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& name : names) s += (s.empty() ? "" : " ") + name;
  return s;
}

// The worst relative error of one kernel over every size and target.
class KernelReport {
 public:
  explicit KernelReport(const char* kernel) : kernel_(kernel) {}
  void Note(double rel, const std::string& where, int64_t values) {
    values_ += values;
    if (rel > worst_ || where_.empty()) worst_ = rel, where_ = where;
  }
  void NoteTarget(int64_t target) { AddName(&targets_, TargetNameOf(target)); }
  // exact: the kernel's values were compared bit for bit (Tally::Same).
  void Print(bool exact = false) const {
    if (values_ == 0) {
      MESSAGE(std::string(kernel_), ": not run on any target");
      return;
    }
    if (exact) {
      MESSAGE(std::string(kernel_), ": exact (worst relative error 0) over ", values_,
              " values on [", Join(targets_), "]");
      return;
    }
    char worst[32];
    std::snprintf(worst, sizeof(worst), "%.3g", worst_);
    MESSAGE(std::string(kernel_), ": worst relative error ", std::string(worst), " over ", values_,
            " values on [", Join(targets_), "] (", where_, ")");
  }

 private:
  const char* kernel_;
  double worst_ = 0.0;
  std::string where_;
  std::vector<std::string> targets_;
  int64_t values_ = 0;
};

// The comparisons of one kernel call: counts the values out of bound and
// keeps the first, then CHECKs that there were none (one assertion per call).
class Tally {
 public:
  Tally(KernelReport* report, int64_t target, std::string context)
      : report_(report), target_(target), context_(std::move(context)) {}

  // got within kRel * magnitude + kAbs of want; magnitude: sum of |terms|.
  void Near(double got, double want, double magnitude, const char* what, int64_t at) {
    ++n_;
    const double err = std::fabs(got - want);
    const double rel = std::isnan(err) ? HUGE_VAL : err / std::max(magnitude, kAbs);
    worst_ = std::max(worst_, rel);
    if (!(err <= kRel * magnitude + kAbs)) Bad(got, want, what, at);
  }
  // Bit for bit (both NaN counts as equal).
  void Same(float got, float want, const char* what, int64_t at) {
    ++n_;
    if (!(Bits(got) == Bits(want) || (std::isnan(got) && std::isnan(want)))) {
      Bad(got, want, what, at);
    }
  }
  void SameInt(int64_t got, int64_t want, const char* what, int64_t at) {
    ++n_;
    if (got != want) Bad(static_cast<double>(got), static_cast<double>(want), what, at);
  }
  void Finish() {
    INFO(TargetNameOf(target_), ", ", context_, ": ", bad_, " of ", n_, " values wrong; first ",
         first_);
    CHECK((n_ > 0 && bad_ == 0));
    report_->Note(worst_, TargetNameOf(target_) + ", " + context_, n_);
    report_->NoteTarget(target_);
  }

 private:
  void Bad(double got, double want, const char* what, int64_t at) {
    if (bad_++ == 0) {
      char buf[160];
      std::snprintf(buf, sizeof(buf), "%s[%lld]: got %.9g, want %.9g", what,
                    static_cast<long long>(at), got, want);
      first_ = buf;
    }
  }
  KernelReport* report_;
  int64_t target_;
  std::string context_, first_;
  int64_t n_ = 0, bad_ = 0;
  double worst_ = 0.0;
};

// "n_keys 5, d 17, rows 3" (d, rows: where not 0).
std::string Sizes(int64_t n_keys, int64_t d, int64_t rows = 0) {
  std::string s = "n_keys " + std::to_string(n_keys);
  if (d) s += ", d " + std::to_string(d);
  if (rows) s += ", rows " + std::to_string(rows);
  return s;
}

// ---------------------------------------------------------------------------
// Queries in lanes (prefill sub-tiles of W = 2 * Lanes(DF) queries).

TEST_CASE("kernels: ScoresQLanesF32 = K . Q^T per lane, every target") {
  KernelReport report("ScoresQLanesF32");
  std::mt19937_64 rng(11);
  for (int32_t d : kDims) {
    for (int64_t n_keys : kKeyCounts) {
      const int64_t k_stride = d + 3;                              // strided, unaligned rows
      const std::vector<float> q = Uniform(rng, kMaxSubTile * d);  // q[lane][e]
      const std::vector<float> k = Uniform(rng, n_keys * k_stride);
      std::vector<double> want(n_keys * kMaxSubTile), mag(n_keys * kMaxSubTile);
      for (int64_t j = 0; j < n_keys; ++j) {
        for (int64_t lane = 0; lane < kMaxSubTile; ++lane) {
          double acc = 0, abs = 0;
          for (int32_t e = 0; e < d; ++e) {
            const double t = double(k[j * k_stride + e]) * q[lane * d + e];
            acc += t, abs += std::fabs(t);
          }
          want[j * kMaxSubTile + lane] = acc, mag[j * kMaxSubTile + lane] = abs;
        }
      }
      ForEachTarget([&](int64_t target) {
        const int64_t w = SubTileLanes(target);
        Aligned<float> q_t = Alloc<float>(d * w, 0.0f);
        for (int32_t e = 0; e < d; ++e) {
          for (int64_t lane = 0; lane < w; ++lane) q_t[e * w + lane] = q[lane * d + e];
        }
        Aligned<float> s = Alloc<float>((n_keys + 1) * w, kNaN);
        std::fill(s.get() + n_keys * w, s.get() + (n_keys + 1) * w, kSentinel);
        HWY_DYNAMIC_DISPATCH(CallScoresQLanesF32)
        (q_t.get(), d, k.data(), k_stride, n_keys, s.get());
        Tally t(&report, target, Sizes(n_keys, d));
        for (int64_t j = 0; j < n_keys; ++j) {
          for (int64_t lane = 0; lane < w; ++lane) {
            t.Near(s[j * w + lane], want[j * kMaxSubTile + lane], mag[j * kMaxSubTile + lane], "s",
                   j * w + lane);
          }
        }
        for (int64_t lane = 0; lane < w; ++lane) {
          t.Same(s[n_keys * w + lane], kSentinel, "s past n_keys", n_keys * w + lane);
        }
        t.Finish();
      });
    }
  }
  report.Print();
}

// Integer products (exact in f32 and int32: |x| <= 256 * 128 * 128) times
// q_mul[lane] * k_scale[j]: both kernels apply the same f32 operations,
// x * (q_mul * k_scale), so the results are exact against that.
TEST_CASE("kernels: ScaleQLanesI8 and ScaleQLanesI32, bit-exact, every target") {
  KernelReport report_i8("ScaleQLanesI8"), report_i32("ScaleQLanesI32");
  std::mt19937_64 rng(12);
  std::uniform_int_distribution<int32_t> ints(-256 * 128 * 128, 256 * 128 * 128);
  for (int64_t n_keys : kKeyCounts) {
    std::vector<int32_t> x(n_keys * kMaxSubTile);
    for (size_t i = 0; i < x.size(); ++i) x[i] = i % 11 == 5 ? 0 : ints(rng);
    x[0] = -256 * 128 * 128;
    std::vector<float> q_mul = Uniform(rng, kMaxSubTile, 1e-3f, 0.2f);
    q_mul[1] = 0.0f;  // a non-finite query scale
    std::vector<float> k_scale = Uniform(rng, n_keys, 1e-3f, 0.05f);
    if (n_keys > 2) k_scale[2] = 0.0f;  // a non-finite key row
    ForEachTarget([&](int64_t target) {
      const int64_t w = SubTileLanes(target);
      Aligned<float> m = Alloc<float>(w, 0.0f);
      std::copy(q_mul.begin(), q_mul.begin() + w, m.get());
      Aligned<float> s8 = Alloc<float>((n_keys + 1) * w, kSentinel);
      Aligned<float> s32 = Alloc<float>((n_keys + 1) * w, kSentinel);
      for (int64_t j = 0; j < n_keys; ++j) {
        for (int64_t lane = 0; lane < w; ++lane) {
          const int32_t v = x[j * kMaxSubTile + lane];
          s8[j * w + lane] = static_cast<float>(v);
          std::memcpy(&s32[j * w + lane], &v, sizeof(v));
        }
      }
      HWY_DYNAMIC_DISPATCH(CallScaleQLanesI8)(m.get(), k_scale.data(), n_keys, s8.get());
      HWY_DYNAMIC_DISPATCH(CallScaleQLanesI32)(m.get(), k_scale.data(), n_keys, s32.get());
      Tally t8(&report_i8, target, Sizes(n_keys, 0)), t32(&report_i32, target, Sizes(n_keys, 0));
      for (int64_t j = 0; j < n_keys; ++j) {
        for (int64_t lane = 0; lane < w; ++lane) {
          const float mul = q_mul[lane] * k_scale[j];
          const float want = static_cast<float>(x[j * kMaxSubTile + lane]) * mul;
          t8.Same(s8[j * w + lane], want, "s", j * w + lane);
          t32.Same(s32[j * w + lane], want, "s", j * w + lane);
        }
      }
      for (int64_t lane = 0; lane < w; ++lane) {
        t8.Same(s8[n_keys * w + lane], kSentinel, "s past n_keys", n_keys * w + lane);
        t32.Same(s32[n_keys * w + lane], kSentinel, "s past n_keys", n_keys * w + lane);
      }
      t8.Finish();
      t32.Finish();
    });
  }
  report_i8.Print(/*exact=*/true);
  report_i32.Print(/*exact=*/true);
}

TEST_CASE("kernels: PVQLanesF32 o_t += V^T . P per lane, every target") {
  KernelReport report("PVQLanesF32");
  std::mt19937_64 rng(13);
  for (int32_t dv : kDims) {
    for (int64_t n_keys : kKeyCounts) {
      const int64_t v_stride = dv + 2;
      const std::vector<float> p = Uniform(rng, n_keys * kMaxSubTile, 0.0f, 1.0f);  // p[j][lane]
      const std::vector<float> v = Uniform(rng, n_keys * v_stride);
      const std::vector<float> o0 = Uniform(rng, dv * kMaxSubTile);  // o0[e][lane]
      std::vector<double> want(dv * kMaxSubTile), mag(dv * kMaxSubTile);
      for (int32_t e = 0; e < dv; ++e) {
        for (int64_t lane = 0; lane < kMaxSubTile; ++lane) {
          double acc = o0[e * kMaxSubTile + lane], abs = std::fabs(acc);
          for (int64_t j = 0; j < n_keys; ++j) {
            const double t = double(v[j * v_stride + e]) * p[j * kMaxSubTile + lane];
            acc += t, abs += std::fabs(t);
          }
          want[e * kMaxSubTile + lane] = acc, mag[e * kMaxSubTile + lane] = abs;
        }
      }
      ForEachTarget([&](int64_t target) {
        const int64_t w = SubTileLanes(target);
        // Rows of p past n_keys are NaN: the kernel must not read them.
        Aligned<float> pt = Alloc<float>(kBlockKeys * w, kNaN);
        for (int64_t j = 0; j < n_keys; ++j) {
          for (int64_t lane = 0; lane < w; ++lane) pt[j * w + lane] = p[j * kMaxSubTile + lane];
        }
        Aligned<float> o_t = Alloc<float>((dv + 1) * w, kSentinel);
        for (int32_t e = 0; e < dv; ++e) {
          for (int64_t lane = 0; lane < w; ++lane) o_t[e * w + lane] = o0[e * kMaxSubTile + lane];
        }
        HWY_DYNAMIC_DISPATCH(CallPVQLanesF32)(pt.get(), n_keys, v.data(), v_stride, dv, o_t.get());
        Tally t(&report, target, Sizes(n_keys, dv));
        for (int32_t e = 0; e < dv; ++e) {
          for (int64_t lane = 0; lane < w; ++lane) {
            t.Near(o_t[e * w + lane], want[e * kMaxSubTile + lane], mag[e * kMaxSubTile + lane],
                   "o_t", e * w + lane);
          }
        }
        for (int64_t lane = 0; lane < w; ++lane) {
          t.Same(o_t[dv * w + lane], kSentinel, "o_t past dv", dv * w + lane);
        }
        t.Finish();
      });
    }
  }
  report.Print();
}

// One lane's online-softmax state.
struct LaneState {
  float max, sum, poison;
};

// The lanes' roles in a SoftmaxQLanes call (lane + rotation, modulo the
// count, so that targets with 2 lanes meet every role over the cases).
enum Role {
  kVisibleWithState,  // random scores (some hidden, some underflowing); a prior state
  kVisibleFresh,      // the same, from the empty state
  kHiddenFresh,       // every score hidden: stays max -inf, sum 0, o 0
  kHiddenWithState,   // every score hidden: the state unchanged
  kNaNScore,          // one NaN score: poisoned, that score hidden
  kInfScore,          // one +inf score, from the empty state: poisoned
  kAlreadyPoisoned,   // poison 1 before: stays 1
  kBelowMax,          // a prior max above every score: the max does not grow
  kRoleCount
};

// Softmax bounds: p = 2^(s - m) against itself (the kernel rounds s - m to
// f32 before Exp2NonPositive's 2 ulp: about |s - m| * 2^-24 * ln 2 < 1.3e-6
// relative for |s - m| <= 30, and an absolute kAbs below 2^-126, where it
// underflows); sum against itself (positive terms); o = o * 2^(m_old - m) against
// |o|. max, poison and the empty state: exact.
//
// The scalar online softmax of one lane over scores s[j] (the rule of
// softmax_qlanes-inl.h): poisoned entries hidden; p[j] = 2^(s - m') with m'
// the new max (0 while it is -inf); sum and o rescaled by 2^(m - m').
struct LaneExpect {
  std::vector<double> p;
  float max, poison;
  double alpha, sum_new;  // sum_new = sum * alpha + sum_j p[j]
};

LaneExpect ExpectLane(const std::vector<float>& s, uint64_t bad_keys, const LaneState& in) {
  LaneExpect x;
  x.poison = in.poison;
  std::vector<float> vis(s);
  float new_max = in.max;
  for (size_t j = 0; j < s.size(); ++j) {
    const bool bad_key = (bad_keys >> j) & 1;
    if (std::isnan(s[j]) || s[j] == kInf || (bad_key && s[j] != -kInf)) {
      x.poison = 1.0f;
      vis[j] = -kInf;
    }
    new_max = std::max(new_max, vis[j]);
  }
  const double ref = new_max == -kInf ? 0.0 : new_max;
  x.max = new_max;
  x.p.resize(s.size());
  double sum = 0;
  for (size_t j = 0; j < s.size(); ++j) {
    x.p[j] = vis[j] == -kInf ? 0.0 : std::exp2(double(vis[j]) - ref);
    sum += x.p[j];
  }
  x.alpha = in.max == -kInf ? 0.0 : std::exp2(double(in.max) - ref);
  x.sum_new = double(in.sum) * x.alpha + sum;
  return x;
}

TEST_CASE("kernels: SoftmaxQLanes vs a scalar online softmax, every target") {
  KernelReport report("SoftmaxQLanes");
  std::mt19937_64 rng(14);
  std::uniform_real_distribution<float> score(-20.0f, 4.0f), prior_max(-2.0f, 2.0f);
  std::uniform_real_distribution<float> prior_sum(1.0f, 5.0f), unit(0.0f, 1.0f);
  int rotation = 0;
  for (int32_t dv : kDims) {
    for (int64_t n_keys : kKeyCounts) {
      // Case 0: every role; 1: also bad keys (one in the middle, the last, and
      // one past n_keys, which must not count); 2: no lane's max grows (the
      // kernel's path that skips the rescale).
      for (int c = 0; c < 3; ++c, ++rotation) {
        uint64_t bad_keys = 0;
        if (c == 1) {
          bad_keys = (uint64_t{1} << (n_keys / 2)) | (uint64_t{1} << (n_keys - 1));
          if (n_keys < 64) bad_keys |= uint64_t{1} << n_keys;
        }
        std::vector<std::vector<float>> s(kMaxSubTile);  // s[lane][j]
        std::vector<LaneState> in(kMaxSubTile);
        std::vector<std::vector<float>> o0(kMaxSubTile);  // o0[lane][e]
        for (int64_t lane = 0; lane < kMaxSubTile; ++lane) {
          static constexpr Role kNoGrowth[] = {kHiddenFresh, kHiddenWithState, kBelowMax};
          const int64_t turn = lane + rotation;
          const Role role = c == 2 ? kNoGrowth[turn % 3] : Role(turn % kRoleCount);
          std::vector<float>& sl = s[lane];
          sl.resize(n_keys);
          for (float& x : sl) {
            const float u = unit(rng);
            x = u < 0.25f ? -kInf : u < 0.3f ? -150.0f : score(rng);
          }
          const bool fresh = role == kVisibleFresh || role == kHiddenFresh || role == kInfScore;
          in[lane] = fresh ? LaneState{-kInf, 0.0f, 0.0f}
                           : LaneState{prior_max(rng), prior_sum(rng), 0.0f};
          if (role == kHiddenFresh || role == kHiddenWithState)
            std::fill(sl.begin(), sl.end(), -kInf);
          if (role == kNaNScore) sl[(lane * 7 + rotation) % n_keys] = kNaN;
          if (role == kInfScore) sl[(lane * 5 + rotation) % n_keys] = kInf;
          if (role == kAlreadyPoisoned) in[lane].poison = 1.0f;
          if (role == kBelowMax) in[lane].max = 10.0f;
          o0[lane] = fresh ? std::vector<float>(dv, 0.0f) : Uniform(rng, dv, -5.0f, 5.0f);
        }
        std::vector<LaneExpect> want(kMaxSubTile);
        for (int64_t lane = 0; lane < kMaxSubTile; ++lane) {
          want[lane] = ExpectLane(s[lane], bad_keys, in[lane]);
        }
        ForEachTarget([&](int64_t target) {
          const int64_t w = SubTileLanes(target);
          Aligned<float> st = Alloc<float>((n_keys + 1) * w, kSentinel);
          Aligned<float> max = Alloc<float>(w, 0.0f), sum = Alloc<float>(w, 0.0f);
          Aligned<float> poison = Alloc<float>(w, 0.0f);
          Aligned<float> o_t = Alloc<float>((dv + 1) * w, kSentinel);
          for (int64_t lane = 0; lane < w; ++lane) {
            for (int64_t j = 0; j < n_keys; ++j) st[j * w + lane] = s[lane][j];
            max[lane] = in[lane].max, sum[lane] = in[lane].sum, poison[lane] = in[lane].poison;
            for (int32_t e = 0; e < dv; ++e) o_t[e * w + lane] = o0[lane][e];
          }
          HWY_DYNAMIC_DISPATCH(CallSoftmaxQLanes)
          (st.get(), n_keys, bad_keys, max.get(), sum.get(), poison.get(), o_t.get(), dv);
          Tally t(&report, target,
                  Sizes(n_keys, dv) + ", case " + std::to_string(c) + " (rotation " +
                      std::to_string(rotation) + ")");
          for (int64_t lane = 0; lane < w; ++lane) {
            const LaneExpect& x = want[lane];
            t.Same(max[lane], x.max, "max", lane);
            t.Same(poison[lane], x.poison, "poison", lane);
            if (x.max == -kInf) {  // no visible key yet: the empty state, exactly
              t.Same(sum[lane], 0.0f, "sum (empty)", lane);
            } else {
              t.Near(sum[lane], x.sum_new, x.sum_new, "sum", lane);
            }
            for (int64_t j = 0; j < n_keys; ++j) {
              if (x.p[j] == 0.0) {
                t.Same(st[j * w + lane], 0.0f, "p (hidden)", j * w + lane);
              } else {
                t.Near(st[j * w + lane], x.p[j], x.p[j], "p", j * w + lane);
              }
            }
            for (int32_t e = 0; e < dv; ++e) {
              const double want_o = double(o0[lane][e]) * x.alpha;
              t.Near(o_t[e * w + lane], want_o, std::fabs(want_o), "o_t", e * w + lane);
            }
          }
          for (int64_t lane = 0; lane < w; ++lane) {
            t.Same(st[n_keys * w + lane], kSentinel, "s past n_keys", n_keys * w + lane);
            t.Same(o_t[dv * w + lane], kSentinel, "o_t past dv", dv * w + lane);
          }
          t.Finish();
        });
      }
    }
  }
  report.Print();
}

// ---------------------------------------------------------------------------
// Query rows (decode): rows of d_pad, scores [rows][kBlockKeys].

TEST_CASE("kernels: ScoresRowsF32 = Q . K^T, keys as rows, every target") {
  KernelReport report("ScoresRowsF32");
  std::mt19937_64 rng(15);
  for (int32_t d : kDims) {
    const int64_t d_pad = DPad(d);
    for (int64_t n_keys : kKeyCounts) {
      for (int64_t rows : kRowCounts) {
        Aligned<float> q = Alloc<float>(rows * d_pad, 0.0f);
        // Keys past n_keys are NaN: the kernel must not read them.
        Aligned<float> k = Alloc<float>(kBlockKeys * d_pad, kNaN);
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        for (int64_t r = 0; r < rows; ++r) {
          for (int32_t e = 0; e < d; ++e) q[r * d_pad + e] = u(rng);
        }
        for (int64_t j = 0; j < n_keys; ++j) {
          for (int64_t e = 0; e < d_pad; ++e) k[j * d_pad + e] = e < d ? u(rng) : 0.0f;
        }
        std::vector<double> want(rows * n_keys), mag(rows * n_keys);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t j = 0; j < n_keys; ++j) {
            double acc = 0, abs = 0;
            for (int32_t e = 0; e < d; ++e) {
              const double t = double(q[r * d_pad + e]) * k[j * d_pad + e];
              acc += t, abs += std::fabs(t);
            }
            want[r * n_keys + j] = acc, mag[r * n_keys + j] = abs;
          }
        }
        ForEachTarget([&](int64_t target) {
          SubTileLanes(target);
          Aligned<float> s = Alloc<float>((rows + 1) * kBlockKeys, kNaN);
          std::fill(s.get() + rows * kBlockKeys, s.get() + (rows + 1) * kBlockKeys, kSentinel);
          HWY_DYNAMIC_DISPATCH(CallScoresRowsF32)(q.get(), rows, d_pad, k.get(), n_keys, s.get());
          Tally t(&report, target, Sizes(n_keys, d, rows));
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t j = 0; j < n_keys; ++j) {
              t.Near(s[r * kBlockKeys + j], want[r * n_keys + j], mag[r * n_keys + j], "s",
                     r * kBlockKeys + j);
            }
          }
          for (int64_t j = 0; j < kBlockKeys; ++j) {
            t.Same(s[rows * kBlockKeys + j], kSentinel, "s past rows", rows * kBlockKeys + j);
          }
          t.Finish();
        });
      }
    }
  }
  report.Print();
}

// Keys read in place (rows k_stride = d + 5 apart, NaN between them and past
// n_keys: never read), f32 and f16: within the bound of the scalar sum, and
// equal (==) to ScoresRowsF32 over the same keys converted into a zero-padded
// block on the same target (one FMA chain per score in the same order), so
// f16 and f32 keys holding the same values give the same scores.
TEST_CASE("kernels: ScoresRowsInPlace<float, f16> = Q . K^T, keys read in place, every target") {
  KernelReport reports[2] = {KernelReport("ScoresRowsInPlace<float>"),
                             KernelReport("ScoresRowsInPlace<float16_t>")};
  std::mt19937_64 rng(16);
  for (int f16 = 0; f16 < 2; ++f16) {
    for (int32_t d : kDims) {
      const int64_t d_pad = DPad(d), k_stride = d + 5;
      for (int64_t n_keys : kKeyCounts) {
        for (int64_t rows : kRowCounts) {
          Aligned<float> q = Alloc<float>(rows * d_pad, 0.0f);
          std::uniform_real_distribution<float> u(-1.0f, 1.0f);
          for (int64_t r = 0; r < rows; ++r) {
            for (int32_t e = 0; e < d; ++e) q[r * d_pad + e] = u(rng);
          }
          std::vector<float> k32((kBlockKeys + 1) * k_stride, kNaN);
          std::vector<uint16_t> k16((kBlockKeys + 1) * k_stride, uint16_t{0x7e00});
          Aligned<float> block = Alloc<float>(kBlockKeys * d_pad, kNaN);
          for (int64_t j = 0; j < n_keys; ++j) {
            for (int64_t e = 0; e < d_pad; ++e) block[j * d_pad + e] = 0.0f;
            for (int32_t e = 0; e < d; ++e) {
              const float x = u(rng);
              k16[j * k_stride + e] = relattn::F32ToF16(x);
              k32[j * k_stride + e] = f16 ? relattn::F16ToF32(k16[j * k_stride + e]) : x;
              block[j * d_pad + e] = k32[j * k_stride + e];
            }
          }
          std::vector<double> want(rows * n_keys), mag(rows * n_keys);
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t j = 0; j < n_keys; ++j) {
              double acc = 0, abs = 0;
              for (int32_t e = 0; e < d; ++e) {
                const double t = double(q[r * d_pad + e]) * k32[j * k_stride + e];
                acc += t, abs += std::fabs(t);
              }
              want[r * n_keys + j] = acc, mag[r * n_keys + j] = abs;
            }
          }
          ForEachTarget([&](int64_t target) {
            SubTileLanes(target);
            Aligned<float> s = Alloc<float>((rows + 1) * kBlockKeys, kNaN);
            Aligned<float> s_block = Alloc<float>(rows * kBlockKeys, kNaN);
            std::fill(s.get() + rows * kBlockKeys, s.get() + (rows + 1) * kBlockKeys, kSentinel);
            const void* k = f16 ? static_cast<const void*>(k16.data()) : k32.data();
            HWY_DYNAMIC_DISPATCH(CallScoresRowsInPlace)
            (f16 != 0, q.get(), rows, d_pad, k, k_stride, n_keys, d, s.get());
            HWY_DYNAMIC_DISPATCH(CallScoresRowsF32)
            (q.get(), rows, d_pad, block.get(), n_keys, s_block.get());
            Tally t(&reports[f16], target, Sizes(n_keys, d, rows));
            for (int64_t r = 0; r < rows; ++r) {
              for (int64_t j = 0; j < n_keys; ++j) {
                const int64_t i = r * kBlockKeys + j;
                t.Near(s[i], want[r * n_keys + j], mag[r * n_keys + j], "s", i);
                if (!(s[i] == s_block[i])) t.Same(s[i], s_block[i], "s = ScoresRowsF32's", i);
              }
            }
            for (int64_t j = 0; j < kBlockKeys; ++j) {
              t.Same(s[rows * kBlockKeys + j], kSentinel, "s past rows", rows * kBlockKeys + j);
            }
            t.Finish();
          });
        }
      }
    }
  }
  reports[0].Print();
  reports[1].Print();
}

// Float and f16 keys: within the bound. Int8 keys with integer queries (the
// portable int8 path, ScoresKLanesI8 without a kernel): exact.
TEST_CASE("kernels: ScoresKLanes<float, f16, int8> over key groups, every target") {
  KernelReport reports[3] = {KernelReport("ScoresKLanes<float>"),
                             KernelReport("ScoresKLanes<float16_t>"),
                             KernelReport("ScoresKLanes<int8_t> (integer queries)")};
  std::mt19937_64 rng(16);
  for (int elem = 0; elem < 3; ++elem) {
    for (int32_t d : kDims) {
      const int64_t d_pad = DPad(d);
      for (int64_t n_keys : kKeyCounts) {
        for (int64_t rows : kRowCounts) {
          Aligned<float> q = Alloc<float>(rows * d_pad, 0.0f);
          std::vector<double> kf(n_keys * d);  // the keys' values
          std::vector<float> k32;
          std::vector<uint16_t> k16;
          std::vector<int8_t> k8;
          const void* keys = nullptr;
          if (elem == 2) {
            const std::vector<int8_t> qi = Int8s(rng, rows * d);
            for (int64_t r = 0; r < rows; ++r) {
              for (int32_t e = 0; e < d; ++e) q[r * d_pad + e] = qi[r * d + e];
            }
            const std::vector<int8_t> ki = Int8s(rng, n_keys * d);
            for (size_t i = 0; i < ki.size(); ++i) kf[i] = ki[i];
            k8 = Grouped(ki, n_keys, d, int8_t{99});
            keys = k8.data();
          } else {
            const std::vector<float> qf = Uniform(rng, rows * d);
            for (int64_t r = 0; r < rows; ++r) {
              for (int32_t e = 0; e < d; ++e) q[r * d_pad + e] = qf[r * d + e];
            }
            const std::vector<float> kv = Uniform(rng, n_keys * d);
            if (elem == 0) {
              for (size_t i = 0; i < kv.size(); ++i) kf[i] = kv[i];
              k32 = Grouped(kv, n_keys, d, kNaN);  // keys past n_keys: garbage lanes
              keys = k32.data();
            } else {
              std::vector<uint16_t> kh(kv.size());
              for (size_t i = 0; i < kv.size(); ++i) {
                kh[i] = relattn::F32ToF16(kv[i]);
                kf[i] = relattn::F16ToF32(kh[i]);
              }
              k16 = Grouped(kh, n_keys, d, uint16_t{0x7e00});  // NaN
              keys = k16.data();
            }
          }
          std::vector<double> want(rows * n_keys), mag(rows * n_keys);
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t j = 0; j < n_keys; ++j) {
              double acc = 0, abs = 0;
              for (int32_t e = 0; e < d; ++e) {
                const double t = double(q[r * d_pad + e]) * kf[j * d + e];
                acc += t, abs += std::fabs(t);
              }
              want[r * n_keys + j] = acc, mag[r * n_keys + j] = abs;
            }
          }
          ForEachTarget([&](int64_t target) {
            SubTileLanes(target);
            Aligned<float> s = Alloc<float>((rows + 1) * kBlockKeys, kNaN);
            std::fill(s.get() + rows * kBlockKeys, s.get() + (rows + 1) * kBlockKeys, kSentinel);
            HWY_DYNAMIC_DISPATCH(CallScoresKLanes)
            (elem, q.get(), rows, d_pad, keys, d, n_keys, s.get());
            Tally t(&reports[elem], target, Sizes(n_keys, d, rows));
            for (int64_t r = 0; r < rows; ++r) {
              for (int64_t j = 0; j < n_keys; ++j) {
                const int64_t at = r * kBlockKeys + j;
                if (elem == 2) {
                  t.Same(s[at], static_cast<float>(want[r * n_keys + j]), "s", at);
                } else {
                  t.Near(s[at], want[r * n_keys + j], mag[r * n_keys + j], "s", at);
                }
              }
            }
            for (int64_t j = 0; j < kBlockKeys; ++j) {
              t.Same(s[rows * kBlockKeys + j], kSentinel, "s past rows", rows * kBlockKeys + j);
            }
            t.Finish();
          });
        }
      }
    }
  }
  reports[0].Print();
  reports[1].Print();
  reports[2].Print(/*exact=*/true);
}

// s[r][j] *= q_mul[r] * k_scale[j] (or k_scale[j] alone), the same f32
// operations in the scalar version: exact.
TEST_CASE("kernels: ScaleRowsI8, bit-exact, every target") {
  KernelReport report("ScaleRowsI8");
  std::mt19937_64 rng(17);
  for (int64_t n_keys : kKeyCounts) {
    for (int64_t rows : kRowCounts) {
      for (bool with_q_mul : {false, true}) {
        const std::vector<float> s0 = Uniform(rng, rows * kBlockKeys, -3e4f, 3e4f);
        std::vector<float> q_mul = Uniform(rng, rows, 1e-3f, 0.2f);
        q_mul[1] = 0.0f;
        Aligned<float> k_scale = Alloc<float>(kBlockKeys, 0.0f);
        const std::vector<float> ks = Uniform(rng, kBlockKeys, 1e-3f, 0.05f);
        std::copy(ks.begin(), ks.end(), k_scale.get());
        if (n_keys > 2) k_scale[2] = 0.0f;
        ForEachTarget([&](int64_t target) {
          SubTileLanes(target);
          Aligned<float> s = Alloc<float>((rows + 1) * kBlockKeys, kSentinel);
          std::copy(s0.begin(), s0.end(), s.get());
          HWY_DYNAMIC_DISPATCH(CallScaleRowsI8)
          (rows, with_q_mul ? q_mul.data() : nullptr, k_scale.get(), n_keys, s.get());
          Tally t(&report, target, Sizes(n_keys, 0, rows) + (with_q_mul ? ", q_mul" : ""));
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t j = 0; j < n_keys; ++j) {
              const float scale = with_q_mul ? q_mul[r] * k_scale[j] : k_scale[j];
              t.Same(s[r * kBlockKeys + j], s0[r * kBlockKeys + j] * scale, "s",
                     r * kBlockKeys + j);
            }
          }
          for (int64_t j = 0; j < kBlockKeys; ++j) {
            t.Same(s[rows * kBlockKeys + j], kSentinel, "s past rows", rows * kBlockKeys + j);
          }
          t.Finish();
        });
      }
    }
  }
  report.Print(/*exact=*/true);
}

// "vnni, q + 128 bytes": the kernel and the operand encoding it read.
std::string Encoding(const IntDotInfo& info) {
  return std::string(info.name) + (info.int16 ? ", int16" : ", q + 128 bytes");
}

// ---------------------------------------------------------------------------
// The integer dot-product kernels of the per-target table (int_dot-inl.h):
// the exact integer dot products, -128 included, with the operands packed in
// the encoding the table names. Targets without a usable kernel (armv7, x86
// below AVX2, a CPU without the instructions) are skipped and named.

TEST_CASE("kernels: kIntDot.scores_qlanes (prefill integer kernel), exact, every target") {
  KernelReport report("kIntDot.scores_qlanes");
  std::mt19937_64 rng(18);
  std::vector<std::string> skipped;
  for (int32_t d : kDims) {
    for (int64_t n_keys : kKeyCounts) {
      const int64_t k_stride = d + 1;
      const std::vector<int8_t> q = Int8s(rng, kMaxSubTile * d);  // q[lane][e]
      const std::vector<int8_t> k = Int8s(rng, n_keys * k_stride);
      // Key 1 is bad: the packer zeroes it (score 0).
      const uint64_t bad = n_keys > 1 ? uint64_t{1} << 1 : 0;
      ForEachTarget([&](int64_t target) {
        const int64_t w = SubTileLanes(target);
        const IntDotInfo info = HWY_DYNAMIC_DISPATCH(IntDotOf)();
        if (!info.has_qlanes || !info.usable) {
          AddName(&skipped, TargetNameOf(target));
          return;
        }
        INFO(TargetNameOf(target), " (", std::string(info.name), ")");
        // The prefill kernel's lanes are the target's sub-tile.
        REQUIRE(info.lanes == w);
        Aligned<float> q_t = Alloc<float>(d * w, 0.0f);
        for (int32_t e = 0; e < d; ++e) {
          for (int64_t lane = 0; lane < w; ++lane) q_t[e * w + lane] = q[lane * d + e];
        }
        Aligned<int32_t> s = Alloc<int32_t>((n_keys + 1) * w, int32_t{-1234567});
        REQUIRE(HWY_DYNAMIC_DISPATCH(CallIntQLanes)(q_t.get(), w, d, k.data(), k_stride, n_keys,
                                                    bad, s.get()));
        Tally t(&report, target, Sizes(n_keys, d) + ", " + Encoding(info));
        for (int64_t j = 0; j < n_keys; ++j) {
          for (int64_t lane = 0; lane < w; ++lane) {
            int64_t want = 0;
            if (!((bad >> j) & 1)) {
              for (int32_t e = 0; e < d; ++e)
                want += int32_t{k[j * k_stride + e]} * q[lane * d + e];
            }
            t.SameInt(s[j * w + lane], want, "s", j * w + lane);
          }
        }
        for (int64_t lane = 0; lane < w; ++lane) {
          t.SameInt(s[n_keys * w + lane], -1234567, "s past n_keys", n_keys * w + lane);
        }
        t.Finish();
      });
    }
  }
  report.Print(/*exact=*/true);
  if (!skipped.empty()) MESSAGE("kIntDot.scores_qlanes: no usable kernel on: ", Join(skipped));
}

TEST_CASE("kernels: kIntDot.scores_klanes (decode integer kernel), exact, every target") {
  KernelReport report("kIntDot.scores_klanes");
  std::mt19937_64 rng(19);
  std::vector<std::string> skipped;
  for (int32_t d : kDims) {
    for (int64_t n_keys : kKeyCounts) {
      for (int64_t rows : kRowCounts) {
        const std::vector<int8_t> q = Int8s(rng, rows * d);
        const std::vector<int8_t> k = Int8s(rng, n_keys * d);
        const std::vector<int8_t> groups = Grouped(k, n_keys, d, int8_t{-128});
        const int64_t rows4 = RoundUp(rows, 4), s_stride = kBlockKeys;
        ForEachTarget([&](int64_t target) {
          SubTileLanes(target);
          const IntDotInfo info = HWY_DYNAMIC_DISPATCH(IntDotOf)();
          if (!info.has_klanes || !info.usable) {
            AddName(&skipped, TargetNameOf(target));
            return;
          }
          INFO(TargetNameOf(target), " (", std::string(info.name), ")");
          Aligned<int32_t> s = Alloc<int32_t>((rows4 + 1) * s_stride, int32_t{-1234567});
          REQUIRE(HWY_DYNAMIC_DISPATCH(CallIntKLanes)(q.data(), rows, groups.data(), d, n_keys,
                                                      s.get(), s_stride));
          Tally t(&report, target, Sizes(n_keys, d, rows) + ", " + Encoding(info));
          for (int64_t r = 0; r < rows4; ++r) {
            for (int64_t j = 0; j < n_keys; ++j) {
              const int64_t at = r * s_stride + j;
              if (r >= rows) {
                // Padding rows (encoded zeros) are computed; the kernels
                // store them as 0 or not at all.
                t.SameInt(s[at] == -1234567 ? 0 : s[at], 0, "s (padding row)", at);
                continue;
              }
              int64_t want = 0;
              for (int32_t e = 0; e < d; ++e) want += int32_t{q[r * d + e]} * k[j * d + e];
              t.SameInt(s[at], want, "s", at);
            }
          }
          for (int64_t j = 0; j < s_stride; ++j) {
            t.SameInt(s[rows4 * s_stride + j], -1234567, "s past rows4", rows4 * s_stride + j);
          }
          t.Finish();
        });
      }
    }
  }
  report.Print(/*exact=*/true);
  if (!skipped.empty()) MESSAGE("kIntDot.scores_klanes: no usable kernel on: ", Join(skipped));
}

// ---------------------------------------------------------------------------
// P.V for query rows.

TEST_CASE("kernels: PVRowsF32 o += P . V_block, every target") {
  KernelReport report("PVRowsF32");
  std::mt19937_64 rng(20);
  for (int32_t dv : kDims) {
    const int64_t dv_pad = DPad(dv);
    for (int64_t n_keys : kKeyCounts) {
      for (int64_t rows : kRowCounts) {
        // p past n_keys and v rows past n_keys are NaN: never read.
        Aligned<float> p = Alloc<float>(rows * kBlockKeys, kNaN);
        Aligned<float> v = Alloc<float>(kBlockKeys * dv_pad, kNaN);
        std::uniform_real_distribution<float> u(-1.0f, 1.0f), u01(0.0f, 1.0f);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t j = 0; j < n_keys; ++j) p[r * kBlockKeys + j] = u01(rng);
        }
        for (int64_t j = 0; j < n_keys; ++j) {
          for (int64_t e = 0; e < dv_pad; ++e) v[j * dv_pad + e] = e < dv ? u(rng) : 0.0f;
        }
        const std::vector<float> o0 = Uniform(rng, rows * dv_pad);
        std::vector<double> want(rows * dv_pad), mag(rows * dv_pad);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t e = 0; e < dv_pad; ++e) {
            double acc = o0[r * dv_pad + e], abs = std::fabs(acc);
            for (int64_t j = 0; j < n_keys; ++j) {
              const double t = double(p[r * kBlockKeys + j]) * v[j * dv_pad + e];
              acc += t, abs += std::fabs(t);
            }
            want[r * dv_pad + e] = acc, mag[r * dv_pad + e] = abs;
          }
        }
        ForEachTarget([&](int64_t target) {
          SubTileLanes(target);
          Aligned<float> o = Alloc<float>((rows + 1) * dv_pad, kSentinel);
          std::copy(o0.begin(), o0.end(), o.get());
          HWY_DYNAMIC_DISPATCH(CallPVRowsF32)(p.get(), v.get(), n_keys, rows, dv_pad, o.get());
          Tally t(&report, target, Sizes(n_keys, dv, rows));
          for (int64_t i = 0; i < rows * dv_pad; ++i) t.Near(o[i], want[i], mag[i], "o", i);
          for (int64_t e = 0; e < dv_pad; ++e) {
            t.Same(o[rows * dv_pad + e], kSentinel, "o past rows", rows * dv_pad + e);
          }
          t.Finish();
        });
      }
    }
  }
  report.Print();
}

TEST_CASE("kernels: PVRowsInPlace<float, f16> o += P . V read in place, every target") {
  KernelReport reports[2] = {KernelReport("PVRowsInPlace<float>"),
                             KernelReport("PVRowsInPlace<float16_t>")};
  std::mt19937_64 rng(21);
  for (int f16 = 0; f16 < 2; ++f16) {
    for (int32_t dv : kDims) {
      const int64_t dv_pad = DPad(dv), v_stride = dv + 5;
      for (int64_t n_keys : kKeyCounts) {
        for (int64_t rows : kRowCounts) {
          Aligned<float> p = Alloc<float>(rows * kBlockKeys, kNaN);
          std::uniform_real_distribution<float> u(-1.0f, 1.0f), u01(0.0f, 1.0f);
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t j = 0; j < n_keys; ++j) p[r * kBlockKeys + j] = u01(rng);
          }
          // V rows of dv in a stride of dv + 5; the gaps hold NaN.
          std::vector<float> v32(n_keys * v_stride, kNaN);
          std::vector<uint16_t> v16(n_keys * v_stride, uint16_t{0x7e00});
          std::vector<double> vf(n_keys * dv);
          for (int64_t j = 0; j < n_keys; ++j) {
            for (int32_t e = 0; e < dv; ++e) {
              const float x = u(rng);
              v16[j * v_stride + e] = relattn::F32ToF16(x);
              v32[j * v_stride + e] = f16 ? relattn::F16ToF32(v16[j * v_stride + e]) : x;
              vf[j * dv + e] = v32[j * v_stride + e];
            }
          }
          const std::vector<float> o0 = Uniform(rng, rows * dv_pad);
          std::vector<double> want(rows * dv_pad), mag(rows * dv_pad);
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t e = 0; e < dv_pad; ++e) {
              double acc = o0[r * dv_pad + e], abs = std::fabs(acc);
              for (int64_t j = 0; j < n_keys && e < dv; ++j) {
                const double t = double(p[r * kBlockKeys + j]) * vf[j * dv + e];
                acc += t, abs += std::fabs(t);
              }
              want[r * dv_pad + e] = acc, mag[r * dv_pad + e] = abs;
            }
          }
          ForEachTarget([&](int64_t target) {
            SubTileLanes(target);
            Aligned<float> o = Alloc<float>((rows + 1) * dv_pad, kSentinel);
            std::copy(o0.begin(), o0.end(), o.get());
            const void* v = f16 ? static_cast<const void*>(v16.data()) : v32.data();
            HWY_DYNAMIC_DISPATCH(CallPVRowsInPlace)
            (f16 != 0, p.get(), v, v_stride, n_keys, rows, dv, dv_pad, o.get());
            Tally t(&reports[f16], target, Sizes(n_keys, dv, rows));
            for (int64_t r = 0; r < rows; ++r) {
              for (int64_t e = 0; e < dv_pad; ++e) {
                const int64_t i = r * dv_pad + e;
                if (e < dv) {
                  t.Near(o[i], want[i], mag[i], "o", i);
                } else {  // only columns e < dv are written
                  t.Same(o[i], o0[i], "o padding column", i);
                }
              }
            }
            for (int64_t e = 0; e < dv_pad; ++e) {
              t.Same(o[rows * dv_pad + e], kSentinel, "o past rows", rows * dv_pad + e);
            }
            t.Finish();
          });
        }
      }
    }
  }
  reports[0].Print();
  reports[1].Print();
}

// ---------------------------------------------------------------------------
// Softmax of one query row over a block (scores past n_keys hidden, -inf, as
// BiasMaskRow leaves them).

TEST_CASE("kernels: PoisonRow, every target") {
  KernelReport report("PoisonRow");
  std::mt19937_64 rng(22);
  std::uniform_real_distribution<float> score(-20.0f, 4.0f), unit(0.0f, 1.0f);
  for (int64_t n_keys : kKeyCounts) {
    // 0 clean; 1 a NaN; 2 +inf at the last key; 3 a bad key with a visible
    // score; 4 a bad key with a hidden score, and one past n_keys (no
    // poison); 5 clean, already poisoned (stays 1).
    for (int c = 0; c < 6; ++c) {
      std::vector<float> s0(kBlockKeys, -kInf);
      for (int64_t j = 0; j < n_keys; ++j) s0[j] = unit(rng) < 0.25f ? -kInf : score(rng);
      const int64_t jm = n_keys / 2;
      uint64_t bad = 0;
      float poison0 = 0.0f;
      if (c == 1) s0[jm] = kNaN;
      if (c == 2) s0[n_keys - 1] = kInf;
      if (c == 3) s0[jm] = 1.5f, bad = uint64_t{1} << jm;
      if (c == 4) {
        s0[jm] = -kInf, bad = uint64_t{1} << jm;
        if (n_keys < kBlockKeys) bad |= uint64_t{1} << n_keys;
      }
      if (c == 5) poison0 = 1.0f;
      std::vector<float> want(s0);
      float want_poison = poison0;
      for (int64_t j = 0; j < n_keys; ++j) {
        if (std::isnan(s0[j]) || s0[j] == kInf || (((bad >> j) & 1) && s0[j] != -kInf)) {
          want[j] = -kInf, want_poison = 1.0f;
        }
      }
      ForEachTarget([&](int64_t target) {
        SubTileLanes(target);
        Aligned<float> s = Alloc<float>(kBlockKeys, 0.0f);
        std::copy(s0.begin(), s0.end(), s.get());
        float poison = poison0;
        HWY_DYNAMIC_DISPATCH(CallPoisonRow)(s.get(), n_keys, bad, &poison);
        Tally t(&report, target, Sizes(n_keys, 0) + ", case " + std::to_string(c));
        t.Same(poison, want_poison, "poison", 0);
        for (int64_t j = 0; j < kBlockKeys; ++j) t.Same(s[j], want[j], "s", j);
        t.Finish();
      });
    }
  }
  report.Print(/*exact=*/true);
}

TEST_CASE("kernels: SoftmaxRow vs a scalar online softmax, every target") {
  KernelReport report("SoftmaxRow");
  std::mt19937_64 rng(23);
  std::uniform_real_distribution<float> score(-20.0f, 4.0f), unit(0.0f, 1.0f);
  for (int64_t dv_pad : {16, 32, 64, 80, 128, 256}) {
    for (int64_t n_keys : kKeyCounts) {
      // 0 from the empty state; 1 a prior state, the max grows; 2 a prior
      // max above every score; 3 every score hidden, empty state (returns
      // false, nothing changes); 4 every score hidden, a prior state.
      for (int c = 0; c < 5; ++c) {
        std::vector<float> s0(kBlockKeys, -kInf);
        for (int64_t j = 0; j < n_keys; ++j) {
          const float u = unit(rng);
          s0[j] = c >= 3 || u < 0.25f ? -kInf : u < 0.3f ? -150.0f : score(rng);
        }
        if (c == 1) s0[n_keys - 1] = 3.5f;  // above the prior max
        const bool fresh = c == 0 || c == 3;
        const float max0 = fresh ? -kInf : c == 2 ? 10.0f : -1.0f;
        const float sum0 = fresh ? 0.0f : 2.5f;
        const std::vector<float> o0 =
            fresh ? std::vector<float>(dv_pad, 0.0f) : Uniform(rng, dv_pad, -3.0f, 3.0f);
        const LaneExpect x = ExpectLane(s0, 0, LaneState{max0, sum0, 0.0f});
        const bool want_seen = x.max != -kInf;
        ForEachTarget([&](int64_t target) {
          SubTileLanes(target);
          Aligned<float> s = Alloc<float>(kBlockKeys, 0.0f);
          std::copy(s0.begin(), s0.end(), s.get());
          Aligned<float> o = Alloc<float>(dv_pad, 0.0f);
          std::copy(o0.begin(), o0.end(), o.get());
          float max = max0, sum = sum0;
          const bool seen =
              HWY_DYNAMIC_DISPATCH(CallSoftmaxRow)(s.get(), &max, &sum, o.get(), dv_pad);
          Tally t(&report, target,
                  Sizes(n_keys, 0) + ", dv_pad " + std::to_string(dv_pad) + ", case " +
                      std::to_string(c));
          t.SameInt(seen, want_seen, "returned", 0);
          t.Same(max, x.max, "max", 0);
          if (!want_seen) {  // untouched: the empty state
            t.Same(sum, 0.0f, "sum (empty)", 0);
            for (int64_t e = 0; e < dv_pad; ++e) t.Same(o[e], 0.0f, "o (empty)", e);
          } else {
            t.Near(sum, x.sum_new, x.sum_new, "sum", 0);
            for (int64_t j = 0; j < kBlockKeys; ++j) {
              if (x.p[j] == 0.0) {
                t.Same(s[j], 0.0f, "p (hidden)", j);
              } else {
                t.Near(s[j], x.p[j], x.p[j], "p", j);
              }
            }
            for (int64_t e = 0; e < dv_pad; ++e) {
              const double want_o = double(o0[e]) * x.alpha;
              t.Near(o[e], want_o, std::fabs(want_o), "o", e);
            }
          }
          t.Finish();
        });
      }
    }
  }
  report.Print();
}

// ---------------------------------------------------------------------------
// Conversions (pack-inl.h): exact.

// f16 values a row meets at its edges: infinities, NaNs, subnormals, zeros,
// the largest finite, the smallest normal.
constexpr uint16_t kSpecialF16[] = {0x7c00, 0xfc00, 0x7e00, 0xfe01, 0x7c01, 0x0001, 0x8001,
                                    0x03ff, 0x83ff, 0x0000, 0x8000, 0x7bff, 0xfbff, 0x0400};

TEST_CASE("kernels: ConvertRow F32, F16 (inf, NaN, subnormals), I8, exact, every target") {
  KernelReport report("ConvertRow");
  std::mt19937_64 rng(24);
  constexpr int64_t kOffset = 5;  // unaligned
  for (relattn_dtype dtype : {RELATTN_F32, RELATTN_F16, RELATTN_I8}) {
    for (int32_t n : kDims) {
      for (float mul : {1.0f, 0.37f}) {
        const int64_t len = kOffset + n;
        std::vector<float> f32 = Uniform(rng, len, -3.0f, 3.0f);
        std::vector<uint16_t> f16(len);
        std::vector<int8_t> i8 = Int8s(rng, len);
        for (int64_t i = 0; i < len; ++i) {
          f16[i] = relattn::F32ToF16(f32[i] * 1000.0f);
          if (i % 3 == 1) f16[i] = kSpecialF16[(i / 3 + n) % std::size(kSpecialF16)];
        }
        // Non-finite f32 values pass through. (No subnormal f32: armv7 NEON
        // flushes those to zero.)
        f32[kOffset] = kInf;
        if (n > 2) f32[kOffset + 2] = kNaN;
        std::vector<float> want(n);
        for (int64_t e = 0; e < n; ++e) {
          const int64_t i = kOffset + e;
          const float x = dtype == RELATTN_F32   ? f32[i]
                          : dtype == RELATTN_F16 ? relattn::F16ToF32(f16[i])
                                                 : static_cast<float>(i8[i]);
          want[e] = mul == 1.0f ? x : mul * x;
        }
        const void* data = dtype == RELATTN_F32   ? static_cast<const void*>(f32.data())
                           : dtype == RELATTN_F16 ? static_cast<const void*>(f16.data())
                                                  : static_cast<const void*>(i8.data());
        ForEachTarget([&](int64_t target) {
          SubTileLanes(target);
          std::vector<float> dst(n + 1, kSentinel);
          HWY_DYNAMIC_DISPATCH(CallConvertRow)(data, dtype, kOffset, n, mul, dst.data());
          Tally t(&report, target,
                  std::string(dtype == RELATTN_F32   ? "f32"
                              : dtype == RELATTN_F16 ? "f16"
                                                     : "i8") +
                      ", n " + std::to_string(n) + (mul == 1.0f ? "" : ", mul 0.37"));
          for (int64_t e = 0; e < n; ++e) t.Same(dst[e], want[e], "dst", e);
          t.Same(dst[n], kSentinel, "dst past n", n);
          t.Finish();
        });
      }
    }
  }
  report.Print(/*exact=*/true);
}

TEST_CASE("kernels: PromoteF16 exact for all 65536 f16 values, every target") {
  KernelReport report("PromoteF16");
  // In order, then shuffled (so that vectors mix infinities and NaNs, which
  // the emulated conversion redoes, with finite values).
  std::vector<uint16_t> bits(2 * 65536);
  for (uint32_t i = 0; i < 65536; ++i) bits[i] = bits[65536 + i] = static_cast<uint16_t>(i);
  std::mt19937_64 rng(25);
  std::shuffle(bits.begin() + 65536, bits.end(), rng);
  std::vector<float> want(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) want[i] = relattn::F16ToF32(bits[i]);
  ForEachTarget([&](int64_t target) {
    SubTileLanes(target);
    std::vector<float> got(bits.size(), kSentinel);
    HWY_DYNAMIC_DISPATCH(CallPromoteF16)
    (bits.data(), static_cast<int64_t>(bits.size()), got.data());
    Tally t(&report, target, "all f16 bit patterns");
    for (size_t i = 0; i < bits.size(); ++i) t.Same(got[i], want[i], "f32 of f16", bits[i]);
    t.Finish();
  });
  report.Print(/*exact=*/true);
}

}  // namespace
}  // namespace relattn_test
#endif  // HWY_ONCE
