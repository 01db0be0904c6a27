// Peak loops of the x86 dot-product instructions relattn's kernels use or
// will use (beside limits_kernels.h's FP32 FMA): AVX512-BF16 vdpbf16ps and
// AVX512-VNNI vpdpbusd, each behind a run-time CPU check.
#ifndef RELATTN_BENCH_LIMITS_DOT_H_
#define RELATTN_BENCH_LIMITS_DOT_H_

#include <cstdint>

namespace relattn_bench {

// Independent accumulator chains per loop round of the two functions below.
inline constexpr int kDotChains = 12;

// Whether this build and CPU have the instruction (false off x86-64).
bool Bf16DotUsable();
bool Int8DotUsable();

// kDotChains chains of vdpbf16ps (each: 32 bf16 products summed in pairs into
// 16 f32 lanes) for `iterations` rounds; a value of every accumulator.
float Bf16DotChains(int64_t iterations);
// The same with vpdpbusd (64 u8 x s8 products summed in fours into 16 int32).
float Int8DotChains(int64_t iterations);

// Multiply-adds per instruction of each (32 and 64).
inline constexpr int kBf16DotMacs = 32, kInt8DotMacs = 64;

}  // namespace relattn_bench

#endif  // RELATTN_BENCH_LIMITS_DOT_H_
