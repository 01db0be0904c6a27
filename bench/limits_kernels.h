// The two loops that measure the machine's limits, compiled once per SIMD
// target (Highway) and dispatched to the target chosen at run time, so a
// forced target (hwy::SetSupportedTargetsForTest) applies to them too.
#ifndef RELATTN_BENCH_LIMITS_KERNELS_H_
#define RELATTN_BENCH_LIMITS_KERNELS_H_

#include <cstddef>
#include <cstdint>

namespace relattn_bench {

// Runs kFmaChains independent FMA chains (acc = acc * m + c, one vector each)
// for `iterations` rounds: kFmaChains * iterations * lanes FMAs, 2 FLOPs each.
// Returns a value derived from every accumulator so nothing is elided.
inline constexpr int kFmaChains = 12;
float FmaChains(int64_t iterations);

// f32 lanes of a vector on the active target (1 on SCALAR).
size_t FloatLanes();

// Sum of data[0, n) read with full-width vector loads.
// Preconditions: data 64-byte aligned, n a multiple of 64.
float SumFloats(const float* data, size_t n);

// hwy::TargetName of the target the two functions above dispatch to now.
const char* LimitsTargetName();

}  // namespace relattn_bench

#endif  // RELATTN_BENCH_LIMITS_KERNELS_H_
