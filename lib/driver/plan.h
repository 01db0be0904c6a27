// The validated, resolved form of one relattn_attention_desc: what the kernel
// reads. Built by BuildPlan() (lib/api/validate.cc); immutable during a call.
#ifndef RELATTN_LIB_DRIVER_PLAN_H_
#define RELATTN_LIB_DRIVER_PLAN_H_

#include <cstddef>
#include <cstdint>

#include "relattn/relattn.h"

namespace relattn {

// Tile shape shared by every target. kBlockKeys keys per key block (a multiple
// of every vector width used: the kernels cap vectors at kMaxLanes floats);
// kBlockQueries queries per work item. Head dims are padded to kMaxLanes so
// rows are whole vectors.
inline constexpr int64_t kMaxLanes = 16;
inline constexpr int64_t kBlockKeys = 64;
inline constexpr int64_t kBlockQueries = 16;

inline constexpr int64_t RoundUp(int64_t x, int64_t multiple) {
  return (x + multiple - 1) / multiple * multiple;
}

// A strided input tensor resolved to element offsets (elements, not bytes).
struct TensorRef {
  const void* data;
  relattn_dtype dtype;
  int64_t token_stride;
  int64_t head_stride;
};

struct PositionsRef {
  const int64_t* positions;  // NULL: token t is at start + t
  int64_t start;
  int64_t At(int64_t t) const { return positions ? positions[t] : start + t; }
};

enum class BiasKind { kNone, kAlibi, kTable };

// Per-work-item scratch, in floats, each region 64-byte aligned. Sizes depend on
// head dims and the bias table only, never on n_q or n_kv.
struct WorkspaceLayout {
  size_t q_tile;      // kBlockQueries x d_pad: queries pre-scaled to the log2 domain
  size_t kt_tile;     // d x kBlockKeys: keys transposed
  size_t v_tile;      // kBlockKeys x dv_pad
  size_t s_tile;      // kBlockQueries x kBlockKeys: scores, then probabilities
  size_t o_acc;       // kBlockQueries x dv_pad: unnormalised output
  size_t row_max;     // kBlockQueries: running max (log2 domain)
  size_t row_sum;     // kBlockQueries: running sum of probabilities
  size_t bias_table;  // table_len: the padded bias table of one head
  size_t k_row;       // d_pad: one key row being transposed
  size_t floats_per_worker;
};

struct Plan {
  int64_t n_q, n_kv;
  int64_t n_valid_kv;  // keys j >= n_valid_kv are hidden; 0..n_kv
  int32_t n_heads, n_kv_heads, group;  // group = n_heads / n_kv_heads
  int32_t d, dv;
  int64_t d_pad, dv_pad;  // d, dv rounded up to kMaxLanes
  TensorRef q, k, v;
  void* o;
  relattn_dtype o_dtype;
  int64_t o_token_stride, o_head_stride;
  PositionsRef q_pos, k_pos;
  int64_t k_min, k_max;  // range of all n_kv key positions
  float scale_log2;  // scale * log2(e): scores live in the log2 domain

  // Masks.
  bool causal;
  int64_t window;  // 0: none

  // Bias, in log2 units (multiplied by log2(e)).
  BiasKind bias_kind;
  const relattn_attention_desc* desc;  // for per-head bias parameters
  // Table schemes: bias(r) for r = key - query is constant for r <= -table_radius
  // and for r >= table_radius; the padded table stores r in
  // [-table_radius, table_radius] with kBlockKeys edge copies on each side.
  int64_t table_radius;
  int64_t table_len;

  int64_t n_q_blocks;
  int64_t n_work_items;  // n_heads * n_q_blocks
  WorkspaceLayout ws;
};

// Fills out the per-head ALiBi slope in log2 units (multiplied by log2(e)).
float AlibiSlopeLog2(const Plan& plan, int32_t head);

// Fills table[0, table_len) for head: table[x] = log2(e) * bias(r) with
// r = clamp(x - kBlockKeys - table_radius, -table_radius, table_radius).
void FillBiasTable(const Plan& plan, int32_t head, float* table);

}  // namespace relattn

#endif  // RELATTN_LIB_DRIVER_PLAN_H_
