// The peer: XNNPACK's unfused attention, the best a user of Debian 12's
// XNNPACK snapshot (2022-02, no attention or batch-matmul operator) can
// assemble. Per KV head g, on rows of queries:
//   S = Q_g (scale K_g)^T   fully_connected_nc_f32, K_g [n_kv][d] as the weights
//   P = softmax(S)          softmax_nc_f32 over n_kv channels, in place
//   O_g = P V_g             fully_connected_nc_f32, V_g [n_kv][d] as [input][output]
//                           weights (XNN_FLAG_TRANSPOSE_WEIGHTS), no copy of V at run time
// Operators are created once (that packs K and V: create_seconds(), reported
// apart) and the score scratch is allocated once; Run() allocates nothing.
//
// What it does not do, and why that matters when reading the ratios:
//  - f32 only: the snapshot has no f16 softmax, and its f16 fully_connected is
//    5x slower than f32 on x86 and rounds its accumulator to f16.
//  - no bias: a relative-position bias would be one more n_q x n_kv add
//    (favours XNNPACK);
//  - no mask: it always computes all n_q x n_kv scores, so a causal figure is
//    the time of the full unmasked attention.
#ifndef RELATTN_BENCH_PEER_XNNPACK_H_
#define RELATTN_BENCH_PEER_XNNPACK_H_

#include <pthreadpool.h>
#include <xnnpack.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bench/cases.h"

namespace relattn_bench {

// xnn_initialize, once per process; false (with the reason) if it fails.
bool InitializeXnnpack(std::string* error);

class XnnpackAttention {
 public:
  XnnpackAttention() = default;
  XnnpackAttention(const XnnpackAttention&) = delete;
  XnnpackAttention& operator=(const XnnpackAttention&) = delete;
  ~XnnpackAttention();

  // Creates the operators for `shape`, reading f32 q [n_q][heads][d] and
  // k, v [n_kv][kv_heads][d] and writing out [n_q][heads][d] in Run().
  // Supports heads == kv_heads (one row per query) and n_q == 1 with grouped
  // heads (the group's query heads are the rows). The softmax scale is
  // 1/sqrt(d), folded into the packed K. Queries are processed in blocks of
  // rows so that S stays in cache between the three operators: blocks whose
  // scores take about `scratch_bytes`, or with scratch_bytes = 0 the fastest
  // of 256 KiB, 1, 4 and 16 MiB, timed on one head (the peer's best shot on
  // this machine; not part of create_seconds()).
  bool Create(const Shape& shape, const float* q, const float* k, const float* v, float* out,
              size_t scratch_bytes, std::string* error);

  // Computes every head's output with the pool's threads (NULL: this thread).
  bool Run(pthreadpool_t pool, std::string* error);

  double create_seconds() const { return create_seconds_; }
  int64_t rows_per_block() const { return rows_per_block_; }

 private:
  struct Head {
    xnn_operator_t qk = nullptr;  // S = Q K^T
    xnn_operator_t pv = nullptr;  // O = P V
    const float* q = nullptr;     // first row of this head's queries
    float* out = nullptr;         // first row of this head's output
  };

  bool RunHead(const Head& h, pthreadpool_t pool, std::string* error);
  // Sets rows_per_block_ to the fastest candidate.
  bool Tune(const std::vector<int64_t>& candidates, std::string* error);

  std::vector<Head> heads_;
  xnn_operator_t softmax_ = nullptr;
  std::vector<float> scores_;  // rows_per_block_ x n_kv
  int64_t rows_ = 0;           // query rows per head
  int64_t rows_per_block_ = 0;
  int64_t q_stride_ = 0, out_stride_ = 0;  // elements between rows
  double create_seconds_ = 0.0;
};

}  // namespace relattn_bench

#endif  // RELATTN_BENCH_PEER_XNNPACK_H_
