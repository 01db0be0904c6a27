// Decode (n_q <= 7) over the caller's f16 / f32 K and V tensors, which the
// decode pipeline reads where they lie (no conversion into the workspace):
// both layouts, head dims that do and do not fill whole vectors, GQA ratios,
// key splits, against the fp64 reference on every target; a block holding a
// non-finite row falls back to the converting path and poisons exactly the
// rows that see it, in either layout.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/attention_case.h"

namespace relattn_test {
namespace {

WorstErrors worst("test_decode_tensors");

struct Heads {
  int32_t q, kv;
};

TEST_CASE("decode over tensors read in place matches the reference in both layouts") {
#if RELATTN_TEST_EMULATED
  const std::vector<int32_t> dims = {6, 20, 128};
  const std::vector<int64_t> lengths = {63, 2100};
  const std::vector<Heads> head_counts = {{4, 1}, {3, 3}};
  const std::vector<int64_t> query_counts = {1, 3};
#else
  const std::vector<int32_t> dims = {6, 20, 64, 80, 128};
  const std::vector<int64_t> lengths = {1, 63, 200, 5000};
  const std::vector<Heads> head_counts = {{4, 1}, {8, 2}, {3, 3}};
  const std::vector<int64_t> query_counts = {1, 3, 7};
#endif
  for (int32_t d : dims) {
    for (int64_t n_kv : lengths) {
      for (Heads heads : head_counts) {
        for (int64_t n_q : query_counts) {
          for (bool heads_major : {false, true}) {
            for (relattn_dtype in : {RELATTN_F32, RELATTN_F16}) {
              CaseSpec spec;
              spec.n_q = n_q;
              spec.n_kv = n_kv;
              spec.q_start = n_kv - 1;
              spec.n_heads = heads.q;
              spec.n_kv_heads = heads.kv;
              spec.head_dim = d;
              spec.v_head_dim = d == 20 ? 24 : 0;
              spec.heads_major = heads_major;
              spec.in_dtype = in;
              spec.causal = true;
              spec.scheme = n_q == 3 ? RELATTN_BIAS_T5 : RELATTN_BIAS_ALIBI;
              spec.alibi_causal = n_q == 1;
              spec.seed = uint64_t(d * 131 + n_kv + n_q);
              const double err = CheckAllTargets(spec);
              worst.Note(
                  std::string(heads_major ? "htd " : "thd ") + (in == RELATTN_F16 ? "f16" : "f32"),
                  err);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("a non-finite K or V row in a tensor poisons exactly the rows that see it") {
  // 16400 keys: 8 key splits, and over [tokens][heads][d] both KV heads in one work item.
  for (int64_t n_kv : {int64_t{300}, int64_t{16400}}) {
    for (bool heads_major : {false, true}) {
      for (relattn_dtype in : {RELATTN_F32, RELATTN_F16}) {
        for (float bad : {NAN, INFINITY}) {
          CaseSpec spec;
          spec.n_q = 2;
          spec.n_kv = n_kv;
          spec.q_start = n_kv - 2;
          spec.n_heads = 4;
          spec.n_kv_heads = 2;
          spec.head_dim = 128;
          spec.heads_major = heads_major;
          spec.in_dtype = in;
          spec.causal = true;
          spec.window = 100;  // query 0 sees keys n_kv - 101 .. n_kv - 2, query 1 one more
          Case c(spec);
          const std::vector<double> clean = c.Reference();
          c.SetInput('k', n_kv - 101, 0, 127, bad);  // seen by query 0 of KV head 0's query heads
          c.SetInput('v', n_kv - 50, 1, 3, bad);     // seen by both queries of query heads 2, 3
          c.SetInput('k', 20, 1, 0, bad);            // seen by no query
          ForEachTarget([&](int64_t target) {
            std::vector<uint8_t> out;
            REQUIRE(c.Run(&out) == RELATTN_OK);
            const std::vector<double> got = c.Decode(out);
            for (int64_t i = 0; i < spec.n_q; ++i) {
              for (int32_t h = 0; h < spec.n_heads; ++h) {
                const bool poisoned = (h < 2 && i == 0) || h >= 2;
                INFO(TargetNameOf(target), " heads_major ", heads_major, " in ", int(in), " bad ",
                     bad, " row ", i, " head ", h);
                CHECK(RowHasNaN(got, i, h, spec.n_heads, spec.head_dim) == poisoned);
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
}

TEST_CASE("decode over [tokens][heads][d]: several KV heads per work item") {
  // Long enough for 8 key splits, so that work items group KV heads (kv_per_item
  // 2..6 here: MHA, GQA 2 and 8, one to seven queries); the htd layout beside.
  const std::vector<Heads> head_counts = {{6, 6}, {8, 4}, {16, 2}};
  for (Heads heads : head_counts) {
    for (int64_t n_q : {int64_t{1}, int64_t{3}, int64_t{7}}) {
      for (bool heads_major : {false, true}) {
        CaseSpec spec;
        spec.n_q = n_q;
        spec.n_kv = 16400;
        spec.q_start = spec.n_kv - n_q;
        spec.n_heads = heads.q;
        spec.n_kv_heads = heads.kv;
        spec.head_dim = n_q == 3 ? 20 : 64;
        spec.heads_major = heads_major;
        spec.in_dtype = n_q == 7 ? RELATTN_F32 : RELATTN_F16;
        spec.causal = true;
        spec.scheme = n_q == 3 ? RELATTN_BIAS_T5 : RELATTN_BIAS_ALIBI;
        spec.alibi_causal = true;
        spec.sinks = n_q == 7;
        spec.seed = uint64_t(heads.q * 977 + n_q);
        worst.Note(std::string("several KV heads per item, ") + (heads_major ? "htd" : "thd"),
                   CheckAllTargets(spec));
      }
    }
  }
}

}  // namespace
}  // namespace relattn_test
