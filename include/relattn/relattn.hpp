// Thin C++17 layer over relattn.h: tensor views for the two common layouts,
// an RAII workspace, and a status wrapper. Header-only; everything here
// forwards to the C API, and nothing throws.
#ifndef RELATTN_RELATTN_HPP_
#define RELATTN_RELATTN_HPP_

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "relattn/relattn.h"

namespace relattn {

// A status with its message captured at the failing call.
struct Status {
  relattn_status code = RELATTN_OK;
  std::string message;
  bool ok() const { return code == RELATTN_OK; }
  explicit operator bool() const { return ok(); }
  // "workspace too small: workspace_bytes = 10: must be >= 4096 ..."
  std::string ToString() const {
    return ok() ? "ok" : std::string(relattn_status_string(code)) + ": " + message;
  }
};

inline Status MakeStatus(relattn_status code) {
  return code == RELATTN_OK ? Status{} : Status{code, relattn_last_error()};
}

// View of a [tokens][heads][dim] buffer (token-major, the usual QKV layout).
inline relattn_tensor TokensHeadsDim(const void* data, relattn_dtype dtype, int32_t heads,
                                     int32_t dim) {
  return relattn_tensor{data, dtype, int64_t(heads) * dim, dim, nullptr, 0, 0};
}

// View of a [heads][tokens][dim] buffer (head-major).
inline relattn_tensor HeadsTokensDim(const void* data, relattn_dtype dtype, int64_t tokens,
                                     int32_t dim) {
  return relattn_tensor{data, dtype, dim, tokens * dim, nullptr, 0, 0};
}

inline relattn_output OutputTokensHeadsDim(void* data, relattn_dtype dtype, int32_t heads,
                                           int32_t dim) {
  return relattn_output{data, dtype, int64_t(heads) * dim, dim};
}

inline relattn_output OutputHeadsTokensDim(void* data, relattn_dtype dtype, int64_t tokens,
                                           int32_t dim) {
  return relattn_output{data, dtype, dim, tokens * dim};
}

// Owns an aligned workspace that grows to what a descriptor needs. Sizing
// allocates; relattn_attention itself never does.
class Workspace {
 public:
  Workspace() = default;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  Workspace(Workspace&& other) noexcept : data_(other.data_), bytes_(other.bytes_) {
    other.data_ = nullptr;
    other.bytes_ = 0;
  }
  ~Workspace() { std::free(data_); }

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

  // Makes the workspace at least as large as desc needs with n_threads.
  Status Reserve(const relattn_attention_desc& desc, int32_t n_threads = 1) {
    size_t needed = 0;
    const relattn_status s = relattn_attention_workspace_size(&desc, n_threads, &needed);
    if (s != RELATTN_OK) return MakeStatus(s);
    if (needed <= bytes_) return {};
    const size_t rounded = (needed + RELATTN_WORKSPACE_ALIGNMENT - 1) /
                           RELATTN_WORKSPACE_ALIGNMENT * RELATTN_WORKSPACE_ALIGNMENT;
    void* grown = std::aligned_alloc(RELATTN_WORKSPACE_ALIGNMENT, rounded);
    if (!grown) return Status{RELATTN_ERR_WORKSPACE_TOO_SMALL, "out of memory"};
    std::free(data_);
    data_ = grown;
    bytes_ = rounded;
    return {};
  }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Reserves workspace for desc and computes it; threads may be null.
inline Status Attention(const relattn_attention_desc& desc, Workspace& workspace,
                        const relattn_threads* threads = nullptr) {
  Status s = workspace.Reserve(desc, threads ? threads->n_threads : 1);
  if (!s) return s;
  return MakeStatus(relattn_attention(&desc, workspace.data(), workspace.bytes(), threads));
}

}  // namespace relattn

#endif  // RELATTN_RELATTN_HPP_
