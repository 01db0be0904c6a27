// Properties of relative positions and of the execution: translation
// invariance, exactness at huge offsets, layout and thread-count independence.
#include <doctest/doctest.h>
#include <pthreadpool.h>

#include <cstring>
#include <thread>
#include <vector>

#include "tests/attention_case.h"

namespace relattn_test {
namespace {

std::vector<CaseSpec> SchemeSpecs() {
  std::vector<CaseSpec> specs;
  for (int scheme = 0; scheme < 4; ++scheme) {
    for (int variant = 0; variant < 3; ++variant) {
      CaseSpec spec;
      spec.seed = 100 + scheme * 3 + variant;
      spec.n_q = 45;
      spec.n_kv = 150;
      spec.q_start = 105;
      spec.n_heads = 4;
      spec.n_kv_heads = 2;
      spec.head_dim = 32;
      spec.scheme = relattn_bias_kind(scheme);
      spec.alibi_causal = variant == 1;
      spec.t5_bidirectional = variant != 1;
      spec.causal = variant == 1;
      spec.window = variant == 2 ? 30 : 0;
      spec.position_arrays = variant == 2 ? 2 : 0;
      spec.shaw_k = 9;
      specs.push_back(spec);
    }
  }
  return specs;
}

TEST_CASE("translation invariance: shifting every position by C is bit-identical") {
  const int64_t shifts[] = {
      1, 1000, int64_t(1) << 31, int64_t(1) << 40, -(int64_t(1) << 40), 4'000'000'000'000'000'000};
  ForEachTarget([&](int64_t target) {
    for (const CaseSpec& spec : SchemeSpecs()) {
      Case c(spec);
      std::vector<uint8_t> base, shifted;
      REQUIRE(c.Run(&base) == RELATTN_OK);
      for (int64_t shift : shifts) {
        c.ShiftPositions(shift);
        REQUIRE(c.Run(&shifted) == RELATTN_OK);
        c.ShiftPositions(-shift);
        INFO(TargetNameOf(target), " shift ", shift, " ", spec.Name());
        CHECK(std::memcmp(base.data(), shifted.data(), base.size()) == 0);
      }
    }
  });
}

TEST_CASE("offsets up to 1e12 are exact: far keys behave as near keys") {
  // All keys precede all queries; the bias depends on offsets whose pairwise
  // differences are the same whether the gap is 1e3 or 1e12, so with ALiBi
  // (softmax drops the per-row constant) and saturated T5 / Shaw the output
  // must not change at all, and must match the reference at the small gap.
  for (int scheme = 1; scheme < 4; ++scheme) {
    for (bool alibi_causal : {false, true}) {
      CaseSpec spec;
      spec.seed = 77 + scheme;
      spec.n_q = 20;
      spec.n_kv = 100;
      spec.n_heads = 8;
      spec.n_kv_heads = 4;
      spec.head_dim = 16;
      spec.scheme = relattn_bias_kind(scheme);
      spec.alibi_causal = alibi_causal;
      spec.alibi_slopes = 1;
      spec.k_start = 0;
      spec.q_start = 1000;
      Case c(spec);
      const std::vector<double> expected = c.Reference();
      ForEachTarget([&](int64_t target) {
        std::vector<uint8_t> near, far;
        REQUIRE(c.Run(&near) == RELATTN_OK);
        INFO(TargetNameOf(target), " ", spec.Name());
        CHECK(MaxAbsDiff(c.Decode(near), expected) <= ErrorBound(spec.out_dtype));
        c.desc().q_pos.start = 1'000'000'000'000;
        REQUIRE(c.Run(&far) == RELATTN_OK);
        c.desc().q_pos.start = 1000;
        CHECK(std::memcmp(near.data(), far.data(), near.size()) == 0);
      });
    }
  }
}

TEST_CASE("layouts: [tokens][heads][d] and [heads][tokens][d] give identical output") {
  for (CaseSpec spec : SchemeSpecs()) {
    spec.heads_major = false;
    Case thd(spec);
    spec.heads_major = true;
    Case htd(spec);  // same seed: same values, other layout
    std::vector<uint8_t> a, b;
    REQUIRE(thd.Run(&a) == RELATTN_OK);
    REQUIRE(htd.Run(&b) == RELATTN_OK);
    CHECK(thd.Decode(a) == htd.Decode(b));
  }
}

TEST_CASE("threads: output is bit-identical for any thread count") {
  pthreadpool_t pool = pthreadpool_create(3);
  relattn_threads from_pool;
  REQUIRE(relattn_threads_from_pthreadpool(pool, &from_pool) == RELATTN_OK);
  CHECK(from_pool.n_threads == 3);
  for (CaseSpec spec : SchemeSpecs()) {
    spec.n_q = 200;
    Case c(spec);
    std::vector<uint8_t> serial, parallel;
    REQUIRE(c.Run(&serial) == RELATTN_OK);
    REQUIRE(c.Run(&parallel, &from_pool) == RELATTN_OK);
    CHECK(std::memcmp(serial.data(), parallel.data(), serial.size()) == 0);
    for (int32_t n : {2, 5, 64}) {
      const relattn_threads std_threads{StdThreadsParallelFor, nullptr, n};
      REQUIRE(c.Run(&parallel, &std_threads) == RELATTN_OK);
      CHECK(std::memcmp(serial.data(), parallel.data(), serial.size()) == 0);
    }
  }
  pthreadpool_destroy(pool);
}

// Work items are split for more workers (FitWorkItemsToThreads); the split
// must never move a sub-tile boundary. Head dims x GQA ratios cover every
// query-chunk capacity (heads per item x (d + dv) floats of state: 256, 192,
// 128 and 64 queries) and so every halving.
TEST_CASE("threads: bit-identical over head dims x GQA ratios, causal ALiBi form") {
  ForEachTarget([&](int64_t target) {
    for (int32_t d : {16, 80, 160}) {
      for (int32_t group : {1, 2, 3}) {
        CaseSpec spec;
        spec.seed = 900 + d + group;
        spec.n_q = spec.n_kv = 100;
        spec.n_heads = group;
        spec.n_kv_heads = 1;
        spec.head_dim = d;
        spec.scheme = RELATTN_BIAS_ALIBI;
        spec.alibi_causal = true;
        spec.causal = true;
        Case c(spec);
        std::vector<uint8_t> serial, parallel;
        REQUIRE(c.Run(&serial) == RELATTN_OK);
        for (int32_t n : {2, 3}) {
          const relattn_threads threads{StdThreadsParallelFor, nullptr, n};
          REQUIRE(c.Run(&parallel, &threads) == RELATTN_OK);
          INFO(TargetNameOf(target), " ", spec.Name(), " threads ", n);
          CHECK(std::memcmp(serial.data(), parallel.data(), serial.size()) == 0);
        }
      }
    }
  });
}

TEST_CASE("workspace size does not depend on n_q or n_kv") {
  for (int32_t heads : {1, 32}) {
    CaseSpec spec;
    spec.n_heads = heads;
    spec.n_kv_heads = heads;
    spec.head_dim = 128;
    spec.scheme = RELATTN_BIAS_T5;
    Case c(spec);
    size_t sizes[3];
    int i = 0;
    // A 32-bit address space (armv7) holds at most ~10^4 such tokens.
    constexpr bool k64 = sizeof(uintptr_t) >= 8;
    const int64_t ns[] = {1000, k64 ? 1'000'000 : 3000, k64 ? 1'000'000'000'000 : 10'000};
    for (int64_t n : ns) {
      c.desc().n_kv = n;  // the size query reads no tensor data
      c.desc().n_q = n;
      // Not written: any aligned address whose range misses the inputs': the
      // start of the address space's top quarter.
      c.desc().o.data = reinterpret_cast<void*>(uintptr_t{3} << (8 * sizeof(uintptr_t) - 2));
      REQUIRE(relattn_attention_workspace_size(&c.desc(), 1, &sizes[i]) == RELATTN_OK);
      ++i;
    }
    CHECK(sizes[0] == sizes[1]);
    CHECK(sizes[1] == sizes[2]);
    MESSAGE("workspace bytes, ", heads, " heads, d = 128, T5 32/128, 1 thread: ", sizes[0]);
  }
}

}  // namespace
}  // namespace relattn_test
