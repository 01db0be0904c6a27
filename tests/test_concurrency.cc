// Many threads calling the library at once, each with its own workspace and
// KV cache, get exactly the results of serial calls (run under
// ThreadSanitizer in CI too).
#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "tests/attention_case.h"

namespace relattn_test {
namespace {

TEST_CASE("concurrent calls with separate workspaces equal serial calls") {
  std::vector<CaseSpec> specs;
  for (int i = 0; i < 8; ++i) {
    CaseSpec spec;
    spec.seed = 300 + i;
    spec.n_q = i % 2 ? 3 : 50;  // decode and prefill pipelines
    spec.n_kv = 2500;           // decode splits the keys
    spec.q_start = 2500 - spec.n_q;
    spec.n_heads = 4;
    spec.n_kv_heads = 2;
    spec.head_dim = 16;
    spec.causal = i % 3 != 0;
    spec.scheme = relattn_bias_kind(i % 4);
    specs.push_back(spec);
  }
  std::vector<std::vector<uint8_t>> serial(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    Case c(specs[i]);
    REQUIRE(c.Run(&serial[i]) == RELATTN_OK);
  }
  std::vector<std::vector<uint8_t>> concurrent(specs.size());
  std::vector<relattn_status> status(specs.size(), RELATTN_OK);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < specs.size(); ++i) {
    threads.emplace_back([&, i] {
      Case c(specs[i]);
      for (int rep = 0; rep < 3 && status[i] == RELATTN_OK; ++rep) {
        status[i] = c.Run(&concurrent[i]);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < specs.size(); ++i) {
    CHECK(status[i] == RELATTN_OK);
    CHECK(concurrent[i] == serial[i]);
  }
}

TEST_CASE("the library's workers share work items and split states race-free") {
  for (int64_t n_q : {int64_t(3), int64_t(200)}) {  // split decode, prefill
    CaseSpec spec;
    spec.n_q = n_q;
    spec.n_kv = 5000;
    spec.q_start = 5000 - n_q;
    spec.n_heads = 4;
    spec.n_kv_heads = 1;
    spec.head_dim = 16;
    spec.causal = true;
    spec.scheme = RELATTN_BIAS_ALIBI;
    Case c(spec);
    std::vector<uint8_t> serial, parallel;
    REQUIRE(c.Run(&serial) == RELATTN_OK);
    const relattn_threads threads{StdThreadsParallelFor, nullptr, 3};
    REQUIRE(c.Run(&parallel, &threads) == RELATTN_OK);
    CHECK(parallel == serial);
  }
}

// parallel_for implementations that break the contract (run each index in
// [0, n_tasks) once).
void RunsNothing(void*, size_t, relattn_task_fn, void*) {}
void RunsOneIndexTooMany(void*, size_t n_tasks, relattn_task_fn task, void* arg) {
  for (size_t i = 0; i <= n_tasks; ++i) task(arg, i);
}
void RunsTaskZeroTwiceConcurrently(void*, size_t n_tasks, relattn_task_fn task, void* arg) {
  std::vector<std::thread> threads;
  threads.emplace_back([&] { task(arg, 0); });
  for (size_t i = 0; i < n_tasks; ++i) threads.emplace_back([&, i] { task(arg, i); });
  for (std::thread& t : threads) t.join();
}
void SkipsTheLastIndex(void*, size_t n_tasks, relattn_task_fn task, void* arg) {
  for (size_t i = 0; i + 1 < n_tasks; ++i) task(arg, i);
}

TEST_CASE("a parallel_for that breaks its contract is an error, not a wrong output") {
  for (int64_t n_q : {int64_t(3), int64_t(200)}) {  // split decode, prefill
    CaseSpec spec;
    spec.n_q = n_q;
    spec.n_kv = 5000;
    spec.q_start = 5000 - n_q;
    spec.n_heads = 4;
    spec.n_kv_heads = 1;
    spec.head_dim = 16;
    spec.causal = true;
    Case c(spec);
    for (relattn_parallel_for_fn bad :
         {RunsNothing, RunsOneIndexTooMany, RunsTaskZeroTwiceConcurrently, SkipsTheLastIndex}) {
      const relattn_threads threads{bad, nullptr, 3};
      std::vector<uint8_t> out;
      CHECK(c.Run(&out, &threads) == RELATTN_ERR_BAD_THREADS);
      CHECK(std::string(relattn_last_error()).find("threads->parallel_for ran") == 0);
      if (bad == RunsNothing) CHECK(out == std::vector<uint8_t>(out.size(), 0xff));  // untouched
    }
    std::vector<uint8_t> out;
    const relattn_threads good{StdThreadsParallelFor, nullptr, 3};
    CHECK(c.Run(&out, &good) == RELATTN_OK);
  }
}

}  // namespace
}  // namespace relattn_test
