// The error bounds relattn documents (README "Error bounds"): the one source
// the tests, the fuzzer and the README's figures use. Absolute, against the
// fp64 reference (lib/reference/reference.h), inputs in [-1, 1], outputs
// convex combinations of V rows (|o| <= 1).
#ifndef RELATTN_LIB_REFERENCE_BOUNDS_H_
#define RELATTN_LIB_REFERENCE_BOUNDS_H_

#include <cmath>

#include "relattn/relattn.h"

namespace relattn {
namespace bounds {

// The kernel's own arithmetic, the reference reading the same stored values
// (f16 -> f32 exact; int8 rows with their scales): f32 dot products of up to
// 256 terms, f32 bias tables, exp2 within 2 ulp, sums over up to 1000 keys.
inline constexpr double kF32Output = 5e-6;  // measured worst 1.2e-6
// f16 output: half an f16 ulp below 1 (2^-12) on top of the f32 error.
inline constexpr double kF16Output = 2.5e-4;
// bf16 output: half a bf16 ulp below 1 (2^-9) on top of the f32 error.
inline constexpr double kBF16Output = 2.5e-3;
// precision FAST with bf16 inputs: probabilities rounded to bf16 for P.V
// (2^-9 relative each, so 2^-9 of max|v| on the output) on top of the f32 error.
inline constexpr double kBF16FastOutput = 4e-3;
// precision FAST with f16 Q and K on the bf16 kernel: each of q, k rounded to
// bf16 (2^-9 relative) moves a score by at most 2^-8 * |scale| * sum_e |q_e
// k_e| =: delta (natural units); perturbing every score by <= delta moves the
// softmax weights by at most e^(2 delta) - 1 in total, so the output by that
// times max|v|; f16 V rounded to bf16 adds 2^-9 max|v| to kBF16FastOutput.
// max_qk: the largest |scale| * sum_e |q_e k_e| over the pairs.
inline double F16FastOutput(double max_qk, double max_v) {
  return (std::exp(2.0 * 0x1p-8 * max_qk) - 1.0) * max_v + 0x1p-9 * max_v + kBF16FastOutput;
}
inline constexpr double Output(relattn_dtype out) {
  return out == RELATTN_F16 ? kF16Output : out == RELATTN_BF16 ? kBF16Output : kF32Output;
}

// int8 Q and K against the original float inputs (the quantisation error).
inline constexpr double kInt8Quantised = 5e-3;  // measured <= 2.1e-3 (d 256, Q and K)
// ... with every 8th K channel 20x larger (outlier channels).
inline constexpr double kInt8QuantisedOutliers = 6e-2;  // measured <= 3.1e-2 (d 128)
// The log-sum-exp output (desc.lse, relattn_merge), per unit of 1 + |lse|:
// the scores' f32 error and the f32 running sum, taken to ln in double.
inline constexpr double kLse = 4e-6;

// A KV cache with f16 K and RoPE rounds the rotated keys.
inline constexpr double kF16RopeCache = 1e-3;  // measured 1.7e-4

}  // namespace bounds
}  // namespace relattn

#endif  // RELATTN_LIB_REFERENCE_BOUNDS_H_
