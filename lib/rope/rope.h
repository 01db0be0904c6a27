// Rotary position embedding (RoPE): the parameters resolved from a
// relattn_rope, the angles, and the tables the kernels rotate rows with.
//
// Contract (relattn.h): pair i of a row at position p is rotated by the angle
// p * theta_i and scaled by the attention factor, theta_i from the scaling
// family (rope_scaling.h) divided by linear_scale, in double. Angles are reduced modulo 2 pi in
// double-double from the exact int64 position, so for |p| <= kRopeMaxPosition the cos / sin the
// kernels use are within a few f32 ulps of the exact values.
#ifndef RELATTN_LIB_ROPE_ROPE_H_
#define RELATTN_LIB_ROPE_ROPE_H_

#include <cstdint>

#include "relattn/relattn.h"

namespace relattn {

// Positions beyond +-2^53 are not exact in double: rejected with rope on.
inline constexpr int64_t kRopeMaxPosition = int64_t{1} << 53;
inline constexpr int32_t kRopeMaxPairs = RELATTN_MAX_HEAD_DIM / 2;

struct RopeParams {
  bool on;
  bool interleaved;         // pairs (2i, 2i + 1); else (i, i + pairs)
  int32_t pairs;            // rotary_dims / 2
  double attention_factor;  // multiplies cos and sin (1: none)
  double theta[kRopeMaxPairs];
};

// Validates rope for rows of head_dim elements and resolves its defaults.
// prefix names the struct in messages ("rope."). Statuses:
// RELATTN_ERR_BAD_ROPE naming the field (RELATTN_ERR_NULL_ARGUMENT for a
// table a scaling family needs).
relattn_status ResolveRope(const relattn_rope& rope, int32_t head_dim, const char* prefix,
                           RopeParams* out);

// True if a and b rotate alike: the same pairs, thetas and attention factor.
bool SameRope(const RopeParams& a, const RopeParams& b);

// True if p could have come from ResolveRope for rows of head_dim elements
// (a stored KV cache's copy is checked with it).
bool PlausibleRope(const RopeParams& p, int32_t head_dim);

// cos and sin of x * theta, x an integer-valued double (|x| <= 2^53), with
// the product and its reduction modulo 2 pi carried in double-double.
void RopeSinCos(double x, double theta, double* sin_out, double* cos_out);

// cos and sin of a token's angles p * theta_i (double), times the attention
// factor, computed once per token and applied to each of its heads' rows: the KV cache's append.
struct RopeAngles {
  double cos[kRopeMaxPairs], sin[kRopeMaxPairs];
};
void RopeAnglesAt(const RopeParams& rope, int64_t p, RopeAngles* out);

// Rotates row[0, 2 * pairs) in place by angles (scalar, in double).
void RotateRowScalar(const RopeParams& rope, const RopeAngles& angles, float* row);

// The kernels split a position into p = a * 4096 + b * 64 + c (a = p >> 12,
// 0 <= b, c < 64) and combine cos / sin of the three parts: c from a table
// of f32, b from a table of double (both per call), a from RopeSinCos (per
// worker, cached: it changes every 4096 positions).
inline constexpr int64_t kRopeLowSteps = 64;
// Floats of the per-call tables: [kRopeLowSteps][pairs] cos then sin of
// c * theta times the attention factor (f32), then [kRopeLowSteps][pairs] cos then sin of b * 64 *
// theta (double, two floats each).
int64_t RopeTableFloats(int32_t pairs);
// Fills the per-call tables (64-byte aligned `tables`).
void FillRopeTables(const RopeParams& rope, float* tables);

}  // namespace relattn

#endif  // RELATTN_LIB_ROPE_ROPE_H_
