// relattn streaming example: an endless generation loop in constant memory.
// Each step appends one token's K and V to a ring-buffer KV cache of W tokens
// and attends one query (ALiBi, causal, window W) over it; positions count on
// as int64. Prints tokens/s and the anonymous resident memory at checkpoints,
// and fails (exit 3) if that grew after the ring first wrapped (2 W steps):
// memory is constant once every slot is written (--memory-check 0: report
// only; under an emulator the resident memory is the emulator's). Usage:
// relattn-stream [--steps N] [--window W] [--start P] [--memory-check 0|1]
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "relattn/relattn.hpp"

namespace {

constexpr int32_t kHeads = 4, kKvHeads = 1, kDim = 64;

struct Options {
  int64_t steps = 1'000'000;
  int64_t window = 4096;
  int64_t start = 0;
  bool memory_check = true;  // --memory-check 0: report growth, do not fail on it
};

constexpr char kUsage[] =
    "usage: relattn-stream [--steps N] [--window W] [--start P] [--memory-check 0|1]\n"
    "An endless-generation loop in constant memory: N decode steps (default 10^6)\n"
    "over a ring-buffer KV cache of W tokens (default 4096), positions from P\n"
    "(default 0); fails if the resident memory grows after the ring wraps\n"
    "(--memory-check 0: report only).\n";

[[noreturn]] void Usage(const std::string& error) {
  std::fprintf(stderr, "relattn-stream: %s\n%s", error.c_str(), kUsage);
  std::exit(2);
}

// argv[i + 1] as an integer in min..max (a usage error otherwise).
long long Value(int argc, char** argv, int i, long long min, long long max) {
  const std::string flag = argv[i];
  if (i + 1 >= argc) Usage(flag + " needs a value");
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(argv[i + 1], &end, 10);
  if (*argv[i + 1] == '\0' || *end != '\0' || errno != 0 || value < min || value > max) {
    Usage(flag + " takes an integer in " + std::to_string(min) + ".." + std::to_string(max) +
          ", not '" + argv[i + 1] + "'");
  }
  return value;
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (flag == "--steps")
      o.steps = Value(argc, argv, i, 1, INT64_C(1) << 40);
    else if (flag == "--window")
      o.window = Value(argc, argv, i, 1, INT64_C(1) << 30);
    else if (flag == "--start")
      o.start = Value(argc, argv, i, 0, INT64_C(1) << 62);
    else if (flag == "--memory-check")
      o.memory_check = Value(argc, argv, i, 0, 1) != 0;
    else
      Usage("unknown option " + flag);
  }
  return o;
}

long PeakRssKiB() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// The anonymous (not file-backed) resident memory now, in KiB: resident minus
// shared pages of /proc/self/statm (Linux), or -1 where unknown. Code pages
// of paths first run late (the first ring wrap) are file-backed: not counted.
long AnonRssKiB() {
  // open / read into the stack, not fopen: no allocation (under ASan a FILE's
  // buffer would not be reused and would show as growth).
  const int fd = open("/proc/self/statm", O_RDONLY);
  if (fd < 0) return -1;
  char text[128];
  const ssize_t n = read(fd, text, sizeof(text) - 1);
  close(fd);
  if (n <= 0) return -1;
  text[n] = '\0';
  long total_pages = 0, resident_pages = 0, shared_pages = 0;
  if (std::sscanf(text, "%ld %ld %ld", &total_pages, &resident_pages, &shared_pages) != 3) {
    return -1;
  }
  return (resident_pages - shared_pages) * (sysconf(_SC_PAGESIZE) / 1024);
}

// Deterministic pseudo-random values in [-1, 1) (xorshift).
struct Noise {
  uint64_t state = 0x9e3779b97f4a7c15ull;
  float Next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return static_cast<float>(state >> 40) * (2.0f / 16777216.0f) - 1.0f;
  }
  void Fill(std::vector<float>& v) {
    for (float& x : v) x = Next();
  }
};

}  // namespace

int main(int argc, char** argv) {
  const Options opt = Parse(argc, argv);
  relattn_kv_cache_desc cache_desc{kKvHeads, kDim, 0, opt.window, RELATTN_F16, RELATTN_F16, 1};
  size_t cache_bytes = 0;
  relattn_kv_cache_size(&cache_desc, &cache_bytes);
  void* memory = std::aligned_alloc(RELATTN_KV_CACHE_ALIGNMENT, (cache_bytes + 63) / 64 * 64);
  relattn_kv_cache* cache = nullptr;
  if (relattn_kv_cache_init(&cache_desc, memory, cache_bytes, &cache) != RELATTN_OK) {
    std::fprintf(stderr, "relattn: %s\n", relattn_last_error());
    return 1;
  }
  std::vector<float> q(kHeads * kDim), k(kKvHeads * kDim), v(kKvHeads * kDim), o(kHeads * kDim);
  relattn_attention_desc desc;
  relattn_attention_desc_init(&desc);
  desc.n_q = 1;
  desc.n_heads = kHeads;
  desc.q = relattn::TokensHeadsDim(q.data(), RELATTN_F32, kHeads, kDim);
  desc.o = relattn::OutputTokensHeadsDim(o.data(), RELATTN_F32, kHeads, kDim);
  desc.bias.kind = RELATTN_BIAS_ALIBI;
  desc.bias.alibi = {nullptr, 8.0f, 1};
  desc.mask = {1, opt.window, -1};
  desc.kv_cache = cache;
  const relattn_tensor k_view = relattn::TokensHeadsDim(k.data(), RELATTN_F32, kKvHeads, kDim);
  const relattn_tensor v_view = relattn::TokensHeadsDim(v.data(), RELATTN_F32, kKvHeads, kDim);
  relattn::Workspace workspace;
  Noise noise;

  std::printf("relattn stream: %" PRId64
              " decode steps of one attention layer (%d query heads "
              "on %d KV head, d = %d), ring of W = %" PRId64
              " tokens, f16 cache (%zu bytes), ALiBi, causal window W, positions from %" PRId64
              "\n"
              "each row, at a checkpoint: tokens/s (steps per second since the last one), "
              "anonymous and peak resident memory, and |o| of one output value\n",
              opt.steps, kHeads, kKvHeads, kDim, opt.window, cache_bytes, opt.start);
  std::printf("%12s %20s %12s %13s %14s %12s\n", "step", "position", "tokens/s", "anon RSS KiB",
              "peak RSS KiB", "|o| sample");
  const relattn_positions first{nullptr, opt.start};
  auto checkpoint_start = std::chrono::steady_clock::now();
  int64_t checkpoint_step = 0;
  double checksum = 0.0;
  long rss_ring_full = -1, rss_growth = 0;
  for (int64_t step = 0; step < opt.steps; ++step) {
    noise.Fill(k);
    noise.Fill(v);
    noise.Fill(q);
    if (relattn_kv_cache_append(cache, 1, &k_view, &v_view, step == 0 ? &first : nullptr) !=
        RELATTN_OK) {
      std::fprintf(stderr, "relattn: %s\n", relattn_last_error());
      return 1;
    }
    desc.q_pos.start = relattn_kv_cache_next_position(cache) - 1;
    const relattn::Status s = relattn::Attention(desc, workspace);
    if (!s) {
      std::fprintf(stderr, "relattn: %s\n", s.ToString().c_str());
      return 1;
    }
    checksum += std::fabs(o[0]);
    const bool last = step + 1 == opt.steps;
    if ((step + 1) % (opt.steps / 10 > 0 ? opt.steps / 10 : 1) == 0 || last ||
        step + 1 == 2 * opt.window) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - checkpoint_start)
              .count();
      const long rss = AnonRssKiB();
      if (step + 1 >= 2 * opt.window) {
        if (rss_ring_full < 0) rss_ring_full = rss;
        if (rss >= 0 && rss - rss_ring_full > rss_growth) rss_growth = rss - rss_ring_full;
      }
      std::printf("%12" PRId64 " %20" PRId64 " %12.0f %13ld %14ld %12.4f\n", step + 1,
                  desc.q_pos.start, double(step + 1 - checkpoint_step) / seconds, rss, PeakRssKiB(),
                  std::fabs(o[0]));
      checkpoint_start = std::chrono::steady_clock::now();
      checkpoint_step = step + 1;
    }
  }
  std::printf("mean |o[0]| %.4f over %" PRId64 " steps\n", checksum / double(opt.steps), opt.steps);
  std::free(memory);
  if (rss_ring_full >= 0) {
    std::printf("anonymous resident memory growth after the ring wrapped: %ld KiB\n", rss_growth);
    if (rss_growth > 0 && opt.memory_check) return 3;
  }
  return 0;
}
