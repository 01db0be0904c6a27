// relattn demo: runs every position scheme under every mask on one prefill
// problem, checks each against the fp64 reference, and prints the error and
// the time of both. Usage: relattn-demo [--n N] [--d D] [--heads H] [--kv-heads K]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lib/common/f16.h"
#include "lib/reference/reference.h"
#include "relattn/relattn.hpp"

namespace {

struct Options {
  int64_t n = 256;
  int32_t d = 64, heads = 8, kv_heads = 2;
};

struct Scheme {
  const char* name;
  relattn_bias bias;
};

struct Mask {
  const char* name;
  relattn_mask mask;
};

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Visible (query, key) pairs under mask, for positions 0..n-1 on both sides.
int64_t VisiblePairs(int64_t n, const relattn_mask& m) {
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const int64_t r = i - j;
      bool visible = !(m.causal && r < 0);
      if (m.window > 0) visible = visible && r < m.window && (m.causal || -r < m.window);
      count += visible;
    }
  }
  return count;
}

constexpr char kUsage[] =
    "usage: relattn-demo [--n N] [--d D] [--heads H] [--kv-heads K]\n"
    "Runs every position scheme under every mask on one prefill problem (N tokens,\n"
    "head dim D, H query heads on K KV heads; defaults 256, 64, 8, 2), checks each\n"
    "against the fp64 reference and prints the error and both times.\n";

[[noreturn]] void Usage(const std::string& error) {
  std::fprintf(stderr, "relattn-demo: %s\n%s", error.c_str(), kUsage);
  std::exit(2);
}

// argv[i + 1] as an integer in 1..max (a usage error otherwise).
long Value(int argc, char** argv, int i, long max) {
  const std::string flag = argv[i];
  if (i + 1 >= argc) Usage(flag + " needs a value");
  char* end = nullptr;
  const long value = std::strtol(argv[i + 1], &end, 10);
  if (*argv[i + 1] == '\0' || *end != '\0' || value < 1 || value > max)
    Usage(flag + " takes an integer in 1.." + std::to_string(max) + ", not '" + argv[i + 1] + "'");
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
    if (flag == "--n")
      o.n = Value(argc, argv, i, 1 << 16);
    else if (flag == "--d")
      o.d = int32_t(Value(argc, argv, i, 256));
    else if (flag == "--heads")
      o.heads = int32_t(Value(argc, argv, i, 256));
    else if (flag == "--kv-heads")
      o.kv_heads = int32_t(Value(argc, argv, i, 256));
    else
      Usage("unknown option " + flag);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = Parse(argc, argv);
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  // f16 Q, K, V in [tokens][heads][d]; f32 output.
  auto random_f16 = [&](size_t n) {
    std::vector<uint16_t> v(n);
    for (uint16_t& x : v) x = relattn::F32ToF16(uniform(rng));
    return v;
  };
  const std::vector<uint16_t> q = random_f16(size_t(opt.n) * opt.heads * opt.d);
  const std::vector<uint16_t> k = random_f16(size_t(opt.n) * opt.kv_heads * opt.d);
  const std::vector<uint16_t> v = random_f16(size_t(opt.n) * opt.kv_heads * opt.d);
  std::vector<float> o(size_t(opt.n) * opt.heads * opt.d);

  std::vector<float> t5_table(size_t(opt.heads) * 32), shaw_table(size_t(opt.heads) * 33);
  for (float& x : t5_table) x = 2 * uniform(rng);
  for (float& x : shaw_table) x = 2 * uniform(rng);
  std::vector<int8_t> t5_i8(t5_table.size());
  std::vector<float> t5_scales(opt.heads);
  relattn_quantize_table_i8(t5_table.data(), opt.heads, 32, t5_i8.data(), t5_scales.data());

  std::vector<Scheme> schemes(6);
  schemes[0].name = "none";
  schemes[1].name = "alibi";
  schemes[1].bias.kind = RELATTN_BIAS_ALIBI;
  schemes[1].bias.alibi.max_bias = 8.0f;
  schemes[2].name = "alibi-causal-form";
  schemes[2].bias = schemes[1].bias;
  schemes[2].bias.alibi.causal = 1;
  schemes[3].name = "t5-f32";
  schemes[3].bias.kind = RELATTN_BIAS_T5;
  schemes[3].bias.t5 = {t5_table.data(), RELATTN_F32, nullptr, 32, 128, 1};
  schemes[4].name = "t5-int8";
  schemes[4].bias.kind = RELATTN_BIAS_T5;
  schemes[4].bias.t5 = {t5_i8.data(), RELATTN_I8, t5_scales.data(), 32, 128, 1};
  schemes[5].name = "shaw-k16";
  schemes[5].bias.kind = RELATTN_BIAS_SHAW;
  schemes[5].bias.shaw = {shaw_table.data(), 16};
  const Mask masks[] = {{"none", {0, 0, -1}},
                        {"causal", {1, 0, -1}},
                        {"causal+window128", {1, 128, -1}},
                        {"valid-kv-75%", {0, 0, opt.n * 3 / 4}}};

  std::printf(
      "relattn %s demo: n_q = n_kv = %lld, heads %d (kv heads %d), d = %d, f16 in, "
      "f32 out, SIMD target %s, 1 thread\n",
      relattn_version_string(), (long long)opt.n, opt.heads, opt.kv_heads, opt.d,
      relattn_active_target());
  std::printf("%-18s %-17s %11s %10s %10s %9s %8s\n", "scheme", "mask", "max|err|", "relattn ms",
              "ref ms", "GFLOP/s", "vs ref");
  relattn::Workspace workspace;
  double worst = 0.0;
  for (const Scheme& scheme : schemes) {
    for (const Mask& mask : masks) {
      relattn_attention_desc desc;
      relattn_attention_desc_init(&desc);
      desc.n_q = desc.n_kv = opt.n;
      desc.n_heads = opt.heads;
      desc.n_kv_heads = opt.kv_heads;
      desc.head_dim = opt.d;
      desc.q = relattn::TokensHeadsDim(q.data(), RELATTN_F16, opt.heads, opt.d);
      desc.k = relattn::TokensHeadsDim(k.data(), RELATTN_F16, opt.kv_heads, opt.d);
      desc.v = relattn::TokensHeadsDim(v.data(), RELATTN_F16, opt.kv_heads, opt.d);
      desc.o = relattn::OutputTokensHeadsDim(o.data(), RELATTN_F32, opt.heads, opt.d);
      desc.bias = scheme.bias;
      desc.mask = mask.mask;

      relattn::Status status = relattn::Attention(desc, workspace);  // warm-up, sizes workspace
      if (!status) {
        std::fprintf(stderr, "relattn: %s\n", status.ToString().c_str());
        return 1;
      }
      double best = 1e30;
      for (int rep = 0; rep < 5; ++rep) {
        const auto start = std::chrono::steady_clock::now();
        relattn::Attention(desc, workspace);
        best = std::min(best, Seconds(start));
      }
      std::vector<double> expected(o.size());
      const auto ref_start = std::chrono::steady_clock::now();
      relattn::reference::Attention(desc, expected.data());
      const double ref_seconds = Seconds(ref_start);
      double err = 0.0;
      for (size_t i = 0; i < o.size(); ++i) err = std::max(err, std::fabs(o[i] - expected[i]));
      worst = std::max(worst, err);
      const double flops = 4.0 * opt.d * opt.heads * double(VisiblePairs(opt.n, mask.mask));
      std::printf("%-18s %-17s %11.3g %10.3f %10.1f %9.1f %7.0fx\n", scheme.name, mask.name, err,
                  best * 1e3, ref_seconds * 1e3, flops / best * 1e-9, ref_seconds / best);
    }
  }
  std::printf(
      "worst error %.3g (bound 5e-6 for f32 output); GFLOP/s counts 4*d*heads per "
      "visible query-key pair, best of 5\n"
      "vs ref: the fp64 reference's time over relattn's (a scalar correctness oracle, not a "
      "peer: relattn-bench --quick gives the ratio to XNNPACK, vs_xnnpack)\n",
      worst);
  return worst <= 5e-6 ? 0 : 1;
}
