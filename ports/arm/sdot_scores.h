// Int8 Q.K scores with the Armv8.2 dot-product instructions (SDOT), which
// Highway 1.0.3 lacks. aarch64 only, chosen at run time (HWCAP_ASIMDDP); the
// portable path multiplies the int8 values in f32 and yields the same
// integers, so both give the same bits.
#ifndef RELATTN_PORTS_ARM_SDOT_SCORES_H_
#define RELATTN_PORTS_ARM_SDOT_SCORES_H_

#include <cstdint>

namespace relattn::arm {

// Lanes of an SDOT prefill sub-tile (the NEON target's: 2 vectors of 4).
inline constexpr int64_t kSdotLanes = 8;

// True if this CPU has the dot-product instructions and SetSdotEnabled(false)
// did not switch them off (tests compare with the portable path).
bool SdotUsable();
void SetSdotEnabled(bool enabled);

// Prefill: s[j][lane] = sum_{e < d4} q[lane][e] * k[j][e] for j < n_keys and
// 8 lanes; q_u8 holds q + 128 as [d4 / 4][8 lanes][4 channels] bytes; k rows
// of d4 int8 at k + j * d4 (zero beyond d). s: [n_keys][8] int32.
void ScoresQLanesI8Sdot(const uint8_t* q_u8, int64_t d4, const int8_t* k, int64_t n_keys,
                        int32_t* s);

// Decode over int8 KV-cache key groups ([group][d][16], kv_cache.h): as
// x86::ScoresKLanesI8Vnni (q_u8: rows of d4 bytes, q + 128, read up to
// n_rows rounded up to 4; keys rounded up to 16).
void ScoresKLanesI8Sdot(const uint8_t* q_u8, int64_t n_rows, const int8_t* keys, int32_t d,
                        int64_t n_keys, int32_t* s, int64_t s_stride);

}  // namespace relattn::arm

#endif  // RELATTN_PORTS_ARM_SDOT_SCORES_H_
