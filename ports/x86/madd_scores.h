// Int8 Q.K scores with AVX2 vpmaddwd (the exact 16-bit route), for CPUs with
// AVX2 but no AVX-512 VNNI. Both operands are sign-extended to int16 once
// (per query sub-tile, per key block): vpmaddwd multiplies 16 pairs and adds
// each two into an int32 (|sum| <= 2 * 128 * 128, no saturation, unlike
// pmaddubsw), vpaddd accumulates. Called from the AVX2 target's kernels; the
// sums are the same integers the VNNI and portable paths compute.
#ifndef RELATTN_PORTS_X86_MADD_SCORES_H_
#define RELATTN_PORTS_X86_MADD_SCORES_H_

#include <cstdint>

namespace relattn::x86 {

// Lanes of a vpmaddwd sub-tile: 2 vectors of 8 int32 (the AVX2 target's W).
inline constexpr int64_t kMaddLanes = 16;

// True if this CPU executes AVX2 and SetMaddEnabled(false) did not switch
// the kernel off (tests compare it with the portable path).
bool MaddUsable();
void SetMaddEnabled(bool enabled);

// Prefill: s[j][lane] = sum_{e < d4} q[lane][e] * k[j][e] for j < n_keys and
// 16 lanes. q: [d4 / 2][16 lanes][2 channels] int16 (32-byte aligned); k:
// rows of d4 int16 at k + j * d4 (zero beyond d); d4 is a multiple of 4.
// s: [n_keys][16] int32, 32-byte aligned.
void ScoresQLanesI16Madd(const int16_t* q, int64_t d4, const int16_t* k, int64_t n_keys,
                         int32_t* s);

// Decode over int8 KV-cache key groups ([group][d][16]: channel e of a
// group's 16 keys contiguous, kv_cache.h): s[r * s_stride + j] =
// sum_{e < d} q[r][e] * k_j[e] for keys j < n_keys (rounded up to 16) and
// rows r < n_rows (the query rows are read in quads: up to n_rows rounded
// up to 4). q: rows of d4 int16 (zero beyond d),
// for every row of the rounded count. Nothing past a group is read.
void ScoresKLanesI8Madd(const int16_t* q, int64_t n_rows, const int8_t* keys, int32_t d,
                        int64_t n_keys, int32_t* s, int64_t s_stride);

}  // namespace relattn::x86

#endif  // RELATTN_PORTS_X86_MADD_SCORES_H_
