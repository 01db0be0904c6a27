#include "lib/bias/t5.h"

#include <algorithm>
#include <cmath>

#include "lib/common/error.h"
#include "lib/common/f16.h"

namespace relattn {
namespace {

// Why distances can be clamped to kSaturatedDistance, and why S <= max_distance (t5.h), without
// assuming that logf is monotone: let q = log(n / max_exact) / log(max_distance / max_exact) *
// (nb - max_exact) exactly. The fp32 steps (int -> float, divide, logf, divide, multiply) err by
// at most about (max_exact + 5) * 2^-24 relative (the first rounding, seen through a log that
// may be as small as 1 / (max_exact + 1)), so by less than 0.02 absolute for any valid params.
//  - n >= max_distance: q >= nb - max_exact, the computed value >= nb - max_exact - 0.02, its
//    truncation >= nb - max_exact - 1: the last bucket.
//  - n >= 2 * max_distance: q >= (nb - max_exact) * (1 + ln 2 / ln 16384), more than 1.07 times
//    the last bucket's threshold, so no rounding can bring it back below: the last bucket.
// 2^40 >= 2 * kT5MaxDistance, and it keeps the product below 2^31 (safe to convert to int).
constexpr int64_t kSaturatedDistance = int64_t{1} << 40;

int64_t SaturatingMagnitude(int64_t r) {
  if (r >= 0) return std::min(r, kSaturatedDistance);
  return r < -kSaturatedDistance ? kSaturatedDistance : -r;
}

// The bucket of distance n >= 0 among the nb buckets of one direction.
int32_t DistanceBucket(int64_t n, int32_t nb, int32_t max_distance) {
  const int32_t max_exact = nb / 2;
  if (n < max_exact) return static_cast<int32_t>(n);
  const float ratio = static_cast<float>(n) / static_cast<float>(max_exact);
  const float log_max_ratio =
      static_cast<float>(std::log(static_cast<double>(max_distance) / max_exact));
  const float scaled = std::log(ratio) / log_max_ratio * static_cast<float>(nb - max_exact);
  return std::min(max_exact + static_cast<int32_t>(scaled), nb - 1);
}

}  // namespace

relattn_status CheckT5Params(int32_t num_buckets, int32_t max_distance, bool bidirectional,
                             const char* prefix) {
  if (num_buckets < 2 || num_buckets > kT5MaxBuckets) {
    return Fail(RELATTN_ERR_BAD_BIAS_PARAMETER, "%snum_buckets = %d: must be in 2..%d", prefix,
                num_buckets, kT5MaxBuckets);
  }
  if (bidirectional && (num_buckets < 4 || num_buckets % 2 != 0)) {
    return Fail(RELATTN_ERR_BAD_BIAS_PARAMETER,
                "%snum_buckets = %d: must be even and >= 4 when bidirectional", prefix,
                num_buckets);
  }
  if (max_distance < 1 || max_distance > kT5MaxDistance) {
    return Fail(RELATTN_ERR_BAD_BIAS_PARAMETER, "%smax_distance = %d: must be in 1..%d", prefix,
                max_distance, kT5MaxDistance);
  }
  const int32_t max_exact = (bidirectional ? num_buckets / 2 : num_buckets) / 2;
  if (max_distance <= max_exact) {
    return Fail(RELATTN_ERR_BAD_BIAS_PARAMETER,
                "%smax_distance = %d: must be > %d, the exact buckets per direction of "
                "num_buckets = %d",
                prefix, max_distance, max_exact, num_buckets);
  }
  return RELATTN_OK;
}

int32_t T5Bucket(int64_t relative_position, int32_t num_buckets, int32_t max_distance,
                 bool bidirectional) {
  if (!bidirectional) {
    const int64_t n = relative_position < 0 ? SaturatingMagnitude(relative_position) : 0;
    return DistanceBucket(n, num_buckets, max_distance);
  }
  const int32_t nb = num_buckets / 2;
  const int32_t base = relative_position > 0 ? nb : 0;
  return base + DistanceBucket(SaturatingMagnitude(relative_position), nb, max_distance);
}

int64_t T5SaturationDistance(int32_t num_buckets, int32_t max_distance, bool bidirectional) {
  const int32_t nb = bidirectional ? num_buckets / 2 : num_buckets;
  int64_t s = 2 * int64_t{max_distance};  // every n >= s is in the last bucket: see above
  while (DistanceBucket(s - 1, nb, max_distance) == nb - 1) --s;
  return s;
}

float T5TableEntry(const relattn_t5& t5, int32_t head, int32_t bucket) {
  const int64_t i = int64_t{head} * t5.num_buckets + bucket;
  switch (t5.table_dtype) {
    case RELATTN_F16: return F16ToF32(static_cast<const uint16_t*>(t5.table)[i]);
    case RELATTN_I8: return t5.table_scales[head] * static_cast<const int8_t*>(t5.table)[i];
    default: return static_cast<const float*>(t5.table)[i];
  }
}

}  // namespace relattn

extern "C" relattn_status relattn_t5_bucket(int64_t relative_position, int32_t num_buckets,
                                            int32_t max_distance, int bidirectional,
                                            int32_t* bucket) {
  if (bucket == nullptr) {
    return relattn::Fail(RELATTN_ERR_NULL_ARGUMENT, "bucket = NULL: must point to an int32_t");
  }
  const relattn_status status =
      relattn::CheckT5Params(num_buckets, max_distance, bidirectional != 0, "");
  if (status != RELATTN_OK) return status;
  *bucket = relattn::T5Bucket(relative_position, num_buckets, max_distance, bidirectional != 0);
  return relattn::Succeed();
}
