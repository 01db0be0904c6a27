// The compute call allocates nothing: malloc and friends are interposed (glibc
// lets the executable define them; they forward to __libc_*) and counted
// while relattn_attention runs, for prefill, decode with key splits, every
// scheme, and a KV-cache append + decode step.
#include <doctest/doctest.h>

#include <atomic>
#include <cstddef>
#include <vector>

#include "tests/attention_case.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RELATTN_COUNT_ALLOCATIONS 0  // the sanitizers own malloc
#else
#define RELATTN_COUNT_ALLOCATIONS 1
#endif

namespace {
std::atomic<bool> counting{false};
std::atomic<int> allocations{0};
}  // namespace

#if RELATTN_COUNT_ALLOCATIONS
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void* malloc(size_t n) {
  if (counting) ++allocations;
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t size) {
  if (counting) ++allocations;
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t n) {
  if (counting) ++allocations;
  return __libc_realloc(p, n);
}
void* memalign(size_t alignment, size_t n) {
  if (counting) ++allocations;
  return __libc_memalign(alignment, n);
}
void* aligned_alloc(size_t alignment, size_t n) {
  if (counting) ++allocations;
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** p, size_t alignment, size_t n) {
  if (counting) ++allocations;
  *p = __libc_memalign(alignment, n);
  return *p ? 0 : 12;
}
}
#endif

namespace relattn_test {
namespace {

TEST_CASE("relattn_attention allocates nothing") {
  if (!RELATTN_COUNT_ALLOCATIONS) {
    MESSAGE("skipped under a sanitizer, which owns malloc");
    return;
  }
  // The counter works: an allocation while counting is seen.
  counting = true;
  std::vector<int>* probe = new std::vector<int>(10);
  counting = false;
  delete probe;
  REQUIRE(allocations.exchange(0) >= 1);

  for (int64_t n_q : {int64_t(100), int64_t(2)}) {
    for (int scheme = 0; scheme < 4; ++scheme) {
      CaseSpec spec;
      spec.n_q = n_q;
      spec.n_kv = 5000;  // decode splits the keys
      spec.q_start = 5000 - n_q;
      spec.n_heads = 4;
      spec.n_kv_heads = 2;
      spec.head_dim = 32;
      spec.causal = true;
      spec.scheme = relattn_bias_kind(scheme);
      spec.position_arrays = scheme == 3 ? 1 : 0;
      Case c(spec);
      std::vector<uint8_t> out(c.out_elems() * 4);
      c.desc().o.data = out.data();
      size_t bytes = 0;
      REQUIRE(relattn_attention_workspace_size(&c.desc(), 1, &bytes) == RELATTN_OK);
      std::vector<float> ws(bytes / 4 + 16);
      void* aligned =
          reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws.data()) + 63) & ~uintptr_t{63});
      counting = true;
      const relattn_status s = relattn_attention(&c.desc(), aligned, bytes, nullptr);
      counting = false;
      REQUIRE(s == RELATTN_OK);
      CHECK(allocations.exchange(0) == 0);
    }
  }
}

}  // namespace
}  // namespace relattn_test
