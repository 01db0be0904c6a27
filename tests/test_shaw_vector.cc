// The Shaw vector form (q . a[clip(p_k - p_q, -k, k) + k] in the content
// product) against the fp64 reference on every SIMD target: prefill and
// decode, consecutive and scattered positions, per-head and shared tables,
// with RoPE and int8 Q / K; and its argument errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "tests/attention_case.h"

namespace relattn_test {
namespace {

WorstErrors error_log("shaw vector");

void Check(const CaseSpec& spec) {
  error_log.Note(spec.out_dtype == RELATTN_F16 ? "f16 out" : "f32 out", CheckAllTargets(spec));
}

TEST_CASE("shaw vector: k x head_dim x n_q x positions, every target") {
  int index = 0;
  for (int32_t k : {0, 1, 16, 64}) {
    for (int32_t d : {3, 32, 80, 128}) {
      for (int64_t n_q : {int64_t{1}, int64_t{6}, int64_t{45}, int64_t{100}}) {
        CaseSpec spec;
        spec.seed = 900 + index;
        spec.scheme = RELATTN_BIAS_SHAW_VECTOR;
        spec.shaw_k = k;
        spec.shaw_vector_per_head = index % 3 != 0;
        spec.head_dim = d;
        spec.n_q = n_q;
        spec.n_kv = 140;
        spec.q_start = 140 - n_q;
        spec.n_heads = index % 2 ? 4 : 2;
        spec.n_kv_heads = index % 2 ? 2 : 2;
        spec.in_dtype = index % 4 == 1 ? RELATTN_F16 : RELATTN_F32;
        spec.out_dtype = index % 5 == 3 ? RELATTN_F16 : RELATTN_F32;
        spec.heads_major = index % 3 == 2;
        spec.causal = index % 4 != 0;
        spec.window = index % 7 == 5 ? 20 : 0;
        spec.position_arrays = index % 3;
        Check(spec);
        ++index;
      }
    }
  }
}

TEST_CASE("shaw vector: with RoPE, and with int8 Q and K") {
  for (int variant = 0; variant < 4; ++variant) {
    for (int64_t n_q : {int64_t{2}, int64_t{70}}) {
      CaseSpec spec;
      spec.seed = 77 + variant;
      spec.scheme = RELATTN_BIAS_SHAW_VECTOR;
      spec.shaw_k = 8;
      spec.head_dim = 64;
      spec.n_q = n_q;
      spec.n_kv = 120;
      spec.q_start = 120 - n_q;
      spec.n_heads = 4;
      spec.n_kv_heads = 1;
      spec.causal = true;
      if (variant & 1) spec.rope = relattn_rope{RELATTN_ROPE_HALVES, 0, 0.0f, 0.0f, {}};
      if (variant & 2) spec.int8_qk = 2;
      Check(spec);
    }
  }
}

TEST_CASE("shaw vector: bad parameters fail naming the field, output untouched") {
  CaseSpec spec;
  spec.scheme = RELATTN_BIAS_SHAW_VECTOR;
  Case c(spec);
  std::vector<uint8_t> out;
  relattn_shaw_vector& sv = c.desc().bias.shaw_vector;
  const relattn_shaw_vector good = sv;
  sv.k = 65;
  CHECK(c.Run(&out) == RELATTN_ERR_BAD_BIAS_PARAMETER);
  CHECK(std::string(relattn_last_error()).find("bias.shaw_vector.k = 65") != std::string::npos);
  CHECK(std::all_of(out.begin(), out.end(), [](uint8_t x) { return x == 0xff; }));
  sv = good;
  sv.table = nullptr;
  CHECK(c.Run(&out) == RELATTN_ERR_NULL_ARGUMENT);
  sv = good;
  std::vector<float> table(good.table, good.table + (2 * good.k + 1) * spec.head_dim);
  table[5] = NAN;
  sv.table = table.data();
  sv.per_head = 0;
  CHECK(c.Run(&out) == RELATTN_ERR_BAD_BIAS_PARAMETER);
  CHECK(std::string(relattn_last_error()).find("bias.shaw_vector.table") != std::string::npos);
  sv = good;
  CHECK(c.Run(&out) == RELATTN_OK);
}

}  // namespace
}  // namespace relattn_test
