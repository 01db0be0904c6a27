// Int8 Q.K scores with AVX-512 VNNI (vpdpbusd), which Highway 1.0.3 lacks.
// Called from the AVX3 target's kernels when the CPU has VNNI: prefill with
// Q and K both int8, decode over a KV cache with int8 keys; everywhere else
// the portable path multiplies the int8 values in f32, which yields the same
// integers (every partial sum is an integer below 2^24).
#ifndef RELATTN_PORTS_X86_VNNI_SCORES_H_
#define RELATTN_PORTS_X86_VNNI_SCORES_H_

#include <cstdint>

namespace relattn::x86 {

// Lanes of a VNNI sub-tile: 2 vectors of 16 int32.
inline constexpr int64_t kVnniLanes = 32;

// True if this CPU executes AVX-512 F, BW and VNNI, and the kernel is not
// switched off by SetVnniEnabled(false).
bool VnniUsable();
// Tests switch the VNNI path off to compare it with the portable one.
void SetVnniEnabled(bool enabled);

// s[j][lane] = sum_{e < d4} q[lane][e] * k[j][e] for j < n_keys, lane < 32:
// q_u8 holds q + 128 as [d4 / 4][32 lanes][4 channels] bytes (64-byte
// aligned), k rows of d4 int8 at k + j * d4 (zero beyond d), k_sum[j] =
// sum_e k[j][e]; the 128 * k_sum[j] the offset adds is taken off. d4 is a
// multiple of 4. s: [n_keys][32] int32, 64-byte aligned.
void ScoresQLanesI8Vnni(const uint8_t* q_u8, int64_t d4, const int8_t* k, const int32_t* k_sum,
                        int64_t n_keys, int32_t* s);

// Decode over int8 KV-cache key groups ([group][d][16]: channel e of a
// group's 16 keys contiguous, kv_cache.h): s[r * s_stride + j] =
// sum_{e < d} q[r][e] * k_j[e] for keys j < n_keys (rounded up to 16) and
// rows r < n_rows (the query rows are read in quads: up to n_rows rounded
// up to 4). q_u8: rows of d4 = d rounded up to 4
// bytes, q + 128 (128 beyond d), for every row of the rounded count. The
// last, partial quad of channels is read with a mask (nothing past a group).
void ScoresKLanesI8Vnni(const uint8_t* q_u8, int64_t n_rows, const int8_t* keys, int32_t d,
                        int64_t n_keys, int32_t* s, int64_t s_stride);

}  // namespace relattn::x86

#endif  // RELATTN_PORTS_X86_VNNI_SCORES_H_
