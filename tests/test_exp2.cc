// Exp2NonPositive (lib/kernels/exp2-inl.h), the online softmax's 2^x, on
// every SIMD target: within 2 ulp of std::exp2 (in double, rounded to float)
// on a dense sweep of [-126, 0]; 0 gives 1 exactly; below -126 a value in
// [0, 2^-126); -inf gives 0. The measured worst ulp per target is printed.
#include <doctest/doctest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tests/test_exp2.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#include "hwy/highway.h"
#include "lib/kernels/exp2-inl.h"

HWY_BEFORE_NAMESPACE();
namespace relattn_test {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// out[i] = Exp2NonPositive(x[i]) for every i, a whole vector at a time (the
// tail padded with zeros); returns the target this code was compiled for.
int64_t Exp2All(const std::vector<float>& x, std::vector<float>* out) {
  const hn::ScalableTag<float> d;
  const size_t n = hn::Lanes(d);
  std::vector<float> in(x);
  in.resize((x.size() + n - 1) / n * n, 0.0f);
  out->assign(in.size(), 0.0f);
  for (size_t i = 0; i < in.size(); i += n) {
    hn::StoreU(relattn::HWY_NAMESPACE::Exp2NonPositive(d, hn::LoadU(d, in.data() + i)), d,
               out->data() + i);
  }
  out->resize(x.size());
  return HWY_TARGET;
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace relattn_test
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "tests/attention_case.h"

namespace relattn_test {
HWY_EXPORT(Exp2All);

namespace {

// Exp2NonPositive of x on the current target; checks that target ran.
std::vector<float> Exp2OnTarget(int64_t target, const std::vector<float>& x) {
  std::vector<float> y;
  const int64_t ran = HWY_DYNAMIC_DISPATCH(Exp2All)(x, &y);
  INFO("asked for ", TargetNameOf(target), ", ran ", TargetNameOf(ran));
  REQUIRE(ran == target);
  return y;
}

uint32_t Bits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  return bits;
}

// Distance in ulp between a float result and a positive finite expected
// value: the difference of their bit patterns (a negative or NaN result is
// 2^31 or more away).
int64_t UlpDistance(float got, float expected) {
  const int64_t diff = int64_t(Bits(got)) - int64_t(Bits(expected));
  return diff < 0 ? -diff : diff;
}

// The sweep of [-126, 0]: every multiple of 2^-14 in [-1, 0]; 10^6 evenly
// spaced points and 10^6 uniform random ones over [-126, 0]; the integers
// and half-integers (where the nearest-integer split n + f jumps) with their
// float neighbours; the smallest magnitudes (f = x: the polynomial near 1).
std::vector<float> Sweep() {
  std::vector<float> x;
  for (int k = 0; k <= 1 << 14; ++k) x.push_back(-float(k) / float(1 << 14));
  constexpr int kPoints = 1'000'000;
  for (int i = 0; i <= kPoints; ++i) x.push_back(float(-126.0 * i / kPoints));
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<float> uniform(-126.0f, 0.0f);
  for (int i = 0; i < kPoints; ++i) x.push_back(uniform(rng));
  for (int twice = -252; twice <= 0; ++twice) {
    const float p = 0.5f * float(twice);
    x.push_back(p);
    if (p > -126.0f) x.push_back(std::nextafter(p, -INFINITY));
    if (p < 0.0f) x.push_back(std::nextafter(p, 0.0f));
  }
  for (float tiny : {-0.0f, -std::numeric_limits<float>::denorm_min(), -FLT_MIN, -1e-30f,
                     -FLT_EPSILON / 2, -FLT_EPSILON, -1e-7f, -1e-4f}) {
    x.push_back(tiny);
  }
  return x;
}

TEST_CASE("exp2: Exp2NonPositive within 2 ulp of exp2 on [-126, 0], every target") {
  const std::vector<float> x = Sweep();
  std::vector<float> expected(x.size());
  for (size_t i = 0; i < x.size(); ++i) expected[i] = float(std::exp2(double(x[i])));
  REQUIRE(std::all_of(x.begin(), x.end(), [](float v) { return v >= -126.0f && v <= 0.0f; }));
  ForEachTarget([&](int64_t target) {
    const std::vector<float> got = Exp2OnTarget(target, x);
    int64_t worst = 0;
    size_t worst_at = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const int64_t ulp = UlpDistance(got[i], expected[i]);
      if (ulp > worst) worst = ulp, worst_at = i;
    }
    char where[160];
    std::snprintf(where, sizeof(where), "at x = %.9g: got %.9g, exp2 %.9g", double(x[worst_at]),
                  double(got[worst_at]), double(expected[worst_at]));
    MESSAGE("exp2: ", TargetNameOf(target), " max error ", worst, " ulp over ", x.size(),
            " points in [-126, 0] (", where, ")");
    INFO(TargetNameOf(target), " ", where);
    CHECK(worst <= 2);
  });
}

TEST_CASE("exp2: 0 gives 1 exactly, below -126 a value in [0, 2^-126), -inf gives 0") {
  std::vector<float> below = {std::nextafter(-126.0f, -INFINITY),
                              -126.25f,
                              std::nextafter(-126.5f, 0.0f),
                              -126.5f,
                              std::nextafter(-126.5f, -INFINITY),
                              -126.75f,
                              -127.0f,
                              -127.5f,
                              -128.0f,
                              -149.0f,
                              -150.0f,
                              -1000.0f,
                              -1e30f,
                              -FLT_MAX};
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<float> uniform(-200.0f, -126.0f);
  for (int i = 0; i < 100'000; ++i) {
    const float v = uniform(rng);
    if (v < -126.0f) below.push_back(v);
  }
  std::vector<float> x = {0.0f, -0.0f, -INFINITY};
  x.insert(x.end(), below.begin(), below.end());
  ForEachTarget([&](int64_t target) {
    const std::vector<float> got = Exp2OnTarget(target, x);
    INFO(TargetNameOf(target));
    CHECK(got[0] == 1.0f);
    CHECK(got[1] == 1.0f);
    CHECK(got[2] == 0.0f);
    size_t bad = 0, first_bad = 0;
    for (size_t i = 3; i < x.size(); ++i) {
      if (!(got[i] >= 0.0f && got[i] < FLT_MIN)) {
        if (bad++ == 0) first_bad = i;
      }
    }
    INFO(bad, " of ", below.size(),
         " inputs below -126 outside [0, 2^-126), first x = ", x[first_bad], ": ", got[first_bad]);
    CHECK(bad == 0);
  });
}

}  // namespace
}  // namespace relattn_test
#endif  // HWY_ONCE
