// bf16 Q.K scores with AVX512-BF16 (vdpbf16ps), which Highway 1.0.3 lacks.
// Called from the AVX3 target's prefill when Q and K are both bf16 (no RoPE,
// head_dim even, the CPU has AVX512-BF16); everywhere else the portable path
// multiplies the same values in f32. The products of two bf16 values are
// exact in f32 and vdpbf16ps adds them with f32 rounding, so the scores are
// those of f32 arithmetic in another order (bf16 subnormals read as zero:
// |x| < 2^-126, below what a score can show).
#ifndef RELATTN_PORTS_X86_BF16_SCORES_H_
#define RELATTN_PORTS_X86_BF16_SCORES_H_

#include <cstdint>

namespace relattn::x86 {

// Lanes of a bf16 sub-tile: 2 vectors of 16 f32.
inline constexpr int64_t kBf16Lanes = 32;

// True if this CPU executes AVX-512 F, BW, VL and BF16, and the kernel is not
// switched off by SetBf16DotEnabled(false).
bool Bf16DotUsable();
// Tests switch the bf16 path off to compare it with the portable one.
void SetBf16DotEnabled(bool enabled);

// s[j][lane] = scale * sum_{e < 2 * d2} q[lane][e] * k_j[e] for j < n_keys, lane < 32:
// q_pairs holds [d2][32 lanes] 32-bit words, each two bf16 channels (2c in
// the low half, 2c + 1 in the high); key j's bf16 row at k + j * k_stride
// (elements). s: [n_keys][32] f32.
void ScoresQLanesBf16Dot(const uint32_t* q_pairs, int64_t d2, const uint16_t* k, int64_t k_stride,
                         int64_t n_keys, float scale, float* s);

// P.V with the probabilities rounded to bf16 (precision FAST): o_t[e][lane] +=
// sum_{j < n_keys} bf16(p[j][lane]) * v_j[e] for lane < 32, e < dv. p:
// [n_keys][32] f32 (n_keys <= 64); v_pairs: [(n_keys + 1) / 2][dv] 32-bit words,
// v_pairs[i][e] keys 2i and 2i + 1's bf16 values of channel e (low, high half;
// the half past n_keys zero). o_t: [dv][32] f32.
void PVQLanesBf16Dot(const float* p, int64_t n_keys, const uint32_t* v_pairs, int64_t dv,
                     float* o_t);

// dst[e] = src[e] rounded from f16 to bf16 (nearest even; f16 values are
// all finite in bf16's range, subnormals included) for e < n.
void F16RowToBF16(const uint16_t* src, int64_t n, uint16_t* dst);

// Values of n_keys keys (rows v + j * v_stride elements, bf16, or f16 when
// from_f16, rounded to bf16) as PVQLanesBf16Dot reads them: v_pairs[i][e] =
// keys 2i, 2i + 1 of channel e (low, high half; the half past n_keys zero).
void PackValuePairsBf16(const uint16_t* v, int64_t v_stride, int64_t n_keys, int64_t dv,
                        bool from_f16, uint32_t* v_pairs);

}  // namespace relattn::x86

#endif  // RELATTN_PORTS_X86_BF16_SCORES_H_
