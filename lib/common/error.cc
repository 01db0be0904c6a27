#include "lib/common/error.h"

#include <cstdarg>
#include <cstdio>

namespace relattn {
namespace {
// Static TLS (initial-exec) under glibc: a dlopen'ed library's dynamic TLS
// would be malloc'ed by ld.so on each thread's first call, and every call may
// fail and write here ("allocates nothing" holds for dlopen'ed use too;
// tests/test_dlopen_alloc.c). glibc keeps surplus static TLS for dlopen'ed
// libraries; these 256 bytes fit it. Bionic and musl allocate a dlopen'ed
// library's TLS without malloc, and bionic refuses initial-exec there.
#if defined(__GLIBC__)
#define RELATTN_TLS_MODEL __attribute__((tls_model("initial-exec")))
#else
#define RELATTN_TLS_MODEL
#endif
thread_local char last_error[256] RELATTN_TLS_MODEL;
}  // namespace

relattn_status Fail(relattn_status status, const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vsnprintf(last_error, sizeof(last_error), format, args);
  va_end(args);
  return status;
}

relattn_status Succeed() {
  last_error[0] = '\0';
  return RELATTN_OK;
}

}  // namespace relattn

extern "C" const char* relattn_last_error(void) { return relattn::last_error; }

extern "C" const char* relattn_status_string(relattn_status status) {
  switch (status) {
    case RELATTN_OK: return "ok";
    case RELATTN_ERR_NULL_ARGUMENT: return "null argument";
    case RELATTN_ERR_BAD_DIMENSION: return "dimension out of range";
    case RELATTN_ERR_BAD_GQA_RATIO: return "n_heads is not a multiple of n_kv_heads";
    case RELATTN_ERR_BAD_STRIDE: return "bad stride";
    case RELATTN_ERR_BAD_DTYPE: return "bad dtype";
    case RELATTN_ERR_BAD_SCALE: return "bad softmax scale";
    case RELATTN_ERR_BAD_BIAS_KIND: return "unknown position scheme";
    case RELATTN_ERR_BAD_BIAS_PARAMETER: return "bad position scheme parameter";
    case RELATTN_ERR_BAD_MASK: return "bad mask";
    case RELATTN_ERR_POSITION_OVERFLOW:
      return "position out of range (a difference overflows int64, or beyond +-2^53 with RoPE)";
    case RELATTN_ERR_WORKSPACE_TOO_SMALL: return "workspace too small";
    case RELATTN_ERR_BAD_THREADS: return "bad threads";
    case RELATTN_ERR_UNSUPPORTED: return "unsupported";
    case RELATTN_ERR_BAD_ALIGNMENT: return "misaligned pointer";
    case RELATTN_ERR_CACHE_FULL: return "KV cache full";
    case RELATTN_ERR_OVERLAP: return "output overlaps an input";
    case RELATTN_ERR_NON_FINITE: return "non-finite value to quantise";
    case RELATTN_ERR_BAD_CACHE: return "not an initialised KV cache";
    case RELATTN_ERR_BUSY: return "KV cache busy with another append";
    case RELATTN_ERR_VALUE_RANGE: return "values too large for f32 scores";
    case RELATTN_ERR_BAD_ROPE: return "bad RoPE parameter";
    case RELATTN_ERR_BAD_SOFTCAP: return "bad logit soft-cap";
    case RELATTN_ERR_BAD_SINK: return "bad attention sink logit";
    case RELATTN_ERR_BAD_SINK_TOKENS: return "bad KV cache sink tokens";
    case RELATTN_STATUS_MIN_ENUM:
    case RELATTN_STATUS_MAX_ENUM: break;
  }
  return "unknown status";
}
