// The KV cache's append conversion: one token's K and V rows into a slot.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "lib/api/kv_cache.h"
#include "lib/common/dtype.h"
#include "lib/common/f16.h"
#include "lib/common/float_element.h"
#include "lib/common/q4.h"
#include "lib/common/quantize_row.h"

namespace relattn {
namespace {

float MaxAbs(const float* row, int64_t dim) {
  float m = 0.0f;
  for (int64_t e = 0; e < dim; ++e) m = std::max(m, std::fabs(row[e]));
  return m;
}

// Stores row[0, dim) as dtype (F32, F16 or BF16) at dst + offset + e * step (elements).
void StoreElements(const float* row, int64_t dim, relattn_dtype dtype, void* dst, int64_t offset,
                   int64_t step) {
  for (int64_t e = 0; e < dim; ++e) StoreFloatElement(row[e], dst, dtype, offset + e * step);
}

// Zeroes the key group of every head that slot opens when it was never
// written: the group's other slots are read (as whole vectors, their scores
// then hidden) before they hold tokens, so they start as zeros, not stale memory.
void OpenKeyGroups(const relattn_kv_cache& c, const KvCacheView& view, int64_t slot) {
  const relattn_kv_cache_desc& d = c.desc;
  if (slot % kKeyGroup != 0 || slot < c.length || d.k_dtype == RELATTN_Q4) return;
  const int64_t head_stride = KeyGroupHeadStride(d.capacity, d.head_dim);
  const size_t group_bytes = DtypeBytes(d.k_dtype) * kKeyGroup * size_t(d.head_dim);
  for (int32_t h = 0; h < d.n_kv_heads; ++h) {
    const int64_t first = KeyGroupOffset(head_stride, h, slot, d.head_dim);
    std::memset(static_cast<char*>(view.k) + first * DtypeBytes(d.k_dtype), 0, group_bytes);
  }
}

// Stores v_row (v_head_dim floats, finite) as head h's V in `slot` (I8: with
// its row scale) and raises v_max_abs.
void StoreValueRow(relattn_kv_cache* c, const KvCacheView& view, int32_t h, int64_t slot,
                   const float* v_row) {
  const relattn_kv_cache_desc& d = c->desc;
  const int64_t row = h * d.capacity + slot;
  if (d.v_dtype == RELATTN_Q4) {
    uint8_t* dst = static_cast<uint8_t*>(view.v) + row * Q4RowBytes(d.v_head_dim);
    c->v_max_abs = std::max(c->v_max_abs, QuantizeRowQ4(v_row, d.v_head_dim, dst));
    return;
  }
  c->v_max_abs = std::max(c->v_max_abs, MaxAbs(v_row, d.v_head_dim));
  if (d.v_dtype == RELATTN_I8) {
    int8_t* dst = static_cast<int8_t*>(view.v) + row * d.v_head_dim;
    view.v_scales[row] = QuantizeRowI8(v_row, d.v_head_dim, dst);
  } else {
    StoreElements(v_row, d.v_head_dim, d.v_dtype, view.v, row * d.v_head_dim, 1);
  }
}

}  // namespace

// Row (t, h) of src as f32 into row[0, dim), rotated by rope with the
// token's angles (if rope is on), then rounded as `storage` holds it; false
// if it holds a NaN or inf (f32 beyond f16's range included; Q4: a value at
// or beyond kQ4MaxAbs, whose block scale would be infinite).
bool LoadTokenRow(const relattn_tensor& src, int64_t t, int32_t h, int64_t dim,
                  relattn_dtype storage, const RopeParams* rope, const RopeAngles& angles,
                  float* row) {
  const int64_t from = t * src.token_stride + h * src.head_stride;
  for (int64_t e = 0; e < dim; ++e) row[e] = FloatElement(src.data, src.dtype, from + e);
  if (rope && rope->on) RotateRowScalar(*rope, angles, row);
  bool finite = true;
  for (int64_t e = 0; e < dim; ++e) {
    row[e] = RoundedAs(row[e], storage);  // I8, Q4: quantised at store
    finite = finite && std::isfinite(row[e]);
    if (storage == RELATTN_Q4) finite = finite && std::fabs(row[e]) < kQ4MaxAbs;
  }
  return finite;
}

void StoreKeyRow(relattn_kv_cache* c, const KvCacheView& view, int32_t h, int64_t slot,
                 const float* k_row) {
  const relattn_kv_cache_desc& d = c->desc;
  if (d.k_dtype == RELATTN_Q4) {
    uint8_t* dst = static_cast<uint8_t*>(view.k) + (h * d.capacity + slot) * Q4RowBytes(d.head_dim);
    c->k_max_abs = std::max(c->k_max_abs, QuantizeRowQ4(k_row, d.head_dim, dst));
    return;
  }
  c->k_max_abs = std::max(c->k_max_abs, MaxAbs(k_row, d.head_dim));
  const int64_t k_offset =
      KeyGroupOffset(KeyGroupHeadStride(d.capacity, d.head_dim), h, slot, d.head_dim) +
      slot % kKeyGroup;
  if (d.k_dtype == RELATTN_I8) {
    int8_t q[RELATTN_MAX_HEAD_DIM];
    view.k_scales[h * d.capacity + slot] = QuantizeRowI8(k_row, d.head_dim, q);
    int8_t* k_bytes = static_cast<int8_t*>(view.k) + k_offset;
    for (int32_t e = 0; e < d.head_dim; ++e) k_bytes[e * kKeyGroup] = q[e];
  } else {
    StoreElements(k_row, d.head_dim, d.k_dtype, view.k, k_offset, kKeyGroup);
  }
}

void StoreToken(relattn_kv_cache* c, const KvCacheView& view, const RopeParams& rope,
                const relattn_tensor& k, const relattn_tensor& v, int64_t t, int64_t p,
                int64_t slot) {
  const relattn_kv_cache_desc& d = c->desc;
  float k_row[RELATTN_MAX_HEAD_DIM], v_row[RELATTN_MAX_HEAD_DIM];
  OpenKeyGroups(*c, view, slot);
  RopeAngles angles;
  if (rope.on) RopeAnglesAt(rope, p, &angles);
  for (int32_t h = 0; h < d.n_kv_heads; ++h) {
    const bool k_finite = LoadTokenRow(k, t, h, d.head_dim, d.k_dtype, &rope, angles, k_row);
    const bool finite =
        LoadTokenRow(v, t, h, d.v_head_dim, d.v_dtype, nullptr, angles, v_row) && k_finite;
    if (!finite) {
      std::fill(k_row, k_row + d.head_dim, 0.0f);
      std::fill(v_row, v_row + d.v_head_dim, 0.0f);
    }
    view.bad[h * d.capacity + slot] = finite ? 0 : 1;
    StoreKeyRow(c, view, h, slot, k_row);
    StoreValueRow(c, view, h, slot, v_row);
  }
  view.positions[slot] = p;
}

}  // namespace relattn
