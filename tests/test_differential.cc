// Differential across SIMD paths: random descriptors run on every compiled
// and supported target; every pair of targets must agree within twice the
// output bound (each is within the bound of the fp64 reference). Bits are
// not promised across targets: their exp2 and FMA contractions round apart
// (int8 Q.K gives every target the same integer scores, the softmax then
// differs; on one target the int8 ISA kernels and the portable path give the
// same bits: tests/test_int8.cc). Prints, per target pair and output dtype,
// the cases compared, how many were bit-identical and the largest difference.
#include <doctest/doctest.h>

#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tests/attention_case.h"

namespace relattn_test {
namespace {

#if defined(RELATTN_TEST_EMULATED)
constexpr int kCases = 24;
#else
constexpr int kCases = 160;
#endif

CaseSpec RandomSpec(std::mt19937& rng, int index) {
  auto pick = [&](std::initializer_list<int64_t> values) {
    return *(values.begin() + std::uniform_int_distribution<size_t>(0, values.size() - 1)(rng));
  };
  CaseSpec s;
  s.seed = 9000 + index;
  s.n_q = pick({1, 2, 7, 33, 100});
  s.n_kv = pick({1, 16, 100, 300});
  s.n_kv_heads = int32_t(pick({1, 2}));
  s.n_heads = s.n_kv_heads * int32_t(pick({1, 2, 3}));
  s.head_dim = int32_t(pick({4, 16, 17, 64, 80, 128}));
  s.heads_major = pick({0, 1});
  s.in_dtype = pick({0, 1}) ? RELATTN_F16 : RELATTN_F32;
  s.out_dtype = pick({0, 1}) ? RELATTN_F16 : RELATTN_F32;
  s.scheme = relattn_bias_kind(pick({0, 1, 2, 3, 4}));
  s.alibi_causal = pick({0, 1});
  s.causal = pick({0, 1});
  s.window = pick({0, 0, 9});
  s.q_start = s.n_kv - s.n_q > 0 ? s.n_kv - s.n_q : 0;
  s.int8_qk = int(pick({0, 0, 1, 2}));
  if (pick({0, 0, 0, 1}) && s.head_dim % 2 == 0) s.rope = {RELATTN_ROPE_HALVES, 0, 0.0f, 0.0f, {}};
  return s;
}

struct PairStats {
  int compared = 0, identical = 0;
  double max_diff = 0.0;
};

}  // namespace

TEST_CASE("every pair of SIMD targets agrees within twice the output bound") {
  std::mt19937 rng(2026);
  const std::vector<int64_t> targets = TargetsUnderTest();
  std::map<std::tuple<int64_t, int64_t, relattn_dtype>, PairStats> pairs;
  for (int i = 0; i < kCases; ++i) {
    const CaseSpec spec = RandomSpec(rng, i);
    Case c(spec);
    std::vector<std::vector<uint8_t>> outs(targets.size());
    for (size_t t = 0; t < targets.size(); ++t) {
      UseTarget(targets[t]);
      REQUIRE(c.Run(&outs[t]) == RELATTN_OK);
    }
    UseTarget(0);
    const double bound = 2.0 * ErrorBound(spec.out_dtype);
    for (size_t a = 0; a < targets.size(); ++a) {
      for (size_t b = a + 1; b < targets.size(); ++b) {
        INFO(TargetNameOf(targets[a]), " vs ", TargetNameOf(targets[b]), ": ", spec.Name());
        const double diff = MaxAbsDiff(c.Decode(outs[a]), c.Decode(outs[b]));
        CHECK(diff <= bound);
        PairStats& p = pairs[{targets[a], targets[b], spec.out_dtype}];
        ++p.compared;
        p.identical += outs[a] == outs[b];
        p.max_diff = std::max(p.max_diff, diff);
      }
    }
  }
  for (const auto& [key, p] : pairs) {
    const auto& [a, b, out] = key;
    std::printf("differential %s vs %s, %s output: %d cases, %d bit-identical, max |diff| %.2g\n",
                TargetNameOf(a).c_str(), TargetNameOf(b).c_str(),
                out == RELATTN_F16 ? "f16" : "f32", p.compared, p.identical, p.max_diff);
  }
}

}  // namespace relattn_test
