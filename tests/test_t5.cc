// T5 buckets: against HF's formula evaluated in numpy float32 (tests/bias_tables.h), against the
// reference's own transcription over many parameter sets, saturation, table entries, errors.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "lib/bias/t5.h"
#include "lib/common/f16.h"
#include "lib/reference/reference.h"
#include "relattn/relattn.h"
#include "tests/bias_tables.h"

namespace {

int32_t Bucket(int64_t r, int32_t num_buckets, int32_t max_distance, bool bidirectional) {
  int32_t bucket = -1;
  REQUIRE(relattn_t5_bucket(r, num_buckets, max_distance, bidirectional, &bucket) == RELATTN_OK);
  return bucket;
}

TEST_CASE("relattn_t5_bucket equals HF's fp32 buckets on -300..300 and at huge offsets") {
  for (const relattn::tables::T5Case& c : relattn::tables::kT5Cases) {
    CAPTURE(c.num_buckets);
    CAPTURE(c.max_distance);
    CAPTURE(c.bidirectional);
    REQUIRE(c.runs[0].first == -300);
    int run = 0;
    for (int64_t r = -300; r <= 300; ++r) {
      if (run + 1 < c.n_runs && c.runs[run + 1].first == r) ++run;
      CAPTURE(r);
      CHECK(Bucket(r, c.num_buckets, c.max_distance, c.bidirectional) == c.runs[run].bucket);
    }
    for (size_t i = 0; i < std::size(relattn::tables::kT5Huge); ++i) {
      const int64_t r = relattn::tables::kT5Huge[i];
      CAPTURE(r);
      CHECK(Bucket(r, c.num_buckets, c.max_distance, c.bidirectional) == c.huge[i]);
    }
    CHECK(relattn::T5SaturationDistance(c.num_buckets, c.max_distance, c.bidirectional) ==
          c.saturation);
  }
}

// Offsets around every interesting distance up to 3 * max_distance, and the extremes.
std::vector<int64_t> Offsets(int32_t max_distance) {
  const int64_t t40 = int64_t{1} << 40;  // where T5Bucket starts clamping distances
  std::vector<int64_t> r = {INT64_MIN, INT64_MIN + 1, -t40 - 1, -t40, t40, t40 + 1, INT64_MAX};
  for (int64_t d = 0; d <= 3 * int64_t{max_distance}; ++d) {
    r.push_back(d);
    r.push_back(-d);
  }
  return r;
}

TEST_CASE("T5Bucket agrees with the reference and saturates at T5SaturationDistance") {
  struct Params {
    int32_t num_buckets, max_distance;
    bool bidirectional;
  };
  std::vector<Params> params;
  for (const int32_t nb : {2, 3, 4, 5, 6, 8, 9, 16, 18, 32, 33, 64, 128, 320, 1024}) {
    for (const bool bidirectional : {false, true}) {
      const int32_t max_exact = (bidirectional ? nb / 2 : nb) / 2;
      for (const int32_t md : {max_exact + 1, max_exact + 2, 2 * max_exact + 1, 128, 1000, 16384}) {
        if (relattn::CheckT5Params(nb, md, bidirectional, "") == RELATTN_OK) {
          params.push_back({nb, md, bidirectional});
        }
      }
    }
  }
  CHECK(params.size() > 100);
  for (const Params& p : params) {
    CAPTURE(p.num_buckets);
    CAPTURE(p.max_distance);
    CAPTURE(p.bidirectional);
    const int64_t s = relattn::T5SaturationDistance(p.num_buckets, p.max_distance, p.bidirectional);
    CHECK(s >= 1);
    CHECK(s <= p.max_distance);
    const int32_t per_side = p.bidirectional ? p.num_buckets / 2 : p.num_buckets;
    for (const int64_t r : Offsets(p.max_distance)) {
      const int32_t b = relattn::T5Bucket(r, p.num_buckets, p.max_distance, p.bidirectional);
      const int32_t want =
          relattn::reference::T5Bucket(r, p.num_buckets, p.max_distance, p.bidirectional);
      if (b != want) FAIL_CHECK("offset " << r << ": " << b << " != reference " << want);
      const bool far = r <= -s || (p.bidirectional && r >= s);
      const bool near = r == 1 - s || (p.bidirectional && r == s - 1);
      const int32_t last = r > 0 ? (p.bidirectional ? p.num_buckets - 1 : 0) : per_side - 1;
      if (far && b != last) FAIL_CHECK("offset " << r << " past saturation: " << b);
      if (near && b == last) FAIL_CHECK("offset " << r << " before saturation is saturated");
    }
  }
}

TEST_CASE("T5TableEntry reads f32, f16 and scaled i8 tables") {
  const float f32[] = {0.5f, -1.25f, 2, 3, 4, 5};
  const uint16_t f16[] = {0x3800, 0xbd00, 0x4000, 0x4200, 0x4400, 0x4500};  // the same values
  const int8_t i8[] = {1, -2, 3, 4, 5, 6};
  const float scales[] = {0.5f, 0.625f};
  relattn_t5 t5 = {f32, RELATTN_F32, nullptr, 3, 8, 0};
  CHECK(relattn::T5TableEntry(t5, 0, 1) == -1.25f);
  CHECK(relattn::T5TableEntry(t5, 1, 2) == 5);
  t5.table = f16;
  t5.table_dtype = RELATTN_F16;
  CHECK(relattn::T5TableEntry(t5, 0, 1) == -1.25f);
  CHECK(relattn::T5TableEntry(t5, 1, 0) == 3);
  t5.table = i8;
  t5.table_dtype = RELATTN_I8;
  t5.table_scales = scales;
  CHECK(relattn::T5TableEntry(t5, 0, 1) == -1.0f);
  CHECK(relattn::T5TableEntry(t5, 1, 2) == 3.75f);
}

TEST_CASE("relattn_t5_bucket rejects bad parameters and leaves bucket untouched") {
  int32_t bucket = -7;
  auto rejects = [&](int32_t nb, int32_t md, int bidirectional, const char* message) {
    CAPTURE(message);
    CHECK(relattn_t5_bucket(5, nb, md, bidirectional, &bucket) == RELATTN_ERR_BAD_BIAS_PARAMETER);
    CHECK(std::string(relattn_last_error()) == message);
  };
  CHECK(relattn_t5_bucket(5, 32, 128, 1, nullptr) == RELATTN_ERR_NULL_ARGUMENT);
  CHECK(std::string(relattn_last_error()).find("bucket = NULL") == 0);
  rejects(1, 128, 0, "num_buckets = 1: must be in 2..1024");
  rejects(1026, 128, 1, "num_buckets = 1026: must be in 2..1024");
  rejects(2, 128, 1, "num_buckets = 2: must be even and >= 4 when bidirectional");
  rejects(33, 128, 1, "num_buckets = 33: must be even and >= 4 when bidirectional");
  rejects(32, 0, 1, "max_distance = 0: must be in 1..16384");
  rejects(32, 16385, 0, "max_distance = 16385: must be in 1..16384");
  rejects(32, 8, 1,
          "max_distance = 8: must be > 8, the exact buckets per direction of num_buckets = 32");
  rejects(32, 16, 0,
          "max_distance = 16: must be > 16, the exact buckets per direction of num_buckets = 32");
  CHECK(bucket == -7);
  CHECK(relattn_t5_bucket(5, 2, 2, 0, &bucket) == RELATTN_OK);  // the smallest causal set
  CHECK(bucket == 0);
  CHECK(relattn_t5_bucket(-5, 2, 2, 0, &bucket) == RELATTN_OK);
  CHECK(bucket == 1);
  CHECK(std::string(relattn_last_error()).empty());
}

}  // namespace
