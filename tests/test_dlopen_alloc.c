/* "The compute call allocates nothing", as Python (ctypes) and JNI load the
 * library: librelattn.so is dlopen'ed, malloc and friends are interposed
 * (the executable's definitions come first in the global scope) and counted
 * while failing and succeeding calls run, first on the thread that opened
 * the library, then on a thread started after it. A thread-local in a
 * dlopen'ed library would be allocated by ld.so on its first use per thread.
 * Usage: test_dlopen_alloc path/to/librelattn.so */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relattn/relattn.h"

void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);

static atomic_int counting, allocations;

void* malloc(size_t n) {
  if (atomic_load(&counting)) atomic_fetch_add(&allocations, 1);
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t size) {
  if (atomic_load(&counting)) atomic_fetch_add(&allocations, 1);
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t n) {
  if (atomic_load(&counting)) atomic_fetch_add(&allocations, 1);
  return __libc_realloc(p, n);
}
void* memalign(size_t alignment, size_t n) {
  if (atomic_load(&counting)) atomic_fetch_add(&allocations, 1);
  return __libc_memalign(alignment, n);
}
void* aligned_alloc(size_t alignment, size_t n) {
  if (atomic_load(&counting)) atomic_fetch_add(&allocations, 1);
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** p, size_t alignment, size_t n) {
  if (atomic_load(&counting)) atomic_fetch_add(&allocations, 1);
  *p = __libc_memalign(alignment, n);
  return *p ? 0 : 12;
}

typedef void (*desc_init_fn)(relattn_attention_desc*);
typedef relattn_status (*attention_fn)(const relattn_attention_desc*, void*, size_t,
                                       const relattn_threads*);
typedef relattn_status (*workspace_size_fn)(const relattn_attention_desc*, int32_t, size_t*);
typedef const char* (*last_error_fn)(void);

static struct {
  desc_init_fn desc_init;
  attention_fn attention;
  workspace_size_fn workspace_size;
  last_error_fn last_error;
} api;

enum { kTokens = 8, kHeads = 2, kDim = 16 };
static float q[kTokens * kHeads * kDim], o[kTokens * kHeads * kDim];
static void* workspace;
static size_t workspace_bytes;

static void FillDesc(relattn_attention_desc* d) {
  api.desc_init(d);
  d->n_q = d->n_kv = kTokens;
  d->n_heads = d->n_kv_heads = kHeads;
  d->head_dim = kDim;
  const relattn_tensor t = {q, RELATTN_F32, kHeads * kDim, kDim, NULL, 0, 0};
  d->q = d->k = d->v = t;
  d->o.data = o;
  d->o.dtype = RELATTN_F32;
  d->o.token_stride = kHeads * kDim;
  d->o.head_stride = kDim;
  d->mask.causal = 1;
}

/* Calls that fail (last_error written) and one that succeeds, counted; returns
 * the allocations made, or -1 if a call did not return what it should. */
static void* CountedCalls(void* unused) {
  (void)unused;
  relattn_attention_desc d;
  FillDesc(&d);
  relattn_attention_desc bad = d;
  bad.head_dim = 300;
  atomic_store(&allocations, 0);
  atomic_store(&counting, 1);
  const relattn_status failed = api.attention(&bad, workspace, workspace_bytes, NULL);
  const int message = strstr(api.last_error(), "head_dim") != NULL;
  const relattn_status null_desc = api.attention(NULL, workspace, workspace_bytes, NULL);
  const relattn_status ok = api.attention(&d, workspace, workspace_bytes, NULL);
  const int cleared = api.last_error()[0] == '\0';
  atomic_store(&counting, 0);
  const int right = failed == RELATTN_ERR_BAD_DIMENSION && message &&
                    null_desc == RELATTN_ERR_NULL_ARGUMENT && ok == RELATTN_OK && cleared;
  return (void*)(long)(right ? atomic_load(&allocations) : -1);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s path/to/librelattn.so\n", argv[0]);
    return 2;
  }
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
    return 1;
  }
  api.desc_init = (desc_init_fn)dlsym(lib, "relattn_attention_desc_init");
  api.attention = (attention_fn)dlsym(lib, "relattn_attention");
  api.workspace_size = (workspace_size_fn)dlsym(lib, "relattn_attention_workspace_size");
  api.last_error = (last_error_fn)dlsym(lib, "relattn_last_error");
  if (!api.desc_init || !api.attention || !api.workspace_size || !api.last_error) {
    fprintf(stderr, "dlsym: %s\n", dlerror());
    return 1;
  }
  for (int i = 0; i < kTokens * kHeads * kDim; ++i) q[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
  relattn_attention_desc d;
  FillDesc(&d);
  if (api.workspace_size(&d, 1, &workspace_bytes) != RELATTN_OK ||
      posix_memalign(&workspace, RELATTN_WORKSPACE_ALIGNMENT, workspace_bytes) != 0) {
    fprintf(stderr, "workspace: %s\n", api.last_error());
    return 1;
  }
  int failures = 0;
  const long on_main = (long)CountedCalls(NULL);
  pthread_t thread;
  void* result = NULL;
  if (pthread_create(&thread, NULL, CountedCalls, NULL) != 0 || pthread_join(thread, &result)) {
    fprintf(stderr, "pthread_create failed\n");
    return 1;
  }
  const long on_new_thread = (long)result;
  const long counts[2] = {on_main, on_new_thread};
  const char* const where[2] = {"the thread that dlopen'ed the library", "a new thread"};
  for (int i = 0; i < 2; ++i) {
    if (counts[i] != 0) {
      fprintf(stderr, "FAILED on %s: %s\n", where[i],
              counts[i] < 0 ? "a call returned the wrong status or message" : "allocations");
      if (counts[i] > 0) fprintf(stderr, "  %ld allocation(s) during the calls\n", counts[i]);
      ++failures;
    }
  }
  free(workspace);
  dlclose(lib);
  if (!failures) printf("test_dlopen_alloc: no allocation in 6 calls on 2 threads\n");
  return failures ? 1 : 0;
}
