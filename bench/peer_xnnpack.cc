// XNNPACK's unfused attention (see peer_xnnpack.h).
#include "bench/peer_xnnpack.h"

#include <algorithm>
#include <cmath>

#include "bench/timing.h"

namespace relattn_bench {
namespace {

bool Check(xnn_status status, const char* what, std::string* error) {
  if (status == xnn_status_success) return true;
  *error = std::string(what) + " failed: xnn_status " + std::to_string(int(status));
  return false;
}

}  // namespace

bool InitializeXnnpack(std::string* error) {
  return Check(xnn_initialize(/*allocator=*/nullptr), "xnn_initialize", error);
}

XnnpackAttention::~XnnpackAttention() {
  for (Head& h : heads_) {
    if (h.qk) xnn_delete_operator(h.qk);
    if (h.pv) xnn_delete_operator(h.pv);
  }
  if (softmax_) xnn_delete_operator(softmax_);
}

bool XnnpackAttention::Create(const Shape& shape, const float* q, const float* k, const float* v,
                              float* out, size_t scratch_bytes, std::string* error) {
  const int64_t d = shape.head_dim, m = shape.n_kv;
  const int64_t group = shape.heads / shape.kv_heads;
  if (group != 1 && shape.n_q != 1) {
    *error = "grouped heads are supported for n_q = 1 only";
    return false;
  }
  // Rows of one KV head: its n_q queries (stride heads * d), or for a single
  // query its `group` query heads, adjacent in memory (stride d).
  rows_ = group == 1 ? shape.n_q : group;
  q_stride_ = out_stride_ = group == 1 ? int64_t(shape.heads) * d : d;
  auto rows_for = [&](size_t bytes) {
    return std::clamp<int64_t>(int64_t(bytes / (sizeof(float) * size_t(m))), 1, rows_);
  };
  std::vector<int64_t> candidates;
  for (size_t bytes : {size_t{256} << 10, size_t{1} << 20, size_t{4} << 20, size_t{16} << 20}) {
    if (scratch_bytes > 0) bytes = scratch_bytes;
    if (std::find(candidates.begin(), candidates.end(), rows_for(bytes)) == candidates.end()) {
      candidates.push_back(rows_for(bytes));
    }
  }
  scores_.assign(size_t(*std::max_element(candidates.begin(), candidates.end()) * m), 0.0f);

  const double start = NowSeconds();
  const float scale = 1.0f / std::sqrt(float(d));
  const int64_t kv_stride = int64_t(shape.kv_heads) * d;
  std::vector<float> k_g(size_t(m * d)), v_g(size_t(m * d));
  heads_.resize(size_t(shape.kv_heads));
  for (int64_t g = 0; g < shape.kv_heads; ++g) {
    // Contiguous copies of this head's K (pre-scaled) and V: the operators
    // take dense weights and pack them into their own buffers.
    for (int64_t j = 0; j < m; ++j) {
      for (int64_t e = 0; e < d; ++e) {
        k_g[size_t(j * d + e)] = scale * k[j * kv_stride + g * d + e];
        v_g[size_t(j * d + e)] = v[j * kv_stride + g * d + e];
      }
    }
    Head& h = heads_[size_t(g)];
    const int64_t first_row_offset = g * group * d;  // query head g * group, token 0
    h.q = q + first_row_offset;
    h.out = out + first_row_offset;
    if (!Check(xnn_create_fully_connected_nc_f32(size_t(d), size_t(m), size_t(q_stride_), size_t(m),
                                                 k_g.data(), /*bias=*/nullptr, -INFINITY, INFINITY,
                                                 /*flags=*/0, &h.qk),
               "xnn_create_fully_connected_nc_f32 (Q K^T)", error) ||
        !Check(xnn_create_fully_connected_nc_f32(
                   size_t(m), size_t(d), size_t(m), size_t(out_stride_), v_g.data(), nullptr,
                   -INFINITY, INFINITY, XNN_FLAG_TRANSPOSE_WEIGHTS, &h.pv),
               "xnn_create_fully_connected_nc_f32 (P V)", error)) {
      return false;
    }
  }
  if (!Check(xnn_create_softmax_nc_f32(size_t(m), size_t(m), size_t(m), 0, &softmax_),
             "xnn_create_softmax_nc_f32", error)) {
    return false;
  }
  create_seconds_ = NowSeconds() - start;
  return Tune(candidates, error);
}

bool XnnpackAttention::Tune(const std::vector<int64_t>& candidates, std::string* error) {
  rows_per_block_ = candidates.front();
  if (candidates.size() == 1) return true;
  double best_s = 1e30;
  int64_t best_rows = candidates.front();
  for (int64_t rows : candidates) {
    rows_per_block_ = rows;
    double seconds = 1e30;
    for (int rep = 0; rep < 2; ++rep) {
      const double start = NowSeconds();
      if (!RunHead(heads_[0], nullptr, error)) return false;
      seconds = std::min(seconds, NowSeconds() - start);
    }
    if (seconds < best_s) {
      best_s = seconds;
      best_rows = rows;
    }
  }
  rows_per_block_ = best_rows;
  return true;
}

bool XnnpackAttention::Run(pthreadpool_t pool, std::string* error) {
  for (const Head& h : heads_) {
    if (!RunHead(h, pool, error)) return false;
  }
  return true;
}

bool XnnpackAttention::RunHead(const Head& h, pthreadpool_t pool, std::string* error) {
  float* s = scores_.data();
  for (int64_t row = 0; row < rows_; row += rows_per_block_) {
    const size_t rows = size_t(std::min(rows_per_block_, rows_ - row));
    const float* q = h.q + row * q_stride_;
    float* o = h.out + row * out_stride_;
    // Setup binds the pointers and the row count; it allocates nothing for
    // these operators.
    if (!Check(xnn_setup_fully_connected_nc_f32(h.qk, rows, q, s, pool), "setup Q K^T", error) ||
        !Check(xnn_run_operator(h.qk, pool), "run Q K^T", error) ||
        !Check(xnn_setup_softmax_nc_f32(softmax_, rows, s, s, pool), "setup softmax", error) ||
        !Check(xnn_run_operator(softmax_, pool), "run softmax", error) ||
        !Check(xnn_setup_fully_connected_nc_f32(h.pv, rows, s, o, pool), "setup P V", error) ||
        !Check(xnn_run_operator(h.pv, pool), "run P V", error)) {
      return false;
    }
  }
  return true;
}

}  // namespace relattn_bench
