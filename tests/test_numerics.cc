// Adversarial numerics, with the behaviour relattn states:
//  - a NaN or infinity in Q, K or V makes NaN exactly the output rows of the
//    queries that see it (a query row with one; a query that sees, under the
//    masks, a key whose K or V row has one); every other row is exact;
//  - huge logits, very negative biases, denormals, f16 extremes and zero
//    biases compute without overflow, matching the fp64 reference.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "tests/attention_case.h"

namespace relattn_test {
namespace {

CaseSpec Base(int64_t n_q) {
  CaseSpec spec;
  spec.n_q = n_q;
  spec.n_kv = 150;
  spec.q_start = 150 - n_q;
  spec.n_heads = 4;
  spec.n_kv_heads = 2;
  spec.head_dim = 20;
  spec.causal = true;
  spec.scheme = RELATTN_BIAS_ALIBI;
  return spec;
}

TEST_CASE("non-finite inputs poison exactly the rows that see them") {
  for (int64_t n_q : {int64_t(40), int64_t(3)}) {  // prefill and decode pipelines
    for (relattn_dtype in : {RELATTN_F32, RELATTN_F16}) {
      for (float bad : {NAN, INFINITY, -INFINITY}) {
        CaseSpec spec = Base(n_q);
        spec.in_dtype = in;
        Case c(spec);
        const std::vector<double> clean = c.Reference();
        // Query 1 of head 2 holds a bad value; key 120 of KV head 0 (query
        // heads 0, 1) in K, key 100 of KV head 1 (query heads 2, 3) in V.
        c.SetInput('q', 1, 2, 3, bad);
        c.SetInput('k', 120, 0, 5, bad);
        c.SetInput('v', 100, 1, 0, bad);
        ForEachTarget([&](int64_t target) {
          std::vector<uint8_t> out;
          REQUIRE(c.Run(&out) == RELATTN_OK);
          const std::vector<double> got = c.Decode(out);
          for (int64_t i = 0; i < n_q; ++i) {
            const int64_t p_q = spec.q_start + i;
            for (int32_t h = 0; h < spec.n_heads; ++h) {
              const bool sees_bad_k = h < 2 && p_q >= 120;
              const bool sees_bad_v = h >= 2 && p_q >= 100;
              const bool poisoned = (i == 1 && h == 2) || sees_bad_k || sees_bad_v;
              INFO(TargetNameOf(target), " n_q ", n_q, " in ", int(in), " bad ", bad, " row ", i,
                   " head ", h);
              CHECK_MESSAGE(RowHasNaN(got, i, h, spec.n_heads, spec.head_dim) == poisoned,
                            "o[0] = ", got[(size_t(i) * spec.n_heads + h) * spec.head_dim]);
              if (poisoned) continue;
              for (int32_t e = 0; e < spec.head_dim; ++e) {
                const size_t at = (size_t(i) * spec.n_heads + h) * spec.head_dim + e;
                CHECK(std::fabs(got[at] - clean[at]) <= ErrorBound(spec.out_dtype));
              }
            }
          }
        });
      }
    }
  }
}

void CheckCase(CaseSpec spec, const std::function<void(Case&)>& prepare, double bound) {
  Case c(spec);
  prepare(c);
  CheckAllTargets(c, c.Reference(), bound, spec.Name());
}

TEST_CASE("huge logits: |scale q.k| ~ 1e4 neither overflows nor loses the argmax") {
  for (int64_t n_q : {int64_t(40), int64_t(3)}) {
    CaseSpec spec = Base(n_q);
    spec.scale = 3000.0f;  // scores up to ~ 3000 * 20 / 3 ~ 2e4
    CheckCase(
        spec, [](Case&) {}, ErrorBound(spec.out_dtype));
  }
}

TEST_CASE("very negative biases (-1e30) hide keys without NaN") {
  for (int64_t n_q : {int64_t(40), int64_t(3)}) {
    CaseSpec spec = Base(n_q);
    spec.scheme = RELATTN_BIAS_SHAW;
    spec.shaw_k = 4;
    spec.causal = false;
    Case c(spec);
    // Every offset except 0 gets -1e30: each query attends to itself only
    // when its key exists, else uniformly over -1e30 keys.
    relattn_attention_desc& d = c.desc();
    std::vector<float> table(size_t(spec.n_heads) * 9, -1e30f);
    for (int32_t h = 0; h < spec.n_heads; ++h) table[size_t(h) * 9 + 4] = 0.0f;
    d.bias.shaw.table = table.data();
    CheckAllTargets(c, c.Reference(), ErrorBound(spec.out_dtype),
                    spec.Name() + " (Shaw table -1e30 off offset 0)");
  }
}

TEST_CASE("denormal inputs and f16 inputs at +-65504") {
  for (int64_t n_q : {int64_t(40), int64_t(3)}) {
    CaseSpec spec = Base(n_q);
    CheckCase(
        spec,
        [&](Case& c) {
          for (int32_t e = 0; e < spec.head_dim; ++e) {
            c.SetInput('q', 0, 0, e, 1e-39f);
            c.SetInput('k', 5, 0, e, -3e-40f);
            c.SetInput('v', 7, 1, e, 2e-41f);
          }
        },
        ErrorBound(spec.out_dtype));
    spec.in_dtype = RELATTN_F16;
    spec.scale = 1e-9f;  // keeps 65504^2 * d * scale in range: scores ~ 86
    CheckCase(
        spec,
        [&](Case& c) {
          for (int32_t e = 0; e < spec.head_dim; ++e) {
            c.SetInput('q', 1, 1, e, 65504.0f);
            c.SetInput('k', 9, 0, e, e % 2 ? 65504.0f : -65504.0f);
            c.SetInput('v', 9, 0, e, -65504.0f);
          }
        },
        65504.0 * 5e-6);  // the f32 bound, relative to |v| <= 65504
  }
}

TEST_CASE("zero ALiBi slopes and all-zero T5 tables equal no bias") {
  for (int64_t n_q : {int64_t(40), int64_t(3)}) {
    CaseSpec spec = Base(n_q);
    Case c(spec);
    const std::vector<float> zeros(size_t(spec.n_heads) * 32, 0.0f);
    std::vector<uint8_t> none, alibi0, t5zero;
    c.desc().bias.kind = RELATTN_BIAS_NONE;
    REQUIRE(c.Run(&none) == RELATTN_OK);
    c.desc().bias.kind = RELATTN_BIAS_ALIBI;
    c.desc().bias.alibi.slopes = zeros.data();
    REQUIRE(c.Run(&alibi0) == RELATTN_OK);
    c.desc().bias.kind = RELATTN_BIAS_T5;
    c.desc().bias.t5 = {zeros.data(), RELATTN_F32, nullptr, 32, 128, 0};
    REQUIRE(c.Run(&t5zero) == RELATTN_OK);
    CHECK(alibi0 == none);
    CHECK(t5zero == none);
  }
}

// Runs c expecting RELATTN_ERR_VALUE_RANGE with `term` in the message and
// the output untouched.
void CheckValueRangeFails(Case& c, const std::string& term) {
  std::vector<uint8_t> out;
  REQUIRE(c.Run(&out) == RELATTN_ERR_VALUE_RANGE);
  const std::string message = relattn_last_error();
  INFO(message);
  CHECK(message.rfind(term + " = ", 0) == 0);
  CHECK(std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == 0xff; }));
}

TEST_CASE("finite inputs whose scores or sums would overflow f32 fail, writing nothing") {
  for (int64_t n_q : {int64_t(40), int64_t(3)}) {
    CaseSpec spec = Base(n_q);
    {  // |q|, |k| = 1e20: scale * d * 1e40 ~ 4.5e40
      Case c(spec);
      c.SetInput('q', 1, 0, 2, 1e20f);
      c.SetInput('k', 7, 1, 5, -1e20f);
      CheckValueRangeFails(c, "|scale| * head_dim * max|q| * max|k|");
    }
    {  // one huge q alone
      Case c(spec);
      c.SetInput('q', 0, 3, 0, 3e38f);
      CheckValueRangeFails(c, "max|q|");
    }
    {  // n_kv * max|v| = 150 * 1e36
      Case c(spec);
      c.SetInput('v', 9, 0, 1, 1e36f);
      CheckValueRangeFails(c, "n_kv * max|v|");
    }
    {  // the Shaw vector table's entries count with k's
      CaseSpec sv = spec;
      sv.scheme = RELATTN_BIAS_SHAW_VECTOR;
      sv.shaw_k = 4;
      Case c(sv);
      c.SetInput('q', 1, 0, 2, 1e19f);
      const float* table = c.desc().bias.shaw_vector.table;
      const_cast<float*>(table)[3] = 1e19f;
      CheckValueRangeFails(c, "|scale| * head_dim * max|q| * (max|k| + max|a|)");
    }
  }
}

TEST_CASE("inputs just inside the value range match the reference; NaN does not count") {
  for (int64_t n_q : {int64_t(40), int64_t(3)}) {
    CaseSpec spec = Base(n_q);
    // scale * d * |q| * |k| = 20^-0.5 * 20 * 1e36 ~ 4.5e36 <= 2^125 ~ 4.3e37:
    // the key with the huge score takes the whole weight, as in fp64.
    CheckCase(
        spec,
        [&](Case& c) {
          c.SetInput('q', 1, 0, 2, 1e18f);
          c.SetInput('k', 0, 0, 2, 1e18f);
          c.SetInput('q', 2, 1, 2, -1e18f);
          c.SetInput('v', 4, 1, 0, 1e34f);  // 150 * 1e34 <= 2^125
        },
        1e34 * 5e-6);
    Case c(spec);  // a NaN beside huge values poisons; it is not a maximum
    c.SetInput('q', 0, 0, 0, NAN);
    c.SetInput('k', 3, 0, 0, INFINITY);
    std::vector<uint8_t> out;
    CHECK(c.Run(&out) == RELATTN_OK);
  }
}

TEST_CASE("positions at the int64 edges") {
  for (int64_t n_q : {int64_t(40), int64_t(3)}) {
    CaseSpec spec = Base(n_q);
    spec.q_start = INT64_MAX - n_q + 1;  // the last query sits at INT64_MAX
    spec.k_start = INT64_MAX - 149;
    CaseSpec low = spec;
    low.q_start = INT64_MIN + (150 - n_q);  // the same offsets, shifted by -2^64 + 150
    low.k_start = INT64_MIN;
    for (int scheme = 0; scheme < 4; ++scheme) {
      spec.scheme = low.scheme = relattn_bias_kind(scheme);
      Case high_case(spec), low_case(low);
      std::vector<uint8_t> a, b;
      REQUIRE(high_case.Run(&a) == RELATTN_OK);
      REQUIRE(low_case.Run(&b) == RELATTN_OK);
      CHECK(a == b);  // same offsets at both ends of int64
      CheckCase(
          spec, [](Case&) {}, ErrorBound(spec.out_dtype));
    }
  }
}

}  // namespace
}  // namespace relattn_test

namespace relattn_test {
namespace {

TEST_CASE("ALiBi stays exact when a row's visible keys are 2^31 away and others near") {
  // Keys 0..29, then 20 keys just after the queries (hidden by the causal
  // mask or outside the window); queries at 2^31. Each row's ALiBi anchor must
  // come from its own visible keys, not from the key range.
  for (int64_t n_q : {int64_t(40), int64_t(3)}) {
    for (bool alibi_causal : {false, true}) {
      CaseSpec spec;
      spec.n_q = n_q;
      spec.n_kv = 50;
      spec.n_heads = 2;
      spec.head_dim = 8;
      spec.scheme = RELATTN_BIAS_ALIBI;
      spec.alibi_slopes = 2;  // caller slopes in [0, 0.5)
      spec.alibi_causal = alibi_causal;
      spec.causal = true;
      Case c(spec);
      std::vector<int64_t> q_pos(n_q), k_pos(50);
      for (int64_t t = 0; t < n_q; ++t) q_pos[t] = (int64_t(1) << 31) + t;
      for (int64_t j = 0; j < 50; ++j) k_pos[j] = j < 30 ? j : (int64_t(1) << 31) + n_q + j;
      c.desc().q_pos.positions = q_pos.data();
      c.desc().k_pos.positions = k_pos.data();
      CheckAllTargets(
          c, c.Reference(), ErrorBound(spec.out_dtype),
          "n_q " + std::to_string(n_q) + " causal form " + std::to_string(alibi_causal));
    }
  }
}

}  // namespace
}  // namespace relattn_test
