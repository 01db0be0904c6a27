// relattn slopes / relattn buckets: the library's ALiBi slopes and T5 buckets, one per line.
#include <cinttypes>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "relattn/relattn.h"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"

namespace relattn_cli {
namespace {

constexpr char kSlopesUsage[] = R"(usage: relattn slopes --heads N [--max-bias B]
Prints the ALiBi slope of each of N heads (1..4096), head 0 first, one per line with 17
significant digits. --max-bias B (default 8, the ALiBi paper's slopes; other values give the
max_bias form of BLOOM / ggml) must be > 0.
)";

constexpr char kBucketsUsage[] =
    R"(usage: relattn buckets [--num-buckets NB] [--max-distance MD] [--causal]
                       [--range A B] [--] OFFSET...
Prints the T5 bucket of each OFFSET, one per line, in command-line order. OFFSET is key
position - query position (the T5 convention), any int64; negative offsets may be given as
plain arguments or after "--". --range A B prints the bucket of every offset in [A, B].
Buckets are bidirectional (split by the sign of the offset) unless --causal. NB and MD
default to T5's 32 and 128 (as the Python package's t5_bucket).
)";

[[noreturn]] void LibraryError(const std::string& command, relattn_status status) {
  Die(command, std::string(relattn_status_string(status)) + ": " + relattn_last_error());
}

}  // namespace

int SlopesCommand(int argc, char** argv, int first) {
  const Args args("slopes", {{"--heads", 1}, {"--max-bias", 1}}, argc, argv, first);
  if (args.Help()) return std::fputs(kSlopesUsage, stdout), 0;
  for (const Args::Item& item : args.Items()) {
    if (item.name.empty()) args.Usage("unexpected argument '" + item.values[0] + "'");
  }
  args.Require("--heads");
  const int32_t heads = int32_t(args.Int64("--heads", 0, 1, RELATTN_MAX_HEADS));
  const float max_bias = float(args.Double("--max-bias", 8.0));
  std::vector<float> slopes(heads);
  const relattn_status s = relattn_alibi_slopes(heads, max_bias, slopes.data());
  if (s != RELATTN_OK) LibraryError("slopes", s);
  for (float m : slopes) std::printf("%.17g\n", double(m));
  return 0;
}

int BucketsCommand(int argc, char** argv, int first) {
  const Args args("buckets",
                  {{"--num-buckets", 1}, {"--max-distance", 1}, {"--causal", 0}, {"--range", 2}},
                  argc, argv, first);
  if (args.Help()) return std::fputs(kBucketsUsage, stdout), 0;
  const int32_t num_buckets = int32_t(args.Int64("--num-buckets", 32, INT32_MIN, INT32_MAX));
  const int32_t max_distance = int32_t(args.Int64("--max-distance", 128, INT32_MIN, INT32_MAX));
  const int bidirectional = args.Has("--causal") ? 0 : 1;
  int32_t bucket = 0;
  relattn_status s = relattn_t5_bucket(0, num_buckets, max_distance, bidirectional, &bucket);
  if (s != RELATTN_OK) LibraryError("buckets", s);

  // Every argument is checked before the first line is printed.
  std::vector<std::pair<int64_t, int64_t>> ranges;  // [first, last], in command-line order
  for (const Args::Item& item : args.Items()) {
    if (item.name.empty()) {
      const int64_t r = args.ParseInt64("OFFSET", item.values[0]);
      ranges.push_back({r, r});
    } else if (item.name == "--range") {
      const int64_t a = args.ParseInt64("--range A", item.values[0]);
      const int64_t b = args.ParseInt64("--range B", item.values[1]);
      if (a > b) args.Usage("--range " + item.values[0] + " " + item.values[1] + ": A > B");
      ranges.push_back({a, b});
    }
  }
  if (ranges.empty()) args.Usage("no OFFSET or --range given (see relattn buckets --help)");
  for (const auto& [a, b] : ranges) {
    for (int64_t r = a;; ++r) {  // inclusive of b, even when b is INT64_MAX
      s = relattn_t5_bucket(r, num_buckets, max_distance, bidirectional, &bucket);
      if (s != RELATTN_OK) LibraryError("buckets", s);
      std::printf("%" PRId32 "\n", bucket);
      if (r == b) break;
    }
  }
  return 0;
}

}  // namespace relattn_cli
